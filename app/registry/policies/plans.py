"""Cleanup policies in the registry: where they apply, the plan over their images,
previews, and the executor.

* A policy belongs to a workspace or to a repository; a repository's own policy
  overrides its workspace's, so a workspace policy covers the repositories that have
  none (:func:`covered_repositories`).
* :func:`make_plan` reads every tag of the covered images, and their manifest graph,
  in one read transaction (one moment) and asks the pure planner
  (:mod:`app.core.cleanup`) to decide each image. A preview stores that plan; a run
  executes exactly the stored plan (or, on a schedule, a plan made just before).
* The storage effect of a set of tag deletes (bytes that become unreferenced, which
  GC frees, and bytes kept because other tags or images still reach them) is the
  delete-impact code's (:mod:`app.registry.gc.storage`): a plan, which has read
  every tag of its images, asks it from the manifests of the tags that go and stay
  (``manifests_impact``); a run's chunk from the tag ids (:func:`storage_effect`).
  tests/registry/test_delete_impact_forms.py holds the two forms to one answer.
* :func:`execute` deletes through :func:`app.registry.content.delete_tags`, the path
  every tag delete takes, a chunk of one image per transaction, each tag only if it
  is still on the digest the plan saw (:func:`app.registry.content.tag_digests`
  locks the rows it reads, so the check and the delete are one step).
* Runs: at most one per scope at a time on every node (a partial unique index on
  running runs); a run whose node died (no heartbeat for ``STALE_MS``) is marked
  failed so the scope can run again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core.cleanup import ImageGraph, Rule, TagFacts, plan_image
from app.core.storage import DeleteImpact
from app.registry import content, cyclic_gc, pulls
from app.registry.db import schema as s
from app.registry.db.engine import Busy, inserted_id, now_ms
from app.registry.db.idsets import in_ids
from app.registry.errors import Conflict, NameUnknown, NotFound
from app.registry.gc import storage
from app.registry.policies import preview_rows
from app.registry.policies.preview_rows import PreviewRow
from app.registry.service import Registry
from app.registry.trash_records import POLICY_RUN

log = logging.getLogger(__name__)

PREVIEW_TTL_MS = 24 * 3600 * 1000
CHUNK = 500  # tags deleted per transaction
STALE_MS = 10 * 60 * 1000  # a running run silent this long is presumed dead
INSERT_BATCH = 1_000  # preview chunks per statement
MANUAL = "manual"
SCHEDULE = "schedule"
# Which process runs a run (several nodes share one database).
NODE = f"{socket.gethostname()}:{os.getpid()}"[:128]


# scopes and policies -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    workspace_id: int
    workspace: str
    repository_id: int | None = None
    repository: str | None = None

    @property
    def key(self) -> str:
        if self.repository_id is not None:
            return f"repo:{self.repository_id}"
        return f"ws:{self.workspace_id}"

    @property
    def label(self) -> str:
        return f"{self.workspace}/{self.repository}" if self.repository else self.workspace


def scope_of(conn: Connection, workspace: str, repository: str | None) -> Scope:
    ws = conn.execute(
        select(s.workspaces.c.id, s.workspaces.c.slug).where(s.workspaces.c.slug == workspace)
    ).first()
    if ws is None:
        raise NotFound(f"no workspace {workspace!r}", detail={"workspace": workspace})
    if repository is None:
        return Scope(ws.id, ws.slug)
    repo = conn.execute(
        select(s.repositories.c.id, s.repositories.c.slug).where(
            s.repositories.c.workspace_id == ws.id, s.repositories.c.slug == repository
        )
    ).first()
    if repo is None:
        raise NotFound(f"no repository {workspace}/{repository}", detail={"repository": repository})
    return Scope(ws.id, ws.slug, repo.id, repo.slug)


def scope_by_key(conn: Connection, key: str) -> Scope:
    kind, _, number = key.partition(":")
    if kind == "repo":
        row = conn.execute(
            select(s.workspaces.c.slug, s.repositories.c.slug)
            .join(s.repositories, s.repositories.c.workspace_id == s.workspaces.c.id)
            .where(s.repositories.c.id == int(number))
        ).one()
        return scope_of(conn, row[0], row[1])
    slug = conn.execute(
        select(s.workspaces.c.slug).where(s.workspaces.c.id == int(number))
    ).scalar_one()
    return scope_of(conn, slug, None)


@dataclass(frozen=True, slots=True)
class Policy:
    id: int
    scope: Scope
    rules: tuple[Rule, ...]
    interval_s: int | None
    next_run_at: int | None
    updated_at: int | None
    updated_by: str | None


def no_policy(scope: Scope) -> Policy:
    """What a scope without a policy has: no rules, so nothing is removed."""
    return Policy(0, scope, (), None, None, None, None)


def rules_json(rules: Sequence[Rule]) -> str:
    return json.dumps([r.as_dict() for r in rules])


def rules_from_json(text: str) -> tuple[Rule, ...]:
    from app.core.cleanup import parse_rules

    return parse_rules(json.loads(text))


def get_policy(conn: Connection, scope: Scope) -> Policy | None:
    c = s.cleanup_policies.c
    row = conn.execute(select(s.cleanup_policies).where(c.scope == scope.key)).first()
    if row is None:
        return None
    return Policy(
        row.id,
        scope,
        rules_from_json(row.rules),
        row.interval_s,
        row.next_run_at,
        row.updated_at,
        row.updated_by,
    )


def set_policy(
    conn: Connection,
    scope: Scope,
    rules: Sequence[Rule],
    interval_s: int | None,
    actor: str | None,
    now: int,
) -> Policy:
    """Create or replace the scope's policy; a schedule starts one interval from now."""
    c = s.cleanup_policies.c
    values = {
        "rules": rules_json(rules),
        "interval_s": interval_s,
        "next_run_at": now + interval_s * 1000 if interval_s else None,
        "updated_at": now,
        "updated_by": actor,
    }
    existing = conn.execute(select(c.id).where(c.scope == scope.key).with_for_update()).scalar()
    if existing is None:
        conn.execute(
            insert(s.cleanup_policies).values(
                workspace_id=scope.workspace_id,
                repository_id=scope.repository_id,
                scope=scope.key,
                **values,
            )
        )
    else:
        conn.execute(update(s.cleanup_policies).where(c.id == existing).values(**values))
    _audit(conn, scope, actor, "policy.set", {"rules": [r.as_dict() for r in rules],
                                               "interval_s": interval_s}, now)  # fmt: skip
    policy = get_policy(conn, scope)
    assert policy is not None
    return policy


