"""Cleanup policies: the policy of a workspace or repository, previews (the exact
plan, tag by tag, with the storage effect) and runs.

Permissions (the server decides; 403 names what is missing):

* reading a policy, previewing the *saved* policy, reading a preview and the runs:
  whoever may see the scope (a workspace: its members and guests; a repository:
  read on it). A preview's rows and a workspace policy's ``covers`` list only
  repositories the caller may read; the storage figures are the scope's totals.
* setting or removing a policy, previewing *given* rules, running: a workspace
  policy needs workspace admin; a repository policy admin on the repository (which
  workspace admins hold). Given rules need the right to set them because a rule's
  regular expression runs over every tag of the scope.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import Connection, func, select

from app.core.cleanup import PolicyError, Rule, parse_rules
from app.core.permissions import Permission
from app.registry import accounts
from app.registry.accounts import InvalidArgument, User
from app.registry.api.context import (
    Authenticated,
    WorkspaceAccess,
    readable_in,
    workspace_access,
)
from app.registry.api.errors import (
    documented,
    repository_forbidden,
    workspace_admin_forbidden,
)
from app.registry.api.models import (
    MAX_ID,
    PolicyInfo,
    PolicyRule,
    PolicyRuleIn,
    PolicyRunInfo,
    PolicySet,
    PreviewImage,
    PreviewInfo,
    PreviewRequest,
    PreviewRun,
    PreviewTag,
)
from app.registry.api.paging import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Page,
    Sort,
    decode_cursor,
    encode_cursor,
    json_response,
    keyset_page,
    page_of,
)
from app.registry.api.times import iso, iso_or_none
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.errors import NotFound
from app.registry.policies import plans as policies
from app.registry.policies.preview_rows import PreviewRow, decode_chunk

router = APIRouter(responses=documented(400, 401, 403, 404, 503))

PreviewId = Annotated[int, Path(ge=1, le=MAX_ID, description="a preview id")]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="a run id")]


# access ------------------------------------------------------------------------


def _visible_scope(
    conn: Connection, user: User, ws: str, repository: str | None
) -> tuple[policies.Scope, WorkspaceAccess, set[int] | None]:
    """The scope if the caller may see it (404 otherwise), their workspace access and
    the repositories they may read (None: all)."""
    access = workspace_access(conn, user, ws)
    readable = readable_in(conn, user, access)
    scope = policies.scope_of(conn, access.slug, repository)
    if (
        scope.repository_id is not None
        and readable is not None
        and scope.repository_id not in readable
    ):
        raise NotFound(f"no repository {ws}/{repository}", detail={"repository": repository})
    return scope, access, readable


def _require_admin(
    conn: Connection, user: User, scope: policies.Scope, access: WorkspaceAccess, doing: str
) -> None:
    if scope.repository_id is None:
        if not access.is_admin:
            raise workspace_admin_forbidden(scope.workspace, doing)
        return
    repo = accounts.repository_by_id(conn, scope.repository_id)
    assert repo is not None
    if accounts.permission_on(conn, user, repo) < Permission.ADMIN:
        raise repository_forbidden(Permission.ADMIN, scope.label, doing)


def _rules(items: list[PolicyRuleIn]) -> tuple[Rule, ...]:
    try:
        return parse_rules([{"kind": r.kind, "value": r.value} for r in items])
    except PolicyError as exc:
        raise InvalidArgument(str(exc), detail={"rules": [r.model_dump() for r in items]}) from None


def _rule_models(rules: tuple[Rule, ...]) -> list[PolicyRule]:
    return [PolicyRule(kind=r.kind.value, value=r.value) for r in rules]


def _policy_info(
    conn: Connection, policy: policies.Policy, readable: set[int] | None
) -> PolicyInfo:
    covered = policies.covered_repositories(conn, policy.scope)
    slugs = dict(
        conn.execute(
            select(s.repositories.c.id, s.repositories.c.slug).where(
                s.repositories.c.workspace_id == policy.scope.workspace_id
            )
        ).all()
    )
    return PolicyInfo(
        scope=policy.scope.label,
        workspace=policy.scope.workspace,
        repository=policy.scope.repository,
        rules=_rule_models(policy.rules),
        interval=policy.interval_s,
        next_run_at=iso_or_none(policy.next_run_at),
        updated_at=iso_or_none(policy.updated_at),
        updated_by=policy.updated_by,
        covers=sorted(slugs[r] for r in covered if readable is None or r in readable),
    )


# policies ----------------------------------------------------------------------


def _get(caller: Authenticated, ws: str, repository: str | None) -> PolicyInfo:
    with caller.registry.db.read() as conn:
        scope, _access, readable = _visible_scope(conn, caller.user, ws, repository)
        policy = policies.get_policy(conn, scope) or policies.no_policy(scope)
        return _policy_info(conn, policy, readable)


def _put(caller: Authenticated, ws: str, repository: str | None, body: PolicySet) -> PolicyInfo:
    rules = _rules(body.rules)
    with caller.registry.db.write() as conn:
        scope, access, readable = _visible_scope(conn, caller.user, ws, repository)
        _require_admin(conn, caller.user, scope, access, "set its cleanup policy")
        policy = policies.set_policy(conn, scope, rules, body.interval, caller.name, now_ms())
        return _policy_info(conn, policy, readable)


def _delete(caller: Authenticated, ws: str, repository: str | None) -> Response:
    with caller.registry.db.write() as conn:
        scope, access, _readable = _visible_scope(conn, caller.user, ws, repository)
        _require_admin(conn, caller.user, scope, access, "remove its cleanup policy")
        policies.delete_policy(conn, scope, caller.name, now_ms())
    return Response(status_code=204)


@router.get(
    "/workspaces/{ws}/policy",
    response_model=PolicyInfo,
    summary="The workspace's cleanup policy (it covers repositories without their own)",
)
def get_workspace_policy(caller: Authenticated, ws: str) -> PolicyInfo:
    return _get(caller, ws, None)


@router.put(
    "/workspaces/{ws}/policy",
    response_model=PolicyInfo,
    summary="Set the workspace's cleanup policy (workspace admin)",
)
def put_workspace_policy(caller: Authenticated, ws: str, body: PolicySet) -> PolicyInfo:
    return _put(caller, ws, None, body)


@router.delete(
    "/workspaces/{ws}/policy",
    status_code=204,
    response_class=Response,
    summary="Remove the workspace's cleanup policy (workspace admin)",
)
def delete_workspace_policy(caller: Authenticated, ws: str) -> Response:
    return _delete(caller, ws, None)


@router.get(
    "/workspaces/{ws}/repositories/{slug}/policy",
    response_model=PolicyInfo,
    summary="The repository's own cleanup policy (read)",
)
def get_repository_policy(caller: Authenticated, ws: str, slug: str) -> PolicyInfo:
    return _get(caller, ws, slug)


@router.put(
    "/workspaces/{ws}/repositories/{slug}/policy",
    response_model=PolicyInfo,
    summary="Set the repository's cleanup policy, overriding the workspace's (admin)",
)
def put_repository_policy(caller: Authenticated, ws: str, slug: str, body: PolicySet) -> PolicyInfo:
    return _put(caller, ws, slug, body)


@router.delete(
    "/workspaces/{ws}/repositories/{slug}/policy",
    status_code=204,
    response_class=Response,
    summary="Remove the repository's cleanup policy (admin); the workspace's applies again",
)
def delete_repository_policy(caller: Authenticated, ws: str, slug: str) -> Response:
    return _delete(caller, ws, slug)


# previews ----------------------------------------------------------------------


def _preview_info(row: Any) -> PreviewInfo:
    return PreviewInfo(
        id=row.id,
        scope=row.scope_label,
        rules=_rule_models(policies.rules_from_json(row.rules)),
        saved=row.saved,
        created_at=iso(row.created_at),
        created_by=row.created_by,
        expires_at=iso(row.expires_at),
        images=row.image_count,
        tags=row.tag_count,
        remove=row.remove_count,
        keep=row.tag_count - row.remove_count,
        freed=row.freed,
        kept=row.kept,
        freed_blobs=row.freed_blobs,
        kept_blobs=row.kept_blobs,
        plan_ms=row.plan_ms,
    )


def _preview_row(
    conn: Connection, caller: Authenticated, preview_id: int
) -> tuple[Any, policies.Scope, WorkspaceAccess, set[int] | None]:
    row = policies.load_preview(conn, preview_id, now_ms())
    scope = policies.scope_by_key(conn, row.scope)
    try:
        _, access, readable = _visible_scope(conn, caller.user, scope.workspace, scope.repository)
    except NotFound:
        raise NotFound(f"no preview {preview_id}", detail={"preview_id": preview_id}) from None
    return row, scope, access, readable


class _Labelled:
    """A preview row with its scope's label (rows hold the scope's key)."""

    def __init__(self, row: Any, label: str) -> None:
        self._row = row
        self.scope_label = label

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


def _preview(
    caller: Authenticated, ws: str, repository: str | None, body: PreviewRequest | None
) -> PreviewInfo:
    reg = caller.registry
    given = _rules(body.rules) if body is not None and body.rules is not None else None
    with reg.db.read() as conn:
        scope, access, _readable = _visible_scope(conn, caller.user, ws, repository)
        if given is not None:
            _require_admin(conn, caller.user, scope, access, "preview rules it has not saved")
    preview_id = policies.preview(reg, scope, given, caller.name)
    with reg.db.read() as conn:
        row = policies.load_preview(conn, preview_id, 0)
        return _preview_info(_Labelled(row, scope.label))


@router.post(
    "/workspaces/{ws}/policy/previews",
    response_model=PreviewInfo,
    status_code=201,
    summary="Plan the workspace policy now (the saved one: read; given rules: workspace admin)",
)
def preview_workspace(
    caller: Authenticated, ws: str, body: PreviewRequest | None = None
) -> PreviewInfo:
    return _preview(caller, ws, None, body)


@router.post(
    "/workspaces/{ws}/repositories/{slug}/policy/previews",
    response_model=PreviewInfo,
    status_code=201,
    summary="Plan the repository policy now (the saved one: read; given rules: admin)",
)
def preview_repository(
    caller: Authenticated, ws: str, slug: str, body: PreviewRequest | None = None
) -> PreviewInfo:
    return _preview(caller, ws, slug, body)


@router.get(
    "/policy-previews/{preview_id}", response_model=PreviewInfo, summary="A preview's summary"
)
def get_preview(caller: Authenticated, preview_id: PreviewId) -> PreviewInfo:
    with caller.registry.db.read() as conn:
        row, scope, _access, _readable = _preview_row(conn, caller, preview_id)
        return _preview_info(_Labelled(row, scope.label))


PREVIEW_ORDER = Sort("position", False)  # a preview's own order: image, then tag name


@router.get(
    "/policy-previews/{preview_id}/tags",
    response_model=Page[PreviewTag],
    summary="The preview's tags, image by image, each with its action and deciding rule",
)
def preview_tags(
    caller: Authenticated,
    preview_id: PreviewId,
    action: Annotated[Literal["remove", "keep"] | None, Query()] = None,
    image_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    c = s.policy_preview_chunks.c
    start = decode_cursor(cursor, PREVIEW_ORDER, (int,))[0] + 1 if cursor else 0
    counted = {
        None: c.tag_count,
        "remove": c.remove_count,
        "keep": c.tag_count - c.remove_count,
    }[action]
    picked: list[tuple[int, str, int, PreviewRow]] = []  # (image id, image, position, row)
    more = False
    with caller.registry.db.read() as conn:
        _row, _scope, _access, readable = _preview_row(conn, caller, preview_id)
        where: list[Any] = [c.preview_id == preview_id, counted > 0]
        if image_id is not None:
            where.append(c.image_id == image_id)
        if readable is not None:
            where.append(c.repository_id.in_(sorted(readable)))
        total = conn.execute(select(func.coalesce(func.sum(counted), 0)).where(*where)).scalar_one()
        # The chunks holding positions from ``start`` on, opened one by one until the
        # page is full (a chunk with none of the asked action is never opened).
        chunks = conn.execute(
            select(c.position, c.image_id, c.image, c.rows)
            .where(*where, c.position + c.tag_count > start)
            .order_by(c.position)
        )
        for first, chunk_image, image, data in chunks:
            for offset, row in enumerate(decode_chunk(data)):
                position = first + offset
                if position < start or (action is not None and row.remove != (action == "remove")):
                    continue
                if len(picked) == limit:
                    more = True
                    break
                picked.append((chunk_image, image, position, row))
            if more:
                break
        chunks.close()
    items = [
        PreviewTag.model_construct(
            image_id=chunk_image,
            image=image,
            tag=r.tag,
            digest=r.digest,
            action="remove" if r.remove else "keep",
            rule=r.rule,
            reason=r.reason,
            pushed_at=iso(r.pushed_at),
            last_pulled=iso_or_none(r.last_pulled),
            size=r.size,
        )
        for chunk_image, image, _, r in picked
    ]
    next_cursor = encode_cursor(PREVIEW_ORDER, [picked[-1][2]]) if more else None
    return json_response(Page[PreviewTag](items=items, next_cursor=next_cursor, total=total))


@router.get(
    "/policy-previews/{preview_id}/images",
    response_model=Page[PreviewImage],
    summary="Per image of the preview: how many tags go and how many stay",
)
def preview_images(
    caller: Authenticated,
    preview_id: PreviewId,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[PreviewImage]:
    c = s.policy_preview_chunks.c
    with caller.registry.db.read() as conn:
        _row, _scope, _access, readable = _preview_row(conn, caller, preview_id)
        where: list[Any] = [c.preview_id == preview_id]
        if readable is not None:
            where.append(c.repository_id.in_(sorted(readable)))
        rows = conn.execute(
            select(
                c.image_id,
                c.image,
                func.sum(c.remove_count),
                func.sum(c.tag_count - c.remove_count),
            )
            .where(*where)
            .group_by(c.image_id, c.image)
        ).all()
    items = [
        PreviewImage(image_id=r[0], image=r[1], remove=int(r[2]), keep=int(r[3])) for r in rows
    ]
    return page_of(items, lambda x: x.image, limit, cursor, Sort("image", False))


# runs --------------------------------------------------------------------------


def _run_info(conn: Connection, row: Any) -> PolicyRunInfo:
    scope = policies.scope_by_key(conn, row.scope)
    return PolicyRunInfo(
        id=row.id,
        scope=scope.label,
        trigger=row.trigger,
        actor=row.actor,
        node=row.node,
        state=row.state,
        preview_id=row.preview_id,
        rules=_rule_models(policies.rules_from_json(row.rules)),
        started_at=iso(row.started_at),
        finished_at=iso_or_none(row.finished_at),
        tags_planned=row.tags_planned,
        tags_deleted=row.tags_deleted,
        tags_changed=row.tags_changed,
        tags_missing=row.tags_missing,
        bytes_freed=row.bytes_freed,
        error=row.error,
    )


def _read_run(caller: Authenticated, run_id: int) -> PolicyRunInfo:
    with caller.registry.db.read() as conn:
        row = conn.execute(select(s.policy_runs).where(s.policy_runs.c.id == run_id)).first()
        if row is not None:
            scope = policies.scope_by_key(conn, row.scope)
            try:
                _visible_scope(conn, caller.user, scope.workspace, scope.repository)
            except NotFound:
                row = None
        if row is None:
            raise NotFound(f"no cleanup run {run_id}", detail={"run_id": run_id})
        return _run_info(conn, row)


@router.post(
    "/policy-previews/{preview_id}/runs",
    response_model=PolicyRunInfo,
    status_code=202,
    responses=documented(409),
    summary="Run exactly this preview's plan (admin of its scope); tags moved since stay",
)
def run_preview(
    caller: Authenticated, preview_id: PreviewId, body: PreviewRun | None = None
) -> PolicyRunInfo:
    reg = caller.registry
    with reg.db.read() as conn:
        _row, scope, access, _readable = _preview_row(conn, caller, preview_id)
        _require_admin(conn, caller.user, scope, access, "run its cleanup policy")
    keep = [(k.image_id, k.tag) for k in (body.keep if body is not None else [])]
    run_id, scope, removals = policies.run_preview(reg, preview_id, caller.name, keep=keep)
    reg.start_background(
        f"policy-run-{run_id}",
        lambda: policies.run_plan(
            reg, run_id, scope, removals, caller.name, keep=keep, should_stop=reg.stopping
        ),
    )
    return _read_run(caller, run_id)


def _run_saved(caller: Authenticated, ws: str, repository: str | None) -> PolicyRunInfo:
    reg = caller.registry
    now = now_ms()
    with reg.db.write() as conn:
        scope, access, _readable = _visible_scope(conn, caller.user, ws, repository)
        _require_admin(conn, caller.user, scope, access, "run its cleanup policy")
        policy = policies.get_policy(conn, scope) or policies.no_policy(scope)
        run_id = policies.start_run(
            conn,
            scope,
            rules=policy.rules,
            trigger=policies.MANUAL,
            actor=caller.name,
            preview_id=None,
            planned=0,
            now=now,
        )
    reg.start_background(
        f"policy-run-{run_id}",
        lambda: policies.run_saved(
            reg, scope, policies.MANUAL, caller.name, should_stop=reg.stopping, claimed_run=run_id
        ),
    )
    return _read_run(caller, run_id)


@router.post(
    "/workspaces/{ws}/policy/runs",
    response_model=PolicyRunInfo,
    status_code=202,
    responses=documented(409),
    summary="Plan the saved workspace policy and run that plan now (workspace admin)",
)
def run_workspace_policy(caller: Authenticated, ws: str) -> PolicyRunInfo:
    return _run_saved(caller, ws, None)


@router.post(
    "/workspaces/{ws}/repositories/{slug}/policy/runs",
    response_model=PolicyRunInfo,
    status_code=202,
    responses=documented(409),
    summary="Plan the saved repository policy and run that plan now (admin)",
)
def run_repository_policy(caller: Authenticated, ws: str, slug: str) -> PolicyRunInfo:
    return _run_saved(caller, ws, slug)


@router.get("/policy-runs/{run_id}", response_model=PolicyRunInfo, summary="A cleanup run")
def get_run(caller: Authenticated, run_id: RunId) -> PolicyRunInfo:
    return _read_run(caller, run_id)


@router.get(
    "/workspaces/{ws}/policy-runs",
    response_model=Page[PolicyRunInfo],
    summary="Cleanup runs in the workspace, newest first (those of scopes you may see)",
)
def list_runs(
    caller: Authenticated, ws: str, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[PolicyRunInfo]:
    r = s.policy_runs.c
    with caller.registry.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        readable = readable_in(conn, caller.user, access)
        where: list[Any] = [r.workspace_id == access.id]
        if readable is not None:
            where.append(r.repository_id.is_(None) | r.repository_id.in_(sorted(readable)))
        total = conn.execute(select(func.count()).select_from(s.policy_runs).where(*where))
        rows, next_cursor = keyset_page(
            conn,
            select(s.policy_runs).where(*where),
            [r.id],
            Sort("id", True),
            (int,),
            limit,
            cursor,
            lambda row: [row.id],
        )
        return Page[PolicyRunInfo](
            items=[_run_info(conn, row) for row in rows],
            next_cursor=next_cursor,
            total=total.scalar_one(),
        )
