"""``berth-registry``: serve, and administer users, workspaces, projects,
repositories and grants from the command line.

Every administrative command runs in one transaction: a bad argument gives a
one-line error, exit code 2, and nothing half-written. Only ``init``, ``serve`` and
``demo`` create a registry; every other command refuses a data directory (or
database) that holds none, so a mistyped path is an error, not a new empty registry.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from app import __version__
from app.core.permissions import Permission
from app.registry import accounts, store_record, throttle, trash_records
from app.registry.blob_cache import BlobCache, default_size
from app.registry.blobstore import FileBlobStore, StoreUnavailable
from app.registry.cli_args import (
    EXIT_USAGE,
    SubParsers,
)
from app.registry.cli_args import Parser as _Parser
from app.registry.cli_args import add_data as _add_data
from app.registry.cli_args import count as _count
from app.registry.cli_args import port as _port
from app.registry.cli_args import seconds as _seconds
from app.registry.cli_args import size as _size
from app.registry.content import Timing
from app.registry.db import schema
from app.registry.db.engine import Busy, holds_schema, sqlite_url
from app.registry.errors import RegistryError
from app.registry.service import Registry
from app.registry.uploads import UPLOADS_PER_USER, UPLOADS_PER_WORKSPACE, UploadLimits

# The commands that may make a registry where there is none.
CREATING_COMMANDS = frozenset({"init", "serve", "demo"})


def _add_blob_store(p: argparse.ArgumentParser, more: str = "") -> None:
    p.add_argument(
        "--blob-store",
        metavar="URL",
        help="where blobs are stored: file:///path (default: --data) or s3://BUCKET[/PREFIX] "
        "(endpoint, region and credentials from the standard AWS environment: "
        "AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or "
        "the shared AWS config files)"
        + (
            more
            or "; the registry's first serve, gc, fsck "
            "or demo records it, and later ones must name the same store"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="berth-registry", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"berth-registry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    init = sub.add_parser("init", help="create an empty registry in a data directory")
    _add_data(init)
    _add_blob_store(
        init,
        "; given, it becomes the registry's store, which the other commands then must name "
        "(after moving the blobs)",
    )

    serve = sub.add_parser("serve", help="run the registry")
    _add_data(serve)
    _add_blob_store(serve)
    serve.add_argument(
        "--redirect-blobs",
        action="store_true",
        help="answer blob GETs with a redirect to a presigned URL of the object store",
    )
    serve.add_argument(
        "--blob-cache-size",
        type=_size,
        metavar="SIZE",
        help="with an object store: keep the blobs this node read whole twice, or "
        "received whole in an upload, in its memory, "
        "up to SIZE (default: an eighth of the node's memory or its container's "
        "limit, at most 1GiB; 0 keeps none)",
    )
    serve.add_argument(
        "--upload-ttl",
        type=_seconds,
        default=86400.0,
        metavar="SECONDS",
        help="end upload sessions idle this long, and abort their multipart uploads "
        "(default 86400)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=5000, help="0 picks a free port")
    serve.add_argument("--gc-review-delay", type=_seconds, default=300.0, metavar="SECONDS")
    serve.add_argument("--gc-upload-grace", type=_seconds, default=3600.0, metavar="SECONDS")
    serve.add_argument(
        "--trash-retention",
        type=_seconds,
        default=float(trash_records.WEEK_S),
        metavar="SECONDS",
        help="how long a deleted tag or image stays restorable, holding its storage "
        "(default 7 days; 0 turns the trash off: deletes are final)",
    )
    serve.add_argument(
        "--pull-flush-interval",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="how often pull times noted in memory are written (default 5; "
        "a crash loses at most this much of them)",
    )
    serve.add_argument(
        "--policy-check-interval",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="how often cleanup policies are checked for a scheduled run (default 5)",
    )
    serve.add_argument("--tls-cert", type=Path)
    serve.add_argument("--tls-key", type=Path)
    serve.add_argument(
        "--max-uploads-per-user",
        type=_count,
        default=UPLOADS_PER_USER,
        metavar="N",
        help=f"open upload sessions one user may hold (default {UPLOADS_PER_USER})",
    )
    serve.add_argument(
        "--max-uploads-per-workspace",
        type=_count,
        default=UPLOADS_PER_WORKSPACE,
        metavar="N",
        help=f"open upload sessions one workspace may hold (default {UPLOADS_PER_WORKSPACE})",
    )
    serve.add_argument(
        "--sign-in-free-failures",
        type=_count,
        default=throttle.USER_FREE_FAILURES,
        metavar="N",
        help=(
            "failed sign-ins a user name may have within an hour before it backs off"
            " (1 s, doubling, at most 15 min); an address may have"
            f" {throttle.ADDRESS_FREE_FAILURES // throttle.USER_FREE_FAILURES} times as many"
            f" (default {throttle.USER_FREE_FAILURES})"
        ),
    )
    serve.add_argument(
        "--auth-challenge",
        choices=["bearer", "basic"],
        default="bearer",
        help="scheme /v2/ offers in WWW-Authenticate (Basic is accepted either way)",
    )

    user = sub.add_parser("user", help="manage users").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    user_add = user.add_parser("add", help="create a user")
    _add_data(user_add)
    user_add.add_argument("name")
    user_add.add_argument("--password-stdin", action="store_true", required=True)
    user_add.add_argument("--superuser", action="store_true")
    user_pw = user.add_parser("passwd", help="set a user's password")
    _add_data(user_pw)
    user_pw.add_argument("name")
    user_pw.add_argument("--password-stdin", action="store_true", required=True)
    user_rm = user.add_parser(
        "remove", help="remove a user, their memberships and grants (logins end at once)"
    )
    _add_data(user_rm)
    user_rm.add_argument("name")

    ws = sub.add_parser("workspace", help="manage workspaces").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    ws_add = ws.add_parser("add", help="create a workspace")
    _add_data(ws_add)
    ws_add.add_argument("slug")
    ws_add.add_argument("--name")
    member = ws.add_parser("member", help="workspace membership").add_subparsers(
        dest="member_action", required=True, parser_class=_Parser
    )
    member_add = member.add_parser("add", help="add (or update) a member")
    _add_data(member_add)
    member_add.add_argument("workspace")
    member_add.add_argument("user")
    member_add.add_argument("--admin", action="store_true")

    project = sub.add_parser("project", help="manage projects").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    project_add = project.add_parser("add", help="create a project")
    _add_data(project_add)
    project_add.add_argument("workspace")
    project_add.add_argument("key")
    project_add.add_argument("--name")

    repo = sub.add_parser("repository", help="manage repositories").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    repo_add = repo.add_parser("add", help="create a repository")
    _add_data(repo_add)
    repo_add.add_argument("workspace")
    repo_add.add_argument("slug")
    repo_add.add_argument("--project", required=True)

    grant = sub.add_parser("grant", help="grant a permission on a repository")
    _add_data(grant)
    grant.add_argument("repository", metavar="WS/REPO")
    grant.add_argument("user")
    grant.add_argument("permission", choices=["read", "write", "admin", "none"])

    for extend in _EXTENSIONS:
        extend(sub)
    return parser


# Other modules (gc, fsck, demo) register their subcommands here, and their handlers
# in _HANDLERS by command name.
_EXTENSIONS: list[Callable[[SubParsers], None]] = []


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise RegistryError("no password on standard input", code="INVALID_ARGUMENT")
    return password


def _admin(args: argparse.Namespace) -> Callable[[Connection], str]:
    """The transaction an administrative command runs, returning its message."""
    cmd = args.command
    if cmd == "user":
        password = _read_password() if args.action != "remove" else ""

        def user(c: Connection) -> str:
            if args.action == "add":
                accounts.add_user(c, args.name, password, superuser=args.superuser)
                return f"user {args.name} created"
            if args.action == "remove":
                accounts.remove_user(c, args.name)
                return f"user {args.name} removed"
            accounts.set_password(c, args.name, password)
            return f"password of {args.name} set"

        return user
    if cmd == "workspace":

        def workspace(c: Connection) -> str:
            if args.action == "add":
                accounts.add_workspace(c, args.slug, args.name)
                return f"workspace {args.slug} created"
            accounts.add_member(c, args.workspace, args.user, admin=args.admin)
            role = "an admin" if args.admin else "a member"
            return f"{args.user} is {role} of {args.workspace}"

        return workspace
    if cmd == "project":

        def project(c: Connection) -> str:
            accounts.add_project(c, args.workspace, args.key, args.name)
            return f"project {args.key} created in {args.workspace}"

        return project
    if cmd == "repository":

        def repository(c: Connection) -> str:
            accounts.add_repository(c, args.workspace, args.slug, args.project)
            return f"repository {args.workspace}/{args.slug} created"

        return repository
    if cmd == "grant":
        ws, sep, slug = args.repository.partition("/")
        if not sep or not ws or not slug or "/" in slug:
            raise RegistryError("repository must be given as WS/REPO", code="INVALID_ARGUMENT")
        perm = Permission.parse(args.permission) if args.permission != "none" else Permission.NONE

        def grant(c: Connection) -> str:
            accounts.grant(c, ws, slug, args.user, perm)
            return f"{args.user} has {args.permission} on {args.repository}"

        return grant
    raise AssertionError(f"unhandled command {cmd}")


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command not in CREATING_COMMANDS:
            _require_registry(args.data, args.database_url)
        if args.command in _HANDLERS:
            return _HANDLERS[args.command](args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "init":
            return _init(args)
        return _run_admin(args)
    except RegistryError as exc:
        return _fail(exc.message)
    except (ValueError, StoreUnavailable) as exc:
        return _fail(str(exc))
    except Busy:
        return _fail("the registry is busy; try again", status=1)


def _fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"berth-registry: error: {message}", file=sys.stderr)
    return status


def holds_registry(data: Path, database_url: str | None = None) -> bool:
    """Whether ``data`` (and ``database_url``, when given) hold a registry."""
    url = database_url or sqlite_url(data)
    try:
        return data.is_dir() and holds_schema(url)
    except (OSError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise RegistryError(
            f"cannot read the registry database: {reason[0] if reason else type(exc).__name__}"
        ) from None


def _require_registry(data: Path, database_url: str | None) -> None:
    if not holds_registry(data, database_url):
        where = f"{data} with {database_url}" if database_url else str(data)
        raise RegistryError(
            f"{where} holds no registry (create one with: berth-registry init --data {data})"
        )


def _init(args: argparse.Namespace) -> int:
    existed = holds_registry(args.data, args.database_url)
    # Creates or migrates; an object store is checked first.
    registry = _open(args.data, database_url=args.database_url, blob_store=args.blob_store)
    try:
        moved = args.blob_store is not None and store_record.record(registry.db, registry.store)
    finally:
        registry.close()
    print(
        f"{args.data} already holds a registry" if existed else f"registry created in {args.data}"
    )
    if moved:
        print(f"its blobs are now in {registry.store.description}")
    return 0


def _run_admin(args: argparse.Namespace) -> int:
    action = _admin(args)
    registry = _open(args.data, database_url=args.database_url)
    try:
        with registry.db.write() as conn:
            message = action(conn)
    finally:
        registry.close()
    print(message)
    return 0


def _open(data: Path, **kw: Any) -> Registry:
    try:
        return Registry.open(data, **kw)
    except OSError as exc:
        raise RegistryError(f"cannot use data directory {data}: {exc.strerror or exc}") from None


def _check_tls(cert: Path, key: Path) -> None:
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise RegistryError(f"cannot use --tls-cert {cert} with --tls-key {key}: {exc}") from None


def _serve(args: argparse.Namespace) -> int:
    from app.registry.server import ServeOptions, listen, serve

    if (args.tls_cert is None) != (args.tls_key is None):
        raise RegistryError("--tls-cert and --tls-key go together", code="INVALID_ARGUMENT")
    if args.tls_cert is not None:
        _check_tls(args.tls_cert, args.tls_key)
    timing = Timing(
        review_delay=int(args.gc_review_delay * 1000),
        upload_grace=int(args.gc_upload_grace * 1000),
        trash_retention=int(args.trash_retention * 1000),
    )
    # Bind before opening the store: a port in use touches nothing on disk.
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        raise RegistryError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    try:
        registry = _open(
            args.data,
            database_url=args.database_url,
            timing=timing,
            challenge=args.auth_challenge,
            blob_store=args.blob_store,
            claim_store=True,
            redirect_blobs=args.redirect_blobs,
            upload_limits=UploadLimits(args.max_uploads_per_user, args.max_uploads_per_workspace),
        )
    except BaseException:
        sock.close()
        raise
    from app.registry import trash

    # What the other commands (a policy run, a restore) use for their deletes.
    with registry.db.write() as conn:
        trash.store_retention_ms(conn, timing.trash_retention)
    registry.auth.limits = throttle.Limits.per_user(args.sign_in_free_failures)
    registry.pull_flush_s = max(args.pull_flush_interval, 0.05)
    registry.upload_ttl_ms = int(args.upload_ttl * 1000)
    registry.policy_check_s = max(args.policy_check_interval, 0.05)
    _blob_cache(registry, args)
    serve(registry, ServeOptions(args.host, args.port, args.tls_cert, args.tls_key), sock)
    return 0


def _blob_cache(registry: Registry, args: argparse.Namespace) -> None:
    """The node's cache of blobs read from an object store (none for the filesystem
    store, whose files are local already, nor when blob GETs are redirected)."""
    store = registry.store
    size = default_size() if args.blob_cache_size is None else args.blob_cache_size
    unused = None  # why a cache would not be used
    if isinstance(store, FileBlobStore):
        unused = "the filesystem blob store (its files are read through the page cache)"
    elif args.redirect_blobs:
        unused = "--redirect-blobs (blob GETs go to the object store)"
    if unused is not None and args.blob_cache_size:
        # Said, not refused: a unit file shared by nodes of both kinds still starts.
        print(
            f"berth-registry: note: --blob-cache-size has no effect with {unused}", file=sys.stderr
        )
    if unused is not None or not size:
        return
    # Only now: the object store's module needs the optional AWS SDK (the s3 extra),
    # which a node on the filesystem store may not have installed.
    from app.registry.s3store import S3BlobStore

    if isinstance(store, S3BlobStore):
        store.cache = BlobCache(size)


# gc and fsck -----------------------------------------------------------------


def _maintenance_parsers(sub: SubParsers) -> None:
    gc = sub.add_parser("gc", help="collect garbage: review queued manifests and blobs")
    _add_data(gc)
    _add_blob_store(gc)
    gc.add_argument(
        "--once", action="store_true", help="run one pass and exit (default: run until stopped)"
    )
    gc.add_argument(
        "--ignore-review-delay",
        action="store_true",
        help="review every queued item now; the upload grace still applies",
    )
    gc.add_argument("--workspace", metavar="SLUG", help="only this workspace")
    gc.add_argument(
        "--gc-review-delay",
        type=_seconds,
        default=300.0,
        metavar="SECONDS",
        help="the review delay of the serve processes, for what expired trash entries "
        "held (default 300)",
    )
    gc.add_argument(
        "--gc-upload-grace",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="at least the grace of the serve processes (default 3600)",
    )
    fsck = sub.add_parser(
        "fsck",
        help="check the metadata and the blob store against each other",
        description="Exit status: 0 clean, 1 problems found and all repaired, "
        "4 problems left, 2 usage error.",
    )
    _add_data(fsck)
    _add_blob_store(fsck)
    fsck.add_argument("--repair", action="store_true", help="remove orphans, fix derived data")
    fsck.add_argument(
        "--verify-content", action="store_true", help="hash every object against its digest"
    )
    fsck.add_argument(
        "--orphan-min-age",
        type=_seconds,
        default=900.0,
        metavar="SECONDS",
        help="leave younger orphans alone: they may be uploads committing (default 900)",
    )


def _gc(args: argparse.Namespace) -> int:
    from app.registry.gc import collector as gc
    from app.registry.gc import worker as gc_worker

    timing = Timing(
        review_delay=int(args.gc_review_delay * 1000),
        upload_grace=int(args.gc_upload_grace * 1000),
    )
    registry = _open(
        args.data,
        database_url=args.database_url,
        timing=timing,
        blob_store=args.blob_store,
        claim_store=True,
    )
    try:
        with registry.db.read() as conn:
            only = [accounts.workspace_id(conn, args.workspace)] if args.workspace else None
            ws = schema.workspaces.c
            slugs = {r.id: r.slug for r in conn.execute(select(ws.id, ws.slug))}
        if not args.once:
            gc_worker.run_until_stopped(registry, workspace_ids=only)
            return 0
        runs = gc.run_pass(registry, ignore_delay=args.ignore_review_delay, workspace_ids=only)
    except Busy as exc:
        print(f"berth-registry: the registry is busy, retry shortly ({exc})", file=sys.stderr)
        return 1
    finally:
        registry.close()
    for run in runs:
        print(gc.describe(run, slugs.get(run.workspace_id, str(run.workspace_id))))
    if not runs:
        print("gc: nothing to collect")
    return 0


def _fsck(args: argparse.Namespace) -> int:
    from app.registry.gc import fsck

    registry = _open(
        args.data, database_url=args.database_url, blob_store=args.blob_store, claim_store=True
    )
    try:
        report = fsck.check(
            registry,
            repair=args.repair,
            verify_content=args.verify_content,
            orphan_min_age_ms=int(args.orphan_min_age * 1000),
        )
    except Busy as exc:
        print(f"berth-registry: the registry is busy, retry shortly ({exc})", file=sys.stderr)
        return fsck.EXIT_PROBLEMS
    finally:
        registry.close()
    for line in report.lines():
        print(line)
    return report.exit_code


_EXTENSIONS.append(_maintenance_parsers)
_HANDLERS.update(gc=_gc, fsck=_fsck)


# demo data -------------------------------------------------------------------


def _demo_parser(sub: SubParsers) -> None:
    from app.registry import demo

    parser = sub.add_parser(
        "demo", help="seed an empty data directory with demo workspaces, images and users"
    )
    _add_data(parser)
    _add_blob_store(parser)
    demo.add_arguments(parser)


def _demo(args: argparse.Namespace) -> int:
    from app.registry import demo

    return demo.main(args)


_EXTENSIONS.append(_demo_parser)
_HANDLERS.update(demo=_demo)


# cleanup policies --------------------------------------------------------------


def _policy_parser(sub: SubParsers) -> None:
    from app.registry.policies import cli as policy_cli

    policy_cli.add_parsers(sub)


def _policy(args: argparse.Namespace) -> int:
    from app.registry.policies import cli as policy_cli

    return policy_cli.handle(args)


_EXTENSIONS.append(_policy_parser)
_HANDLERS.update(policy=_policy)


# recently deleted ----------------------------------------------------------------


def _trash_parser(sub: SubParsers) -> None:
    from app.registry import trash_cli

    trash_cli.add_parsers(sub)


def _trash(args: argparse.Namespace) -> int:
    from app.registry import trash_cli

    return trash_cli.handle(args)


_EXTENSIONS.append(_trash_parser)
_HANDLERS.update(trash=_trash)


if __name__ == "__main__":
    sys.exit(main())