def delete_policy(conn: Connection, scope: Scope, actor: str | None, now: int) -> bool:
    c = s.cleanup_policies.c
    gone = conn.execute(delete(s.cleanup_policies).where(c.scope == scope.key)).rowcount
    if gone:
        _audit(conn, scope, actor, "policy.delete", {}, now)
    return bool(gone)


def _audit(
    conn: Connection, scope: Scope, actor: str | None, action: str, detail: Any, now: int
) -> None:
    conn.execute(
        insert(s.audit_log).values(
            workspace_id=scope.workspace_id,
            at=now,
            actor=actor,
            action=action,
            target=scope.label,
            detail=json.dumps(detail, sort_keys=True),
        )
    )


def covered_repositories(conn: Connection, scope: Scope) -> list[int]:
    """The repositories a scope's policy decides: a repository's own, or for a
    workspace, those of its repositories that have no policy of their own."""
    if scope.repository_id is not None:
        return [scope.repository_id]
    r = s.repositories.c
    own = select(s.cleanup_policies.c.repository_id).where(
        s.cleanup_policies.c.workspace_id == scope.workspace_id,
        s.cleanup_policies.c.repository_id.is_not(None),
    )
    return list(
        conn.execute(
            select(r.id).where(r.workspace_id == scope.workspace_id, r.id.not_in(own))
        ).scalars()
    )


# plans -------------------------------------------------------------------------


class PlannedTag(NamedTuple):
    """A tag's row of a plan, for those who list a plan tag by tag (the CLI)."""

    image_id: int
    repository_id: int
    image: str  # full name
    tag_id: int
    row: PreviewRow


