"""Cleanup policies: the rules, and the planner that decides, per image, which tags
go and which stay, and why.

Pure (no I/O): the registry loads an image's tags and manifest graph and calls
:func:`plan_image`; the same plan is shown as the preview and is what the executor
deletes, so the preview cannot disagree with the run. The desktop client uses the
rule types to edit, check and label rules exactly as the registry does.

Semantics (evaluated per image)
-------------------------------
* Keep rules: ``keep_last N`` (the N most recently pushed tags), ``keep_last_pulled
  N`` (the N most recently pulled; a tag never seen pulled is not among them),
  ``keep_regex RE`` (the tag name matches ``RE`` anywhere, Python syntax: anchor it
  with ``^...$`` to match whole names).
* Remove rules: ``remove_older_than D`` (pushed more than D days ago),
  ``remove_not_pulled_for D`` (neither pushed nor pulled in the last D days; pulls
  from before pull tracking began are unknown, so no tag counts as unpulled for
  longer than tracking has run).
* A tag goes only if some remove rule matches and no keep rule does.
* Index children follow their index: a tag on a manifest that an index which stays
  lists is kept ("child of index ..."), whatever the rules say of it.
* Referrers follow their subject: a tag on a signature, attestation or SBOM (a
  manifest whose ``subject`` is in the image, or a cosign-style tag
  ``sha256-<hex>[.sig|.att|.sbom]`` naming a manifest of the image) is not judged by
  the rules: it stays while its subject stays and goes when the plan removes what
  kept its subject (a subject already kept by no tag is left as it is). Such tags
  take no place in the "N most recently" counts.

The deciding rule of each tag is reported: the first keep rule that matched (rules
in the order given), else the first remove rule, else the index or subject it
follows, else none ("no remove rule matches").
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

DAY_MS = 86_400_000
MAX_RULES = 20
MAX_COUNT = 1_000_000
MAX_DAYS = 36_500
MAX_REGEX = 256

# cosign's tag scheme for signatures, attestations and SBOMs, and the OCI referrers
# tag schema's fallback (no suffix): the tag names the subject's digest.
_COSIGN_TAG = re.compile(r"^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})(?:\.(?:sig|att|sbom))?$")


class PolicyError(ValueError):
    """A rule or policy that cannot be used; the message says why."""


class RuleKind(enum.StrEnum):
    KEEP_LAST = "keep_last"
    KEEP_LAST_PULLED = "keep_last_pulled"
    KEEP_REGEX = "keep_regex"
    REMOVE_OLDER_THAN = "remove_older_than"
    REMOVE_NOT_PULLED_FOR = "remove_not_pulled_for"

    @property
    def keeps(self) -> bool:
        return self.value.startswith("keep")

    @property
    def option(self) -> str:
        """The command line's spelling: ``--keep-last`` and so on."""
        return "--" + self.value.replace("_", "-")


_COUNTS = {RuleKind.KEEP_LAST, RuleKind.KEEP_LAST_PULLED}
_DAYS = {RuleKind.REMOVE_OLDER_THAN, RuleKind.REMOVE_NOT_PULLED_FOR}


def _nested_repeat(pattern: str) -> bool:
    """Whether a quantified group holds a quantifier itself (``(a+)+``, ``(a|a)*``
    style): the shapes that make a backtracking engine take exponential time.
    Patterns come from users who may only read, so the planner refuses them."""
    from re import _constants, _parser  # type: ignore[attr-defined]

    unbounded = _constants.MAXREPEAT

    def walk(items: object, inside_repeat: bool) -> bool:
        for op, arg in items:  # type: ignore[attr-defined]
            name = str(op)
            if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                _low, high, sub = arg
                if inside_repeat and high != 1:
                    return True
                # Bounded repeats ({2}, ?) multiply the work by a constant at most.
                if walk(sub, inside_repeat or high == unbounded):
                    return True
            elif name == "SUBPATTERN":
                if walk(arg[-1], inside_repeat):
                    return True
            elif name == "BRANCH":
                branches = arg[1]
                if inside_repeat and len(branches) > 1:
                    return True
                if any(walk(b, inside_repeat) for b in branches):
                    return True
            elif name in ("ASSERT", "ASSERT_NOT"):
                if walk(arg[1], inside_repeat):
                    return True
            elif name == "GROUPREF_EXISTS" and any(
                walk(b, inside_repeat) for b in arg[1:] if b is not None
            ):
                return True
        return False

    return walk(_parser.parse(pattern), False)


