"""``berth-registry policy set|show|preview|run W[/R] --data DIR``: cleanup policies
from the command line, on the same planner and executor as the API.

Rules are options, kept in the order given (the first matching keep rule, else remove
rule, is the one a preview names): ``--keep-last N``, ``--keep-last-pulled N``,
``--keep-regex RE``, ``--remove-older-than DAYS``, ``--remove-not-pulled-for DAYS``.
``preview --json`` prints one JSON object per line, one per tag: image, tag, digest,
action ("remove"/"keep"), rule, reason, pushed_at, last_pulled, size; then nothing
else (the summary goes to standard error).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from app.core.cleanup import PolicyError, Rule, RuleKind
from app.core.units import format_bytes
from app.registry import cli_args, trash
from app.registry.db.engine import now_ms
from app.registry.errors import RegistryError
from app.registry.policies import plans as policies
from app.registry.service import Registry

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> int:
    m = _DURATION.match(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (a positive number of seconds, or 30m, 12h, 1d)"
        )
    return int(m.group(1)) * _UNITS[m.group(2)]


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


class _RuleAction(argparse.Action):
    """Appends (kind, value) to ``rules`` in command-line order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        rules = list(getattr(namespace, "rules", None) or [])
        rules.append((self.const, values))
        namespace.rules = rules


def _add_rules(p: argparse.ArgumentParser) -> None:
    p.set_defaults(rules=[])
    for kind, kind_type, metavar, text in (
        (RuleKind.KEEP_LAST, _count, "N", "keep the N most recently pushed tags"),
        (RuleKind.KEEP_LAST_PULLED, _count, "N", "keep the N most recently pulled tags"),
        (RuleKind.KEEP_REGEX, str, "RE", "keep tags whose name matches RE (anywhere)"),
        (RuleKind.REMOVE_OLDER_THAN, _count, "DAYS", "remove tags pushed more than DAYS ago"),
        (
            RuleKind.REMOVE_NOT_PULLED_FOR,
            _count,
            "DAYS",
            "remove tags neither pushed nor pulled for DAYS",
        ),
    ):
        p.add_argument(
            kind.option, action=_RuleAction, const=kind.value, type=kind_type,
            metavar=metavar, help=text,
        )  # fmt: skip


def add_parsers(sub: cli_args.SubParsers) -> None:
    policy = sub.add_parser("policy", help="cleanup policies").add_subparsers(
        dest="action", required=True, parser_class=cli_args.Parser
    )
    set_ = policy.add_parser("set", help="set the cleanup policy of a workspace or repository")
    show = policy.add_parser("show", help="show a cleanup policy")
    preview = policy.add_parser(
        "preview", help="which tags the saved policy (or the rules given) would remove, and why"
    )
    run = policy.add_parser("run", help="plan the saved policy now and delete what it removes")
    for p in (set_, show, preview, run):
        cli_args.add_data(p)
        p.add_argument("scope", metavar="W[/R]", help="a workspace, or workspace/repository")
    for p in (set_, preview):
        _add_rules(p)
    set_.add_argument(
        "--interval",
        type=_duration,
        metavar="DURATION",
        help="run on a schedule inside serve: seconds, or 30m, 12h, 1d (default: never)",
    )
    for p in (show, preview, run):
        p.add_argument("--json", action="store_true", help="machine-readable output")


def _scope(conn: Any, text: str) -> policies.Scope:
    ws, _, repo = text.partition("/")
    if not ws or "/" in repo:
        raise RegistryError(f"{text!r}: give a workspace or workspace/repository")
    return policies.scope_of(conn, ws, repo or None)


def _rules(pairs: Sequence[tuple[str, Any]]) -> tuple[Rule, ...]:
    try:
        return tuple(Rule.make(kind, value) for kind, value in pairs)
    except PolicyError as exc:
        raise RegistryError(str(exc)) from None