@dataclass(slots=True)
class PlannedImage:
    """One image's part of a plan: its tags in name order, as stored in a preview
    (lists in ``PreviewRow``'s field order; a plan makes 100,000 of them, and one
    object per tag between the planner and the preview cost a third of a preview)."""

    image_id: int
    repository_id: int
    image: str  # full name
    tag_ids: list[int]
    rows: list[list[Any]]  # [tag, digest, remove, rule, reason, pushed, pulled, size]


@dataclass(slots=True)
class Plan:
    scope: Scope
    rules: tuple[Rule, ...]
    made_at: int
    images: list[PlannedImage] = field(default_factory=list)
    tag_count: int = 0
    removal_ids: list[int] = field(default_factory=list)  # tag ids, in plan order
    effect: DeleteImpact = field(default_factory=lambda: DeleteImpact(0, 0, 0, 0))
    plan_ms: int = 0

    @property
    def image_count(self) -> int:
        return len(self.images)

    @property
    def remove_count(self) -> int:
        return len(self.removal_ids)

    @property
    def tags(self) -> Iterator[PlannedTag]:
        for x in self.images:
            for tag_id, row in zip(x.tag_ids, x.rows, strict=True):
                yield PlannedTag(x.image_id, x.repository_id, x.image, tag_id, PreviewRow(*row))

    @property
    def removals(self) -> list[tuple[int, str, str]]:
        """(image id, tag, digest) of every tag the plan removes."""
        return [(x.image_id, r[0], r[1]) for x in self.images for r in x.rows if r[2]]


