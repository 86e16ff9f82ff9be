"""``berth-registry trash list|restore|empty --data DIR``: recently deleted from the
command line (for scripts and checks), on the same code as the API.

``list --json`` prints one JSON object per line, one per entry: id, kind, image,
tag, digest, replaced_by, size, action, deleted_at, deleted_by, expires_at (times
ISO 8601, UTC). ``restore W/R/I:TAG`` restores the tag's newest entry (``--as NEWTAG``
under another name); ``restore W/R/I`` the image's newest entry. ``empty`` lets go
of the entries (all, or of ``--workspace``, deleted at least ``--older-than``
seconds ago): GC then frees what they held.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy import Connection, select

from app.core.names import InvalidName, validate_image_path, validate_tag
from app.core.units import format_bytes
from app.registry import accounts, cli_args, trash, trash_records
from app.registry.api.times import iso
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.errors import RegistryError
from app.registry.service import Registry

ACTOR = "cli"
e = s.trash_entries.c


def add_parsers(sub: cli_args.SubParsers) -> None:
    tr = sub.add_parser("trash", help="recently deleted tags and images").add_subparsers(
        dest="action", required=True, parser_class=cli_args.Parser
    )
    list_ = tr.add_parser("list", help="what the trash holds, newest first")
    cli_args.add_data(list_)
    list_.add_argument("--workspace", metavar="W")
    list_.add_argument("--image", metavar="W/R/I")
    list_.add_argument("--json", action="store_true", help="one JSON object per entry")
    restore = tr.add_parser("restore", help="restore a deleted tag (W/R/I:TAG) or image (W/R/I)")
    cli_args.add_data(restore)
    restore.add_argument("target", metavar="W/R/I[:TAG]")
    restore.add_argument("--as", dest="as_name", metavar="NEWTAG", help="restore under this name")
    empty = tr.add_parser("empty", help="empty the trash: GC then frees what it held")
    cli_args.add_data(empty)
    empty.add_argument("--workspace", metavar="W")
    empty.add_argument("--older-than", type=cli_args.seconds, metavar="SECONDS")


def handle(args: argparse.Namespace) -> int:
    reg = Registry.open(args.data, database_url=args.database_url)
    try:
        trash.use_stored_retention(reg)
        return _ACTIONS[args.action](reg, args)
    finally:
        reg.close()


def _split(text: str) -> tuple[str, str, str, str | None]:
    """W/R/I[:TAG] -> (workspace, repository, image, tag)."""
    path, _, tag = text.partition(":")  # image names have no ':'
    parts = path.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise RegistryError(f"{text!r}: give workspace/repository/image[:tag]")
    try:
        validate_image_path(parts[2])
        if tag:
            validate_tag(tag)
    except InvalidName as exc:
        raise RegistryError(f"{text!r}: {exc}") from None
    return parts[0], parts[1], parts[2], tag or None


def _image_filter(conn: Connection, text: str) -> list[Any]:
    ws, repo_slug, image, _tag = _split(text)
    repo = accounts.find_repository(conn, ws, repo_slug)
    if repo is None:
        raise RegistryError(f"no repository {ws}/{repo_slug}")
    return [e.repository_id == repo.id, s.images.c.name == image]


def _list(reg: Registry, args: argparse.Namespace) -> int:
    with reg.db.read() as conn:
        ws_rows = conn.execute(select(s.workspaces.c.id, s.workspaces.c.slug)).all()
        if args.workspace is not None:
            ws_rows = [r for r in ws_rows if r.slug == args.workspace]
            if not ws_rows:
                raise RegistryError(f"no workspace {args.workspace!r}")
        where = _image_filter(conn, args.image) if args.image else []
        rows = [
            row
            for ws in ws_rows
            for row in conn.execute(
                trash.listing(ws.id).where(*where).order_by(e.deleted_at.desc(), e.id.desc())
            )
        ]
    rows.sort(key=lambda r: (r.deleted_at, r.id), reverse=True)
    for r in rows:
        if args.json:
            print(
                json.dumps(
                    {
                        "id": r.id,
                        "kind": r.kind,
                        "image": r.full_name,
                        "tag": r.tag,
                        "digest": r.digest,
                        "replaced_by": r.replaced_by,
                        "size": r.size,
                        "tag_count": r.tag_count,
                        "action": r.action,
                        "deleted_at": iso(r.deleted_at),
                        "deleted_by": r.deleted_by,
                        "expires_at": iso(r.expires_at),
                    }
                )
            )
        else:
            what = (
                f"{r.full_name} (image, {r.tag_count} tags)"
                if r.kind == trash_records.KIND_IMAGE
                else f"{r.full_name}:{r.tag}" if r.tag is not None else f"{r.full_name}@{r.digest}"
            )  # fmt: skip
            print(
                f"{r.id}\t{what}\t{r.digest or ''}\t{format_bytes(r.size)}\t{r.action} by "
                f"{r.deleted_by or '-'} at {iso(r.deleted_at)}, until {iso(r.expires_at)}"
            )
    if not rows and not args.json:
        print("trash: empty")
    return 0


def _restore(reg: Registry, args: argparse.Namespace) -> int:
    ws, repo_slug, image, tag = _split(args.target)
    with reg.db.read() as conn:
        repo = accounts.find_repository(conn, ws, repo_slug)
        if repo is None:
            raise RegistryError(f"no repository {ws}/{repo_slug}")
        q = (
            select(e.id)
            .join(s.images, s.images.c.id == e.image_id)
            .where(e.repository_id == repo.id, s.images.c.name == image)
            .order_by(e.deleted_at.desc(), e.id.desc())
            .limit(1)
        )
        if tag is not None:
            q = q.where(e.tag == tag)
        else:
            q = q.where(e.kind == trash_records.KIND_IMAGE)
        entry_id = conn.execute(q).scalar()
    if entry_id is None:
        raise RegistryError(f"{args.target} is not in the trash")
    (outcome,) = trash.restore(reg, [trash.Restoring(int(entry_id), args.as_name)], ACTOR)
    if outcome.status != trash.RESTORED:
        raise RegistryError(f"{args.target}: not restored: {outcome.message}")
    name = f"{ws}/{repo_slug}/{args.as_name if tag is None and args.as_name else image}"
    if tag is not None:
        print(f"restored {name}:{outcome.tag} on {outcome.digest}")
    else:
        print(f"restored {name}")
    return 0


def _empty(reg: Registry, args: argparse.Namespace) -> int:
    with reg.db.read() as conn:
        q = select(e.id).order_by(e.id)
        if args.workspace is not None:
            q = q.where(e.workspace_id == accounts.workspace_id(conn, args.workspace))
        if args.older_than is not None:
            q = q.where(e.deleted_at <= now_ms() - int(args.older_than * 1000))
        ids = list(conn.execute(q).scalars())
    gone = trash.empty(reg, ids, ACTOR) if ids else []
    print(f"trash: {len(gone)} entries emptied; GC frees what they held")
    return 0


_ACTIONS = {"list": _list, "restore": _restore, "empty": _empty}
