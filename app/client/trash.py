"""Recently deleted through the management API (``BerthApi.trash``): list the trash
of a workspace, repository or image, restore entries (with a result per entry), and
empty it (all of it, or the entries given).

Restoring answers per entry: ``restored``, ``conflict`` (the name was pushed again
since: restore it under another name), ``not_found`` (restored, emptied or expired
meanwhile), ``forbidden`` (a tag needs write, an image admin) or ``invalid`` (a bad
new name). Every failure of a request as a whole is one of :mod:`app.client.errors`:
``PermissionDenied`` names what is missing (emptying needs admin), ``NotFound`` for
a workspace or repository the caller cannot see, ``ServerError`` (400) for a refused body,
``ProtocolError`` for an answer that breaks the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.client.berth_api import BerthApi, Page, _Fields, _page, _q, _time
from app.client.errors import ProtocolError

KINDS = ("tag", "manifest", "image")
RESTORE_STATUSES = ("restored", "conflict", "not_found", "forbidden", "invalid")
EMPTY_STATUSES = ("emptied", "not_found", "forbidden")


def _when(f: _Fields, key: str) -> datetime:
    value = _time(f.body.get(key))
    if value is None:
        raise ProtocolError(f"{f.what}: field {key!r} is missing or not a time.")
    return value


def _one_of(f: _Fields, key: str, allowed: Sequence[str]) -> str:
    value = f.text(key)
    if value not in allowed:
        raise ProtocolError(f"{f.what}: unknown {key} {value!r}.")
    return value


@dataclass(frozen=True, slots=True)
class TrashEntry:
    id: int
    kind: str  # "tag" | "manifest" (deleted by digest, untagged) | "image" (with its tags)
    image_id: int
    image: str  # full name
    repository: str
    tag: str | None
    digest: str | None
    replaced_by: str | None  # a tag moved by a push: the digest it went to
    size: int
    tag_count: int
    action: str  # how it was deleted (tag.delete, manifest.delete, image.delete, ...)
    deleted_by: str | None
    deleted_at: datetime
    expires_at: datetime  # restorable until then; GC frees what it holds afterwards

    @classmethod
    def parse(cls, body: Any) -> TrashEntry:
        f = _Fields(body, "trash entry")
        return cls(
            id=f.num("id"),
            kind=_one_of(f, "kind", KINDS),
            image_id=f.num("image_id"),
            image=f.text("image"),
            repository=f.text("repository"),
            tag=f.opt_text("tag"),
            digest=f.opt_text("digest"),
            replaced_by=f.opt_text("replaced_by"),
            size=f.num("size"),
            tag_count=f.opt_num("tag_count"),
            action=f.text("action"),
            deleted_by=f.opt_text("deleted_by"),
            deleted_at=_when(f, "deleted_at"),
            expires_at=_when(f, "expires_at"),
        )


@dataclass(frozen=True, slots=True)
class RestoreResult:
    id: int
    status: str  # one of RESTORE_STATUSES
    message: str
    image_id: int | None
    tag: str | None  # the name a tag came back under
    digest: str | None

    @property
    def restored(self) -> bool:
        return self.status == "restored"

    @classmethod
    def parse(cls, body: Any) -> RestoreResult:
        f = _Fields(body, "restore result")
        image = f.body.get("image_id")
        return cls(
            id=f.num("id"),
            status=_one_of(f, "status", RESTORE_STATUSES),
            message=f.opt_text("message") or "",
            image_id=image if isinstance(image, int) and not isinstance(image, bool) else None,
            tag=f.opt_text("tag"),
            digest=f.opt_text("digest"),
        )


@dataclass(frozen=True, slots=True)
class EmptyResult:
    id: int
    status: str  # one of EMPTY_STATUSES

    @classmethod
    def parse(cls, body: Any) -> EmptyResult:
        f = _Fields(body, "empty result")
        return cls(f.num("id"), _one_of(f, "status", EMPTY_STATUSES))


class TrashApi:
    """The trash endpoints of one :class:`~app.client.berth_api.BerthApi`."""

    def __init__(self, api: BerthApi) -> None:
        self.api = api

    async def entries(
        self,
        ws: str,
        *,
        repository: str | None = None,
        image_id: int | None = None,
        q: str | None = None,
        kind: str | None = None,
        deleted_by: str | None = None,
        sort: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[TrashEntry]:
        """One page of the trash, newest first unless ``sort`` says otherwise
        (deleted_at, expires_at, size, image; '-' prefix: descending)."""
        body = await self.api._get(
            f"/workspaces/{_q(ws)}/trash",
            f"Recently deleted in {ws}",
            {
                "repository": repository,
                "image_id": image_id,
                "q": q,
                "kind": kind,
                "deleted_by": deleted_by,
                "sort": sort,
                "limit": limit,
                "cursor": cursor,
            },
        )
        return _page(body, TrashEntry.parse)

    async def restore(
        self, ws: str, entries: Sequence[int | tuple[int, str]]
    ) -> list[RestoreResult]:
        """Restore entries: an id, or (id, new name) to restore under another name.
        A result per entry, in the order given."""
        if not entries:
            return []
        items = [{"id": x} if isinstance(x, int) else {"id": x[0], "as": x[1]} for x in entries]
        body = await self.api._post(
            f"/workspaces/{_q(ws)}/trash/restore", "Restoring", {"entries": items}
        )
        f = _Fields(body, "restore")
        results = [RestoreResult.parse(r) for r in f.items("results")]
        if len(results) != len(items):
            raise ProtocolError(f"restore: {len(results)} results for {len(items)} entries asked.")
        return results

    async def empty(
        self,
        ws: str,
        entries: Sequence[int] | None = None,
        *,
        repository: str | None = None,
        older_than_s: float | None = None,
    ) -> list[EmptyResult]:
        """Empty the entries given, or (``entries`` None) all of the workspace's (of
        ``repository``, deleted at least ``older_than_s`` ago): GC then frees what
        they held. A result per entry."""
        payload: dict[str, Any]
        if entries is not None:
            payload = {"entries": list(entries)}
        else:
            payload = {"all": True}
            if repository is not None:
                payload["repository"] = repository
            if older_than_s is not None:
                payload["older_than_s"] = older_than_s
        body = await self.api._post(
            f"/workspaces/{_q(ws)}/trash/empty", "Emptying the trash", payload
        )
        return [EmptyResult.parse(r) for r in _Fields(body, "empty").items("results")]