@cyclic_gc.pausing  # see app.registry.cyclic_gc: a third of a large plan's time
def make_plan(
    conn: Connection, scope: Scope, rules: Sequence[Rule], now: int, *, effect: bool = True
) -> Plan:
    """The plan of ``rules`` over the scope's images, read in ``conn`` (one moment)."""
    started = time.perf_counter()
    plan = Plan(scope, tuple(rules), now)
    repo_ids = covered_repositories(conn, scope)
    if not repo_ids:
        return plan
    i, t, m, mc = s.images.c, s.tags.c, s.manifests.c, s.manifest_children.c
    repo_slugs = dict(
        conn.execute(
            select(s.repositories.c.id, s.repositories.c.slug).where(
                in_ids(conn, s.repositories.c.id, repo_ids)
            )
        ).all()
    )
    images = {
        row.id: row
        for row in conn.execute(
            select(i.id, i.repository_id, i.name).where(
                in_ids(conn, i.repository_id, repo_ids), i.trashed_at.is_(None)
            )
        )
    }
    if not images:
        return plan
    image_ids = sorted(images)
    in_scope = in_ids(conn, m.image_id, image_ids)
    # The scope's manifests: digests, last pulls, subjects, by id (joining them to
    # 100,000 tags in SQL cost more than looking them up here).
    digest_of: dict[int, str] = {}
    pulled_of: dict[int, int | None] = {}
    digests: dict[int, set[str]] = defaultdict(set)
    subjects: dict[int, dict[str, str]] = defaultdict(dict)
    for manifest_id, image_id, digest, pulled, subject in conn.execute(
        select(m.id, m.image_id, m.digest, m.last_pulled_at, m.subject_digest).where(in_scope)
    ).all():
        digest_of[manifest_id] = digest
        pulled_of[manifest_id] = pulled
        digests[image_id].add(digest)
        if subject is not None:
            subjects[image_id][digest] = subject
    # Per image, in name order (the unique index's, no sort; the planner's sorts by
    # name then find them sorted): the planner's facts, and beside them the tag ids,
    # sizes and manifest ids it does not look at. Plain rows: 100,000 rows read by
    # attribute name cost more than the planning itself.
    facts_of: dict[int, list[TagFacts]] = defaultdict(list)
    extra_of: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # id, size, manifest
    for tag_id, image_id, name, pushed, pulled, size, manifest_id in conn.execute(
        select(
            t.id, t.image_id, t.name, t.pushed_at, t.last_pulled_at, t.manifest_size, t.manifest_id
        )
        .where(in_ids(conn, t.image_id, image_ids))
        .order_by(t.image_id, t.name)
    ).all():
        digest_pulled = pulled_of[manifest_id]
        if digest_pulled is not None and (pulled is None or digest_pulled > pulled):
            pulled = digest_pulled  # the later of the tag's and its digest's pulls
        facts_of[image_id].append(TagFacts(name, digest_of[manifest_id], pushed, pulled))
        extra_of[image_id].append((tag_id, size, manifest_id))
    parent = s.manifests.alias("parent")
    child = s.manifests.alias("child")
    children: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for image_id, parent_digest, child_digest in conn.execute(
        select(parent.c.image_id, parent.c.digest, child.c.digest)
        .select_from(s.manifest_children)
        .join(parent, parent.c.id == mc.parent_id)
        .join(child, child.c.id == mc.child_id)
        .where(in_ids(conn, parent.c.image_id, image_ids))
    ).all():
        children[image_id][parent_digest].append(child_digest)
    tracked_since = pulls.tracked_since(conn)
    ws = scope.workspace
    # For the storage effect: the images losing tags, the manifests of the tags that
    # go and of those that stay there.
    losing: list[int] = []
    gone: set[int] = set()
    staying: set[int] = set()
    for image_id in sorted(
        images, key=lambda x: (repo_slugs[images[x].repository_id], images[x].name)
    ):
        facts = facts_of.get(image_id)
        if not facts:
            continue
        info = images[image_id]
        graph = ImageGraph(
            frozenset(digests[image_id]), children.get(image_id, {}), subjects.get(image_id, {})
        )
        decisions = plan_image(facts, graph, rules, now, tracked_since)
        extra = extra_of[image_id]
        if [d.tag for d in decisions] != [f.name for f in facts]:
            # The database's name order and Python's agree (code points; PostgreSQL's
            # tag names collate "C"); should they not, the planner's order wins.
            at = {f.name: n for n, f in enumerate(facts)}
            order = [at[d.tag] for d in decisions]
            facts = [facts[n] for n in order]
            extra = [extra[n] for n in order]
        rows = [
            [d.tag, d.digest, d.removes, d.rule, d.reason, f.pushed_at, f.last_pulled, size]
            for d, f, (_, size, _) in zip(decisions, facts, extra, strict=True)
        ]
        removed = [x for x, d in zip(extra, decisions, strict=True) if d.removes]
        if removed:
            plan.removal_ids.extend(tag_id for tag_id, _, _ in removed)
            gone.update(manifest_id for _, _, manifest_id in removed)
            staying.update(x[2] for x, d in zip(extra, decisions, strict=True) if not d.removes)
            losing.append(image_id)
        plan.tag_count += len(rows)
        full = f"{ws}/{repo_slugs[info.repository_id]}/{info.name}"
        tag_ids = [tag_id for tag_id, _, _ in extra]
        plan.images.append(PlannedImage(image_id, info.repository_id, full, tag_ids, rows))
    if effect:
        # What deleting plan.removal_ids does (storage_effect), from their manifests.
        plan.effect = storage.manifests_impact(conn, scope.workspace_id, losing, gone, staying)
    plan.plan_ms = int((time.perf_counter() - started) * 1000)
    return plan


def storage_effect(conn: Connection, workspace_id: int, tag_ids: Sequence[int]) -> DeleteImpact:
    """What deleting these tags does to storage now: bytes that become unreferenced
    (GC frees them after its review delay) and bytes of theirs that stay because other
    tags or images still reach them. The one computation previews and runs report."""
    if not tag_ids:
        return DeleteImpact(0, 0, 0, 0)
    return storage.delete_impact(conn, workspace_id, tag_ids, ())


# previews ----------------------------------------------------------------------