@dataclass(frozen=True, slots=True)
class Rule:
    kind: RuleKind
    value: int | str

    @classmethod
    def make(cls, kind: str, value: object) -> Rule:
        """A checked rule (``PolicyError`` says what is wrong)."""
        try:
            k = RuleKind(kind)
        except ValueError:
            allowed = ", ".join(k.value for k in RuleKind)
            raise PolicyError(f"unknown rule {kind!r} (one of: {allowed})") from None
        if k is RuleKind.KEEP_REGEX:
            if not isinstance(value, str) or not value:
                raise PolicyError(f"{k.value}: a regular expression is needed")
            if len(value) > MAX_REGEX:
                raise PolicyError(f"{k.value}: at most {MAX_REGEX} characters")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate (JSON's "\ud800" escape): no tag can hold one, and
                # no UTF-8 store or encoder can keep the rule's label.
                raise PolicyError(f"{k.value}: {value!r} is not valid Unicode text") from None
            try:
                re.compile(value)
            except re.error as exc:
                raise PolicyError(
                    f"{k.value}: {value!r} is not a regular expression: {exc}"
                ) from None
            if _nested_repeat(value):
                raise PolicyError(
                    f"{k.value}: {value!r} repeats a group that repeats or branches inside, "
                    "which can take exponential time; write it without nesting"
                )
            return cls(k, value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(f"{k.value}: a whole number is needed, not {value!r}")
        high = MAX_COUNT if k in _COUNTS else MAX_DAYS
        if not 0 <= value <= high:
            raise PolicyError(f"{k.value}: {value} is out of range (0 to {high})")
        return cls(k, value)

    @property
    def keeps(self) -> bool:
        return self.kind.keeps

    @property
    def label(self) -> str:
        """How the rule reads in a preview: ``keep-last 10``, ``keep-regex ^v``."""
        return f"{self.kind.option[2:]} {self.value}"

    def as_dict(self) -> dict[str, int | str]:
        return {"kind": self.kind.value, "value": self.value}


def parse_rules(items: Iterable[Mapping[str, object]]) -> tuple[Rule, ...]:
    """Rules from ``[{"kind": ..., "value": ...}, ...]`` (stored or sent as JSON)."""
    rules: list[Rule] = []
    for item in items:
        if not isinstance(item, Mapping) or set(item) != {"kind", "value"}:
            raise PolicyError("a rule is {kind, value}")
        rules.append(Rule.make(str(item["kind"]), item["value"]))
    if len(rules) > MAX_RULES:
        raise PolicyError(f"at most {MAX_RULES} rules")
    return tuple(rules)


# what the planner looks at ----------------------------------------------------


# TagFacts and Decision are named tuples: a plan over 100,000 tags makes 100,000 of
# each, and a frozen dataclass's __init__ (object.__setattr__ per field) cost three
# times as much.
class TagFacts(NamedTuple):
    name: str
    digest: str  # of the manifest it points at
    pushed_at: int  # ms
    last_pulled: int | None  # ms: the latest pull of the tag or of its digest


@dataclass(frozen=True, slots=True)
class ImageGraph:
    """The manifests of one image and how they hold each other."""

    digests: frozenset[str]  # every manifest of the image
    children: Mapping[str, Sequence[str]] = field(default_factory=dict)  # index -> children
    subjects: Mapping[str, str] = field(default_factory=dict)  # referrer -> its subject


class Action(enum.StrEnum):
    KEEP = "keep"
    REMOVE = "remove"


# Labels of decisions that no rule of the policy made.
FOLLOWS_INDEX = "index"
FOLLOWS_SUBJECT = "subject"


class Decision(NamedTuple):
    tag: str
    digest: str
    removes: bool
    rule: str | None  # the deciding rule's label, "index", "subject", or None
    reason: str  # a sentence for people

    @property
    def action(self) -> Action:
        return Action.REMOVE if self.removes else Action.KEEP


def subject_of_tag(name: str, digests: frozenset[str]) -> str | None:
    """The manifest a cosign-style tag names, if the image holds it."""
    m = _COSIGN_TAG.match(name)
    if m is None:
        return None
    digest = f"{m.group(1)}:{m.group(2)}"
    return digest if digest in digests else None


def _closure(roots: Iterable[str], edges: Mapping[str, list[str]]) -> dict[str, str | None]:
    """Manifests reachable from ``roots``: each with the manifest it was first reached
    from (None for a root). Breadth first over sorted edges: the same every time."""
    seen: dict[str, str | None] = {}
    for root in sorted(set(roots)):
        if root not in seen:
            _extend(seen, root, edges)
    return seen


def _extend(seen: dict[str, str | None], root: str, edges: Mapping[str, list[str]]) -> None:
    """Add ``root`` and what it reaches to a closure."""
    seen[root] = None
    queue = deque([root])
    while queue:
        current = queue.popleft()
        for nxt in edges.get(current, ()):
            if nxt not in seen:
                seen[nxt] = current
                queue.append(nxt)


def _held(alive: Iterable[str], edges: Mapping[str, list[str]]) -> dict[str, str]:
    """Manifests held through an edge from an alive manifest -> the first holder."""
    held: dict[str, str] = {}
    for source in sorted(alive):
        for target in edges.get(source, ()):
            held.setdefault(target, source)
    return held


def _short(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


_COSIGN_PREFIXES = ("sha256-", "sha512-")  # what every name _COSIGN_TAG matches starts with
_decision = tuple.__new__  # Decision's fields in order, without its __new__'s Python frame


def plan_image(
    tags: Sequence[TagFacts],
    graph: ImageGraph,
    rules: Sequence[Rule],
    now: int,
    pulls_tracked_since: int = 0,
) -> list[Decision]:
    """Decide every tag of one image (see the module docstring); in tag name order.

    Written for images of 100,000 tags: one pass per rule and one over the tags,
    rules looked up by position rather than hashed per tag, and the manifest graph
    walked only when the image has edges (indexes, referrers or referrer tags)."""
    # Referrer tags follow their subject; every other tag is judged by the rules.
    subject: dict[str, str] = {}
    subjects_of, digests = graph.subjects, graph.digests
    for t in tags:
        s = subjects_of.get(t.digest) if subjects_of else None
        if s is None or s not in digests:
            s = subject_of_tag(t.name, digests) if t.name.startswith(_COSIGN_PREFIXES) else None
        if s is not None and s != t.digest:
            subject[t.name] = s
    # In name order: the "most recent" rules then break ties by name.
    by_name_order = sorted(tags, key=attrgetter("name"))
    ordinary = [t for t in by_name_order if t.name not in subject] if subject else by_name_order

    # Per tag, the first keep and the first remove rule that match, as (label,
    # "matches label") so the final pass only reads them.
    keep_rule: dict[str, tuple[str, str]] = {}
    remove_rule: dict[str, tuple[str, str]] = {}
    for rule in rules:
        said = (rule.label, f"matches {rule.label}")
        target = keep_rule if rule.keeps else remove_rule
        for name in _matches(rule, ordinary, now, pulls_tracked_since):
            if name not in target:
                target[name] = said

    held: dict[str, str] = {}
    edge_kind: dict[tuple[str, str], str] = {}
    before: dict[str, str | None] = {}
    after: dict[str, str | None] = {}
    if graph.children or subjects_of or subject:
        edges: dict[str, list[str]] = {}
        for parent, kids in graph.children.items():
            edges.setdefault(parent, []).extend(kids)
        for referrer, subj in subjects_of.items():
            edges.setdefault(subj, []).append(referrer)
        by_name = {t.name: t for t in tags}
        for name, subj in subject.items():
            edges.setdefault(subj, []).append(by_name[name].digest)
        for parent, kids in graph.children.items():
            for kid in kids:
                edge_kind.setdefault((parent, kid), FOLLOWS_INDEX)
        for key in list(edges):
            edges[key] = sorted(set(edges[key]))

        before = _closure((t.digest for t in tags), edges)
        roots = [t.digest for t in ordinary if t.name in keep_rule or t.name not in remove_rule]
        after = _closure(roots, edges)
        # Referrer tags that stay hold what they hold, which may be another referrer
        # tag's subject: settle them until nothing changes (digests admit no cycles).
        settled: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, subj in subject.items():
                if name in settled:
                    continue
                digest = by_name[name].digest
                if digest in after or subj in after or subj not in before:
                    settled.add(name)
                    if digest not in after:
                        _extend(after, digest, edges)
                    changed = True
        held = _held(after, edges)

    out: list[Decision] = []
    append = out.append
    for t in by_name_order:
        name, digest = t.name, t.digest
        followed = subject.get(name) if subject else None
        if followed is not None:
            if followed in after:
                append(
                    Decision(name, digest, False, FOLLOWS_SUBJECT,
                             f"follows its subject {_short(followed)}, which stays")
                )  # fmt: skip
            elif followed not in before:
                append(
                    Decision(name, digest, False, None,
                             f"its subject {_short(followed)} is kept by no tag already; "
                             "left as it is")
                )  # fmt: skip
            elif digest in after:
                holder = after[digest] or digest
                append(
                    Decision(name, digest, False, FOLLOWS_INDEX,
                             f"held by {_short(holder)}, which stays")
                )  # fmt: skip
            else:
                append(
                    Decision(name, digest, True, FOLLOWS_SUBJECT,
                             f"follows its subject {_short(followed)}, which goes")
                )  # fmt: skip
            continue
        keep = keep_rule.get(name)
        if keep is not None:
            append(_decision(Decision, (name, digest, False, *keep)))
            continue
        remove = remove_rule.get(name)
        if remove is None:
            append(_decision(Decision, (name, digest, False, None, "no remove rule matches")))
        elif held and digest in held:
            holder = held[digest]
            if edge_kind.get((holder, digest)) == FOLLOWS_INDEX:
                label, why = FOLLOWS_INDEX, f"child of index {_short(holder)}, which stays"
            else:
                label, why = FOLLOWS_SUBJECT, f"referrer of {_short(holder)}, which stays"
            append(Decision(name, digest, False, label, f"{why} (would match {remove[0]})"))
        else:
            append(_decision(Decision, (name, digest, True, *remove)))
    return out


def _matches(rule: Rule, tags: Sequence[TagFacts], now: int, tracked_since: int) -> set[str]:
    kind = rule.kind
    if kind is RuleKind.KEEP_LAST:
        # Sorts are stable, also reversed: ties keep the name order tags come in.
        ranked = sorted(tags, key=attrgetter("pushed_at"), reverse=True)
        return {t.name for t in ranked[: int(rule.value)]}
    if kind is RuleKind.KEEP_LAST_PULLED:
        pulled = [t for t in tags if t.last_pulled is not None]
        ranked = sorted(pulled, key=attrgetter("last_pulled"), reverse=True)
        return {t.name for t in ranked[: int(rule.value)]}
    if kind is RuleKind.KEEP_REGEX:
        pattern = re.compile(str(rule.value))
        return {t.name for t in tags if pattern.search(t.name)}
    cutoff = now - int(rule.value) * DAY_MS
    if kind is RuleKind.REMOVE_OLDER_THAN:
        return {t.name for t in tags if t.pushed_at < cutoff}
    # REMOVE_NOT_PULLED_FOR: no push and no pull since the cutoff, and tracking has
    # watched for pulls at least that long.
    return {t.name for t in tags if max(t.pushed_at, t.last_pulled or 0, tracked_since) < cutoff}
