"""Cleanup policies through the management API (``BerthApi.cleanup``): the policy of
a workspace or repository, previews (the exact plan, tag by tag, with the storage
effect), runs of a preview or of the saved policy, and the run history.

Rules are :class:`app.core.cleanup.Rule`, checked here as the registry checks them,
so an editor can say what is wrong with a rule before sending it. Every failure is
one of :mod:`app.client.errors`: ``PermissionDenied`` names what is missing
(workspace admin for a workspace policy, admin on the repository for its own),
``Conflict`` when a run of the scope is still going, ``NotFound`` for an expired
preview.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.client.berth_api import API, BerthApi, Page, _Fields, _page, _q, _strs, _time
from app.client.errors import ProtocolError
from app.client.transport import json_object, send
from app.core.cleanup import PolicyError, Rule, parse_rules


def _scope_path(ws: str, repository: str | None) -> str:
    path = f"/workspaces/{_q(ws)}"
    return path + (f"/repositories/{_q(repository)}" if repository else "")


def _rules(value: Any, what: str) -> tuple[Rule, ...]:
    try:
        return parse_rules(value if isinstance(value, list) else [])
    except PolicyError as exc:
        raise ProtocolError(
            f"{what}: the registry sent a rule this app cannot read: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class Policy:
    scope: str  # "acme" or "acme/web"
    rules: tuple[Rule, ...]  # empty: no policy
    interval: int | None  # seconds between scheduled runs
    next_run_at: datetime | None
    updated_at: datetime | None
    updated_by: str | None
    covers: tuple[str, ...]  # repository slugs it decides (that you may read)

    @classmethod
    def parse(cls, body: Any) -> Policy:
        f = _Fields(body, "cleanup policy")
        return cls(
            scope=f.text("scope"),
            rules=_rules(f.body.get("rules"), "cleanup policy"),
            interval=f.body["interval"] if isinstance(f.body.get("interval"), int) else None,
            next_run_at=_time(f.body.get("next_run_at")),
            updated_at=_time(f.body.get("updated_at")),
            updated_by=f.opt_text("updated_by"),
            covers=_strs(f.body.get("covers")),
        )


@dataclass(frozen=True, slots=True)
class Preview:
    id: int
    scope: str
    rules: tuple[Rule, ...]
    saved: bool
    created_at: datetime | None
    expires_at: datetime | None
    images: int
    tags: int
    remove: int
    keep: int
    freed: int  # bytes GC frees after the removed tags go
    kept: int  # bytes of theirs that stay: other tags or images use them
    plan_ms: int

    @classmethod
    def parse(cls, body: Any) -> Preview:
        f = _Fields(body, "preview")
        return cls(
            id=f.num("id"),
            scope=f.text("scope"),
            rules=_rules(f.body.get("rules"), "preview"),
            saved=bool(f.body.get("saved")),
            created_at=_time(f.body.get("created_at")),
            expires_at=_time(f.body.get("expires_at")),
            images=f.num("images"),
            tags=f.num("tags"),
            remove=f.num("remove"),
            keep=f.num("keep"),
            freed=f.num("freed"),
            kept=f.num("kept"),
            plan_ms=f.opt_num("plan_ms"),
        )


@dataclass(frozen=True, slots=True)
class PreviewTag:
    image_id: int
    image: str
    tag: str
    digest: str
    remove: bool
    rule: str | None  # the deciding rule, "index"/"subject", or None (no rule matched)
    reason: str
    pushed_at: datetime | None
    last_pulled: datetime | None
    size: int

    @classmethod
    def parse(cls, body: Any) -> PreviewTag:
        f = _Fields(body, "preview tag")
        action = f.text("action")
        if action not in ("remove", "keep"):
            raise ProtocolError(f"preview tag: unknown action {action!r}.")
        return cls(
            image_id=f.num("image_id"),
            image=f.text("image"),
            tag=f.text("tag"),
            digest=f.text("digest"),
            remove=action == "remove",
            rule=f.opt_text("rule"),
            reason=f.opt_text("reason") or "",
            pushed_at=_time(f.body.get("pushed_at")),
            last_pulled=_time(f.body.get("last_pulled")),
            size=f.opt_num("size"),
        )


@dataclass(frozen=True, slots=True)
class PreviewImage:
    image_id: int
    image: str
    remove: int
    keep: int

    @classmethod
    def parse(cls, body: Any) -> PreviewImage:
        f = _Fields(body, "preview image")
        return cls(f.num("image_id"), f.text("image"), f.num("remove"), f.num("keep"))


@dataclass(frozen=True, slots=True)
class PolicyRun:
    id: int
    scope: str
    trigger: str  # "manual" | "schedule"
    actor: str | None
    state: str  # "running" | "done" | "failed"
    preview_id: int | None
    started_at: datetime | None
    finished_at: datetime | None
    tags_planned: int
    tags_deleted: int
    tags_changed: int  # left alone: pushed again onto another digest since the plan
    tags_missing: int
    bytes_freed: int
    error: str | None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @classmethod
    def parse(cls, body: Any) -> PolicyRun:
        f = _Fields(body, "cleanup run")
        preview = f.body.get("preview_id")
        return cls(
            id=f.num("id"),
            scope=f.text("scope"),
            trigger=f.text("trigger"),
            actor=f.opt_text("actor"),
            state=f.text("state"),
            preview_id=preview if isinstance(preview, int) else None,
            started_at=_time(f.body.get("started_at")),
            finished_at=_time(f.body.get("finished_at")),
            tags_planned=f.num("tags_planned"),
            tags_deleted=f.num("tags_deleted"),
            tags_changed=f.opt_num("tags_changed"),
            tags_missing=f.opt_num("tags_missing"),
            bytes_freed=f.opt_num("bytes_freed"),
            error=f.opt_text("error"),
        )


class CleanupApi:
    """The cleanup endpoints of one :class:`~app.client.berth_api.BerthApi`."""

    def __init__(self, api: BerthApi) -> None:
        self.api = api

    async def _send(self, method: str, path: str, what: str, body: Any = None) -> Any:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        response = await send(self.api.http, method, API + path, what=what, **kwargs)
        return None if response.status_code == 204 else json_object(response, what=what)

    async def policy(self, ws: str, repository: str | None = None) -> Policy:
        path = _scope_path(ws, repository)
        return Policy.parse(await self.api._get(path + "/policy", "Reading the cleanup policy"))

    async def set_policy(
        self,
        ws: str,
        repository: str | None,
        rules: Sequence[Rule],
        interval: int | None = None,
    ) -> Policy:
        if not rules:
            raise ValueError("a policy needs at least one rule (remove it instead)")
        body = {"rules": [r.as_dict() for r in rules], "interval": interval}
        path = _scope_path(ws, repository) + "/policy"
        return Policy.parse(await self._send("PUT", path, "Saving the cleanup policy", body))

    async def delete_policy(self, ws: str, repository: str | None = None) -> None:
        path = _scope_path(ws, repository) + "/policy"
        await self._send("DELETE", path, "Removing the cleanup policy")

    async def preview(
        self, ws: str, repository: str | None = None, rules: Sequence[Rule] | None = None
    ) -> Preview:
        """Plan the saved policy (``rules`` None) or the rules given, without saving."""
        body = {} if rules is None else {"rules": [r.as_dict() for r in rules]}
        path = _scope_path(ws, repository) + "/policy/previews"
        return Preview.parse(await self.api._post(path, "Previewing the cleanup policy", body))

    async def preview_info(self, preview_id: int) -> Preview:
        return Preview.parse(
            await self.api._get(f"/policy-previews/{preview_id}", "Reading the preview")
        )

    async def preview_tags(
        self,
        preview_id: int,
        *,
        action: str | None = None,
        image_id: int | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> Page[PreviewTag]:
        body = await self.api._get(
            f"/policy-previews/{preview_id}/tags",
            "Reading the preview",
            {"action": action, "image_id": image_id, "limit": limit, "cursor": cursor},
        )
        return _page(body, PreviewTag.parse)

    async def preview_images(
        self, preview_id: int, *, limit: int = 1000, cursor: str | None = None
    ) -> Page[PreviewImage]:
        body = await self.api._get(
            f"/policy-previews/{preview_id}/images",
            "Reading the preview",
            {"limit": limit, "cursor": cursor},
        )
        return _page(body, PreviewImage.parse)

    async def run_preview(self, preview_id: int, keep: Sequence[tuple[int, str]] = ()) -> PolicyRun:
        """Run exactly the preview's plan, except ``keep`` ((image id, tag) pairs);
        it runs in the background: poll :meth:`run` until it is no longer running."""
        body = {"keep": [{"image_id": i, "tag": t} for i, t in keep]}
        return PolicyRun.parse(
            await self.api._post(f"/policy-previews/{preview_id}/runs", "Starting the run", body)
        )

    async def run_policy(self, ws: str, repository: str | None = None) -> PolicyRun:
        path = _scope_path(ws, repository) + "/policy/runs"
        return PolicyRun.parse(await self.api._post(path, "Starting the run", {}))

    async def run(self, run_id: int) -> PolicyRun:
        return PolicyRun.parse(
            await self.api._get(f"/policy-runs/{run_id}", "Reading the cleanup run")
        )

    async def runs(
        self, ws: str, *, limit: int = 100, cursor: str | None = None
    ) -> Page[PolicyRun]:
        body = await self.api._get(
            f"/workspaces/{_q(ws)}/policy-runs",
            f"Cleanup runs of {ws}",
            {"limit": limit, "cursor": cursor},
        )
        return _page(body, PolicyRun.parse)