def save_preview(conn: Connection, plan: Plan, *, saved: bool, actor: str | None, now: int) -> int:
    """Store a plan as a preview; returns its id. Expired previews go at the same time."""
    conn.execute(delete(s.policy_previews).where(s.policy_previews.c.expires_at < now))
    scope = plan.scope
    preview_id = inserted_id(
        conn.execute(
            insert(s.policy_previews).values(
                workspace_id=scope.workspace_id,
                repository_id=scope.repository_id,
                scope=scope.key,
                rules=rules_json(plan.rules),
                saved=saved,
                created_at=now,
                created_by=actor,
                expires_at=now + PREVIEW_TTL_MS,
                image_count=plan.image_count,
                tag_count=plan.tag_count,
                remove_count=plan.remove_count,
                freed=plan.effect.freed,
                kept=plan.effect.kept,
                freed_blobs=plan.effect.freed_blobs,
                kept_blobs=plan.effect.kept_blobs,
                plan_ms=plan.plan_ms,
            )
        )
    )
    chunks: list[dict[str, Any]] = []
    position = 0
    for x in plan.images:
        for start in range(0, len(x.rows), preview_rows.CHUNK):
            rows = x.rows[start : start + preview_rows.CHUNK]
            chunks.append(
                {
                    "preview_id": preview_id,
                    "position": position,
                    "image_id": x.image_id,
                    "repository_id": x.repository_id,
                    "image": x.image,
                    "tag_count": len(rows),
                    "remove_count": sum(1 for r in rows if r[2]),
                    "rows": preview_rows.encode_chunk(rows),
                }
            )
            position += len(rows)
    for start in range(0, len(chunks), INSERT_BATCH):
        conn.execute(insert(s.policy_preview_chunks), chunks[start : start + INSERT_BATCH])
    return preview_id


@cyclic_gc.pausing  # the plan, then its rows encoded for storing
def preview(reg: Registry, scope: Scope, rules: Sequence[Rule] | None, actor: str | None) -> int:
    """Plan ``rules`` (None: the scope's saved policy) and store the plan."""
    now = now_ms()
    with reg.db.read() as conn:
        saved = rules is None
        if rules is None:
            rules = (get_policy(conn, scope) or no_policy(scope)).rules
        plan = make_plan(conn, scope, rules, now)
    with reg.db.write() as conn:
        return save_preview(conn, plan, saved=saved, actor=actor, now=now)


def load_preview(conn: Connection, preview_id: int, now: int) -> Any:
    row = conn.execute(
        select(s.policy_previews).where(s.policy_previews.c.id == preview_id)
    ).first()
    if row is None or row.expires_at < now:
        raise NotFound(
            f"no preview {preview_id} (previews expire after a day; make another)",
            detail={"preview_id": preview_id},
        )
    return row


def preview_removals(conn: Connection, preview_id: int) -> list[tuple[int, str, str]]:
    """(image id, tag, digest) of every tag the preview removes, in its order."""
    c = s.policy_preview_chunks.c
    return [
        (int(image_id), row.tag, row.digest)
        for image_id, data in conn.execute(
            select(c.image_id, c.rows)
            .where(c.preview_id == preview_id, c.remove_count > 0)
            .order_by(c.position)
        )
        for row in preview_rows.decode_chunk(data)
        if row.remove
    ]


# runs --------------------------------------------------------------------------


class RunInProgress(Conflict):
    pass


def start_run(
    conn: Connection,
    scope: Scope,
    *,
    rules: Sequence[Rule],
    trigger: str,
    actor: str | None,
    preview_id: int | None,
    planned: int,
    now: int,
) -> int:
    """Record a running run of the scope, or raise :class:`RunInProgress`. A run
    whose node went silent for ``STALE_MS`` is marked failed first."""
    r = s.policy_runs.c
    conn.execute(
        update(s.policy_runs)
        .where(r.scope == scope.key, r.state == "running", r.heartbeat_at < now - STALE_MS)
        .values(state="failed", finished_at=now, error="the node running it stopped answering")
    )
    try:
        with conn.begin_nested():
            return inserted_id(
                conn.execute(
                    insert(s.policy_runs).values(
                        workspace_id=scope.workspace_id,
                        repository_id=scope.repository_id,
                        scope=scope.key,
                        preview_id=preview_id,
                        rules=rules_json(rules),
                        trigger=trigger,
                        actor=actor,
                        node=NODE,
                        state="running",
                        started_at=now,
                        heartbeat_at=now,
                        tags_planned=planned,
                        tags_deleted=0,
                        tags_changed=0,
                        tags_missing=0,
                        bytes_freed=0,
                    )
                )
            )
    except IntegrityError:
        running = conn.execute(
            select(r.id).where(r.scope == scope.key, r.state == "running")
        ).scalar()
        raise RunInProgress(
            f"a cleanup run of {scope.label} is in progress (run {running}); wait for it to finish",
            detail={"scope": scope.label, "run_id": running},
        ) from None


