"""The audit log of a workspace (deletions, GC runs, administration), newest first."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select

from app.registry.api.context import Authenticated, workspace_admin
from app.registry.api.errors import documented
from app.registry.api.models import AuditEntry
from app.registry.api.paging import DEFAULT_LIMIT, Cursor, Limit, Page, Sort, keyset_page
from app.registry.api.times import iso
from app.registry.db import schema as s

router = APIRouter(responses=documented(400, 401, 403, 404, 503))
NEWEST_FIRST = Sort("id", True)


def _detail(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@router.get(
    "/workspaces/{ws}/audit",
    response_model=Page[AuditEntry],
    summary="Who deleted what and when, and what GC did (workspace admin)",
)
def audit_log(
    caller: Authenticated, ws: str, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[AuditEntry]:
    a = s.audit_log.c
    with caller.registry.db.read() as conn:
        access = workspace_admin(conn, caller.user, ws, "read the audit log")
        where = a.workspace_id == access.id
        total = conn.execute(select(func.count()).where(where)).scalar_one()
        rows, next_cursor = keyset_page(
            conn,
            select(s.audit_log).where(where),
            [a.id],
            NEWEST_FIRST,
            (int,),
            limit,
            cursor,
            lambda row: [row.id],
        )
    return Page[AuditEntry](
        items=[
            AuditEntry(
                id=r.id,
                at=iso(r.at),
                actor=r.actor,
                action=r.action,
                target=r.target,
                detail=_detail(r.detail),
            )
            for r in rows
        ],
        next_cursor=next_cursor,
        total=total,
    )