def _describe(policy: policies.Policy) -> dict[str, Any]:
    return {
        "scope": policy.scope.label,
        "rules": [r.as_dict() for r in policy.rules],
        "interval": policy.interval_s,
        "next_run_at": policy.next_run_at,
        "updated_at": policy.updated_at,
        "updated_by": policy.updated_by,
    }


def handle(args: argparse.Namespace) -> int:
    reg = Registry.open(args.data, database_url=args.database_url)
    try:
        # A run's deletes land in the trash as the server's would.
        trash.use_stored_retention(reg)
        return _ACTIONS[args.action](reg, args)
    finally:
        reg.close()


def _set(reg: Registry, args: argparse.Namespace) -> int:
    rules = _rules(args.rules)
    if not rules:
        raise RegistryError("give at least one rule (--keep-last, --remove-older-than, ...)")
    with reg.db.write() as conn:
        scope = _scope(conn, args.scope)
        policy = policies.set_policy(conn, scope, rules, args.interval, None, now_ms())
    print(f"cleanup policy of {scope.label}: {', '.join(r.label for r in policy.rules)}"
          + (f", every {args.interval} s" if args.interval else ""))  # fmt: skip
    return 0


def _show(reg: Registry, args: argparse.Namespace) -> int:
    with reg.db.read() as conn:
        scope = _scope(conn, args.scope)
        policy = policies.get_policy(conn, scope)
        covers = policies.covered_repositories(conn, scope) if policy else []
    if policy is None:
        raise RegistryError(f"{scope.label} has no cleanup policy")
    if args.json:
        print(json.dumps({**_describe(policy), "covers": len(covers)}))
        return 0
    print(f"{scope.label}: {', '.join(r.label for r in policy.rules)}")
    print(f"  schedule: every {policy.interval_s} s" if policy.interval_s else "  no schedule")
    print(f"  covers {len(covers)} repositories")
    return 0


def _preview(reg: Registry, args: argparse.Namespace) -> int:
    given = _rules(args.rules) if args.rules else None
    now = now_ms()
    with reg.db.read() as conn:
        scope = _scope(conn, args.scope)
        if given is None:
            policy = policies.get_policy(conn, scope)
            if policy is None:
                raise RegistryError(f"{scope.label} has no cleanup policy; give rules")
            given = policy.rules
        plan = policies.make_plan(conn, scope, given, now)
    out = sys.stdout
    for t in plan.tags:
        row = t.row
        action = "remove" if row.remove else "keep"
        if args.json:
            record = {
                "image": t.image,
                "tag": row.tag,
                "digest": row.digest,
                "action": action,
                "rule": row.rule,
                "reason": row.reason,
                "pushed_at": row.pushed_at,
                "last_pulled": row.last_pulled,
                "size": row.size,
            }
            out.write(json.dumps(record) + "\n")
        else:
            out.write(f"{action:<6} {t.image}:{row.tag}  {row.reason}\n")
    e = plan.effect
    summary = (
        f"{plan.remove_count} of {plan.tag_count} tags in {plan.image_count} images go; "
        f"GC frees {format_bytes(e.freed)} after they do, {format_bytes(e.kept)} of theirs "
        f"stays (other tags or images use it)"
    )
    print(summary, file=sys.stderr if args.json else sys.stdout)
    return 0


def _run(reg: Registry, args: argparse.Namespace) -> int:
    with reg.db.read() as conn:
        scope = _scope(conn, args.scope)
    run = policies.run_saved(reg, scope, policies.MANUAL, None)
    if args.json:
        print(json.dumps({k: v for k, v in run.items()}, default=str))
    else:
        print(
            f"cleanup run {run['id']} of {scope.label}: {run['tags_deleted']} of "
            f"{run['tags_planned']} tags deleted ({run['tags_changed']} moved since the plan, "
            f"{run['tags_missing']} already gone); GC frees {format_bytes(run['bytes_freed'])}"
        )
    if run["state"] != "done":
        print(f"berth-registry: error: {run['error']}", file=sys.stderr)
        return 1
    return 0


_ACTIONS = {"set": _set, "show": _show, "preview": _preview, "run": _run}