@dataclass(slots=True)
class RunTally:
    deleted: int = 0
    changed: int = 0
    missing: int = 0
    bytes_freed: int = 0


ShouldStop = Callable[[], bool]


def execute(
    reg: Registry,
    run_id: int,
    removals: Iterable[tuple[int, str, str]],
    actor: str | None,
    *,
    keep: Iterable[tuple[int, str]] = (),
    should_stop: ShouldStop = lambda: False,
) -> RunTally:
    """Delete the planned tags (image id, tag, digest) except ``keep``, a chunk of one
    image per transaction, each only if still on the planned digest. Deletes go through
    ``content.delete_tags`` like every other tag delete (audit, events, GC queues)."""
    exceptions = set(keep)
    by_image: dict[int, dict[str, str]] = defaultdict(dict)
    for image_id, tag, digest in removals:
        if (image_id, tag) not in exceptions:
            by_image[image_id][tag] = digest
    tally = RunTally()
    for image_id in sorted(by_image):
        expected = by_image[image_id]
        names = sorted(expected)
        for start in range(0, len(names), CHUNK):
            if should_stop():
                raise InterruptedError("the registry is stopping")
            chunk = names[start : start + CHUNK]
            done = _delete_chunk(reg, run_id, image_id, chunk, expected, actor, tally)
            if done is not None:
                workspace_id, change = done
                for event in change.events:
                    reg.events.publish(workspace_id, event)
                reg.wake_gc()
    return tally


def _delete_chunk(
    reg: Registry,
    run_id: int,
    image_id: int,
    names: list[str],
    expected: dict[str, str],
    actor: str | None,
    tally: RunTally,
) -> tuple[int, content.Change] | None:
    """One transaction: delete those of ``names`` still on their planned digest, count
    the rest, and move the run's figures and heartbeat. Returns the change made."""
    for attempt in range(5):
        try:
            with reg.db.write() as conn:
                now = now_ms()
                image = content.image_by_id(conn, image_id)
                if image is not None:
                    try:
                        content.lock_image(conn, image)
                    except NameUnknown:  # deleted (into the trash) meanwhile
                        image = None
                if image is None:
                    missing, changed, deleted, freed = len(names), 0, 0, 0
                    change = None
                else:
                    now_on = content.tag_digests(conn, image, names)
                    wanted = [n for n in names if now_on.get(n) == expected[n]]
                    changed = sum(1 for n in names if n in now_on and now_on[n] != expected[n])
                    missing = len(names) - len(wanted) - changed
                    freed = 0
                    deleted = 0
                    change = None
                    if wanted:
                        ids = list(
                            conn.execute(
                                select(s.tags.c.id).where(
                                    s.tags.c.image_id == image.id, s.tags.c.name.in_(wanted)
                                )
                            ).scalars()
                        )
                        freed = storage_effect(conn, image.workspace_id, ids).freed
                        done, _missing, change = content.delete_tags(
                            conn, image, wanted, reg.timing, now, actor, how=POLICY_RUN
                        )
                        deleted = len(done)
                        for event in change.events:
                            event["policy_run"] = run_id
                r = s.policy_runs.c
                conn.execute(
                    update(s.policy_runs)
                    .where(r.id == run_id)
                    .values(
                        heartbeat_at=now,
                        tags_deleted=r.tags_deleted + deleted,
                        tags_changed=r.tags_changed + changed,
                        tags_missing=r.tags_missing + missing,
                        bytes_freed=r.bytes_freed + freed,
                    )
                )
            tally.deleted += deleted
            tally.changed += changed
            tally.missing += missing
            tally.bytes_freed += freed
            return (image.workspace_id, change) if image is not None and change else None
        except Busy:
            time.sleep(0.2 * (attempt + 1))
    raise Busy("the registry stayed busy; the run stopped")


def finish_run(
    reg: Registry, run_id: int, scope: Scope, tally: RunTally, error: str | None
) -> dict[str, Any]:
    r = s.policy_runs.c
    now = now_ms()
    with reg.db.write() as conn:
        conn.execute(
            update(s.policy_runs)
            .where(r.id == run_id)
            .values(state="failed" if error else "done", finished_at=now, error=error)
        )
        row = conn.execute(select(s.policy_runs).where(r.id == run_id)).one()
        _audit(
            conn,
            scope,
            row.actor,
            "policy.run",
            {
                "run_id": run_id,
                "trigger": row.trigger,
                "preview_id": row.preview_id,
                "tags_planned": row.tags_planned,
                "tags_deleted": row.tags_deleted,
                "tags_changed": row.tags_changed,
                "tags_missing": row.tags_missing,
                "bytes_freed": row.bytes_freed,
                "error": error,
            },
            now,
        )
    reg.events.publish(
        scope.workspace_id,
        {
            "type": "policy_run",
            "run_id": run_id,
            "repository_id": scope.repository_id,
            "scope": scope.label,
            "state": "failed" if error else "done",
            "tags_deleted": tally.deleted,
            "bytes_freed": tally.bytes_freed,
        },
    )
    return dict(row._mapping)


def run_plan(
    reg: Registry,
    run_id: int,
    scope: Scope,
    removals: list[tuple[int, str, str]],
    actor: str | None,
    *,
    keep: Iterable[tuple[int, str]] = (),
    should_stop: ShouldStop = lambda: False,
) -> dict[str, Any]:
    """Execute a started run to its end and record how it ended."""
    tally = RunTally()
    error = None
    try:
        tally = execute(reg, run_id, removals, actor, keep=keep, should_stop=should_stop)
    except Exception as exc:  # recorded on the run; the scope may run again
        log.exception("cleanup run %s of %s failed", run_id, scope.label)
        error = str(exc) or type(exc).__name__
    return finish_run(reg, run_id, scope, tally, error)


def run_preview(
    reg: Registry,
    preview_id: int,
    actor: str | None,
    *,
    keep: Iterable[tuple[int, str]] = (),
) -> tuple[int, Scope, list[tuple[int, str, str]]]:
    """Start a run of a stored preview; returns (run id, scope, removals) for
    :func:`run_plan` to execute (in the background, for the API)."""
    now = now_ms()
    with reg.db.write() as conn:
        row = load_preview(conn, preview_id, now)
        scope = scope_by_key(conn, row.scope)
        removals = preview_removals(conn, preview_id)
        exceptions = set(keep)
        planned = sum(1 for image_id, tag, _ in removals if (image_id, tag) not in exceptions)
        run_id = start_run(
            conn,
            scope,
            rules=rules_from_json(row.rules),
            trigger=MANUAL,
            actor=actor,
            preview_id=preview_id,
            planned=planned,
            now=now,
        )
    return run_id, scope, removals


def run_saved(
    reg: Registry,
    scope: Scope,
    trigger: str,
    actor: str | None,
    *,
    should_stop: ShouldStop = lambda: False,
    claimed_run: int | None = None,
) -> dict[str, Any]:
    """Plan the scope's saved policy now and execute that plan (schedules, the
    command line, "run the policy now")."""
    now = now_ms()
    try:
        with reg.db.read() as conn:
            policy = get_policy(conn, scope) or no_policy(scope)
            plan = make_plan(conn, scope, policy.rules, now, effect=False)
    except Exception as exc:
        if claimed_run is None:
            raise
        # A claimed run must end, or its scope waits STALE_MS to run again.
        log.exception("planning cleanup run %s of %s failed", claimed_run, scope.label)
        return finish_run(reg, claimed_run, scope, RunTally(), str(exc) or type(exc).__name__)
    removals = plan.removals
    if claimed_run is None:
        with reg.db.write() as conn:
            run_id = start_run(
                conn,
                scope,
                rules=policy.rules,
                trigger=trigger,
                actor=actor,
                preview_id=None,
                planned=len(removals),
                now=now,
            )
    else:
        run_id = claimed_run
        with reg.db.write() as conn:
            conn.execute(
                update(s.policy_runs)
                .where(s.policy_runs.c.id == run_id)
                .values(tags_planned=len(removals), rules=rules_json(policy.rules))
            )
    return run_plan(reg, run_id, scope, removals, actor, should_stop=should_stop)
