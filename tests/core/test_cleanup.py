"""The cleanup planner's rule semantics, by example and by hypothesis over random tag
sets with indexes and referrers."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.cleanup import (
    DAY_MS,
    Action,
    ImageGraph,
    PolicyError,
    Rule,
    RuleKind,
    TagFacts,
    parse_rules,
    plan_image,
)

NOW = 1_000 * DAY_MS


def d(n: int | str) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def tag(name: str, digest: str, pushed_days_ago: float, pulled_days_ago: float | None = None):
    return TagFacts(
        name,
        digest,
        NOW - int(pushed_days_ago * DAY_MS),
        None if pulled_days_ago is None else NOW - int(pulled_days_ago * DAY_MS),
    )


def decide(tags, rules, graph=None, tracked_since=0):
    graph = graph or ImageGraph(frozenset(t.digest for t in tags))
    return {x.tag: x for x in plan_image(tags, graph, rules, NOW, tracked_since)}


R = Rule.make


# by example ----------------------------------------------------------------------


def test_keep_last_and_remove_older_than() -> None:
    tags = [tag(f"b{i}", d(i), pushed_days_ago=i * 10) for i in range(6)]
    plan = decide(tags, [R("keep_last", 2), R("remove_older_than", 15)])
    assert {n for n, x in plan.items() if x.removes} == {"b2", "b3", "b4", "b5"}
    assert plan["b0"].rule == plan["b1"].rule == "keep-last 2"
    assert plan["b2"].rule == "remove-older-than 15"
    assert plan["b2"].reason == "matches remove-older-than 15"


def test_a_tag_goes_only_if_a_remove_rule_matches() -> None:
    tags = [tag("old", d(1), 100), tag("new", d(2), 1)]
    assert not any(x.removes for x in decide(tags, [R("keep_last", 0)]).values())
    plan = decide(tags, [R("remove_older_than", 30)])
    assert plan["old"].removes
    assert not plan["new"].removes
    assert plan["new"].rule is None
    assert plan["new"].reason == "no remove rule matches"


def test_keep_regex_searches_and_wins_over_remove() -> None:
    tags = [tag("v1.2.3", d(1), 400), tag("v1.2.3-rc1", d(2), 400), tag("latest", d(3), 400)]
    plan = decide(tags, [R("remove_older_than", 1), R("keep_regex", r"^v?\d+\.\d+\.\d+$")])
    assert plan["v1.2.3"].action is Action.KEEP
    assert plan["v1.2.3"].rule == r"keep-regex ^v?\d+\.\d+\.\d+$"
    assert plan["v1.2.3-rc1"].removes
    assert plan["latest"].removes
    plan = decide(tags, [R("remove_older_than", 1), R("keep_regex", "latest")])
    assert not plan["latest"].removes


def test_not_pulled_for_counts_pushes_pulls_and_when_tracking_began() -> None:
    tags = [
        tag("pulled-lately", d(1), 300, pulled_days_ago=2),
        tag("pulled-long-ago", d(2), 300, pulled_days_ago=100),
        tag("never-pulled-old", d(3), 300),
        tag("never-pulled-new", d(4), 3),
    ]
    plan = decide(tags, [R("remove_not_pulled_for", 30)])
    assert {n for n, x in plan.items() if x.removes} == {"pulled-long-ago", "never-pulled-old"}
    # Tracking began 10 days ago: nothing counts as unpulled for 30 days yet.
    plan = decide(tags, [R("remove_not_pulled_for", 30)], tracked_since=NOW - 10 * DAY_MS)
    assert not any(x.removes for x in plan.values())


def test_keep_last_pulled_ignores_tags_never_pulled() -> None:
    tags = [
        tag("a", d(1), 50, pulled_days_ago=1),
        tag("b", d(2), 50, pulled_days_ago=5),
        tag("c", d(3), 50),
    ]
    plan = decide(tags, [R("keep_last_pulled", 2), R("remove_older_than", 10)])
    assert not plan["a"].removes
    assert not plan["b"].removes
    assert plan["c"].removes


def test_children_of_an_index_that_stays_stay() -> None:
    index, amd, arm = d("i"), d("amd"), d("arm")
    graph = ImageGraph(frozenset({index, amd, arm}), children={index: [amd, arm]})
    tags = [tag("multi", index, 1), tag("amd-old", amd, 100), tag("arm-old", arm, 100)]
    plan = decide(tags, [R("remove_older_than", 30)], graph)
    assert not plan["amd-old"].removes
    assert plan["amd-old"].rule == "index"
    assert f"child of index {index[:19]}" in plan["amd-old"].reason
    # The index goes too: then its children are judged by the rules.
    tags[0] = tag("multi", index, 100)
    plan = decide(tags, [R("remove_older_than", 30)], graph)
    assert all(x.removes for x in plan.values())


def test_referrers_follow_their_subject() -> None:
    img, sig = d("img"), d("sig")
    graph = ImageGraph(frozenset({img, sig}), subjects={sig: img})
    tags = [tag("v1", img, 100), tag("v1-sig", sig, 1)]
    plan = decide(tags, [R("remove_older_than", 30)], graph)
    assert plan["v1"].removes
    assert plan["v1-sig"].removes
    assert plan["v1-sig"].rule == "subject"
    plan = decide(tags, [R("remove_older_than", 30), R("keep_regex", "^v1$")], graph)
    assert not plan["v1-sig"].removes
    # Referrers take no place among the N most recently pushed.
    plan = decide(tags, [R("keep_last", 1), R("remove_older_than", 30)], graph)
    assert not plan["v1"].removes
    assert not plan["v1-sig"].removes


def test_cosign_tags_follow_the_digest_they_name() -> None:
    img, sig = d("img"), d("sig")
    cosign = img.replace(":", "-") + ".sig"
    graph = ImageGraph(frozenset({img, sig}))
    tags = [tag("v1", img, 100), tag(cosign, sig, 1), tag("v2", d("x"), 1)]
    graph = ImageGraph(frozenset({img, sig, d("x")}))
    plan = decide(tags, [R("remove_older_than", 30)], graph)
    assert plan[cosign].removes
    assert plan[cosign].rule == "subject"
    assert not plan["v2"].removes


def test_rules_are_checked() -> None:
    with pytest.raises(PolicyError, match="unknown rule"):
        R("keep_first", 3)
    with pytest.raises(PolicyError, match="whole number"):
        R("keep_last", "3")
    with pytest.raises(PolicyError, match="out of range"):
        R("remove_older_than", -1)
    with pytest.raises(PolicyError, match="not valid Unicode text"):
        R("keep_regex", "v\ud800")
    with pytest.raises(PolicyError, match="not a regular expression"):
        R("keep_regex", "(")
    with pytest.raises(PolicyError, match="exponential"):
        R("keep_regex", "(a+)+$")
    with pytest.raises(PolicyError, match="at most 20"):
        parse_rules([{"kind": "keep_last", "value": 1}] * 21)
    assert parse_rules([{"kind": "keep_regex", "value": "^v"}]) == (
        Rule(RuleKind.KEEP_REGEX, "^v"),
    )


# by hypothesis -------------------------------------------------------------------

names = st.sampled_from([f"t{i}" for i in range(12)] + ["v1.0.0", "v2.1.3", "latest", "dev"])


@st.composite
def worlds(draw):  # type: ignore[no-untyped-def]
    """An image: manifests (some indexes over others, some referrers of others) and
    tags on them with random push and pull times."""
    count = draw(st.integers(1, 8))
    digests = [d(f"m{i}") for i in range(count)]
    children: dict[str, list[str]] = {}
    subjects: dict[str, str] = {}
    for i, digest in enumerate(digests):
        kind = draw(st.sampled_from(["image", "image", "index", "referrer"]))
        earlier = digests[:i]
        if kind == "index" and earlier:
            children[digest] = sorted(set(draw(st.lists(st.sampled_from(earlier), max_size=3))))
        elif kind == "referrer" and earlier:
            subjects[digest] = draw(st.sampled_from(earlier))
    tag_names = draw(st.lists(names, min_size=1, max_size=10, unique=True))
    tags = [
        TagFacts(
            n,
            draw(st.sampled_from(digests)),
            NOW - draw(st.integers(0, 200)) * DAY_MS // 2,
            draw(st.one_of(st.none(), st.integers(0, 200).map(lambda x: NOW - x * DAY_MS // 2))),
        )
        for n in tag_names
    ]
    rule_list = draw(
        st.lists(
            st.one_of(
                st.builds(R, st.just("keep_last"), st.integers(0, 5)),
                st.builds(R, st.just("keep_last_pulled"), st.integers(0, 5)),
                st.builds(R, st.just("keep_regex"), st.sampled_from(["^v", "latest", r"\d$"])),
                st.builds(R, st.just("remove_older_than"), st.integers(0, 100)),
                st.builds(R, st.just("remove_not_pulled_for"), st.integers(0, 100)),
            ),
            max_size=5,
        )
    )
    return tags, ImageGraph(frozenset(digests), children, subjects), rule_list


def _alive(roots: set[str], graph: ImageGraph) -> set[str]:
    edges: dict[str, set[str]] = {}
    for parent, kids in graph.children.items():
        edges.setdefault(parent, set()).update(kids)
    for referrer, subject in graph.subjects.items():
        edges.setdefault(subject, set()).add(referrer)
    seen = set(roots)
    stack = list(roots)
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_plans_keep_their_promises(world) -> None:  # type: ignore[no-untyped-def]
    tags, graph, rules = world
    plan = {x.tag: x for x in plan_image(tags, graph, rules, NOW)}
    assert sorted(plan) == sorted(t.name for t in tags)
    keep_labels = {r.label for r in rules if r.keeps}
    remove_labels = {r.label for r in rules if not r.keeps}
    referrer_tags = {t.name for t in tags if t.digest in graph.subjects}
    for t in tags:
        x = plan[t.name]
        assert x.digest == t.digest
        if t.name in referrer_tags:
            continue
        if x.removes:
            # Removed: a remove rule decided, so no keep rule matched.
            assert x.rule in remove_labels
        else:
            assert x.rule is None or x.rule in keep_labels or x.rule in ("index", "subject")
    # Nothing removed when there is no remove rule.
    if not remove_labels:
        assert not any(x.removes for x in plan.values())
    # Indexes that stay keep their children; referrers follow their subject.
    staying = {t.digest for t in tags if not plan[t.name].removes}
    alive = _alive(staying, graph)
    for t in tags:
        if t.digest in alive and t.digest in _alive_children(alive, graph):
            assert not plan[t.name].removes, (t, plan[t.name])
    before = _alive({t.digest for t in tags}, graph)
    for t in tags:
        if t.name in referrer_tags:
            subject = graph.subjects[t.digest]
            others = _alive(
                {u.digest for u in tags if u.name != t.name and not plan[u.name].removes}, graph
            )
            if subject in alive:
                assert not plan[t.name].removes
            elif subject in before and t.digest not in others:
                assert plan[t.name].removes
            if plan[t.name].removes:
                assert subject in before
                assert subject not in alive
    # Removing what the plan removes leaves every kept tag's manifest alive.
    assert {t.digest for t in tags if not plan[t.name].removes} <= alive


def _alive_children(alive: set[str], graph: ImageGraph) -> set[str]:
    held: set[str] = set()
    for parent in alive:
        held.update(graph.children.get(parent, ()))
    return held


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_a_removed_tag_matched_no_keep_rule(world) -> None:  # type: ignore[no-untyped-def]
    """Checked against the rules themselves, not the planner's labels."""
    tags, graph, rules = world
    plan = {x.tag: x for x in plan_image(tags, graph, rules, NOW)}
    ordinary = [t for t in tags if t.digest not in graph.subjects]
    for rule in rules:
        if not rule.keeps:
            continue
        if rule.kind is RuleKind.KEEP_REGEX:
            import re

            for t in ordinary:
                if re.search(str(rule.value), t.name):
                    assert not plan[t.name].removes
        elif rule.kind is RuleKind.KEEP_LAST:
            newest = sorted(ordinary, key=lambda t: (-t.pushed_at, t.name))[: int(rule.value)]
            assert not any(plan[t.name].removes for t in newest)
    for t in ordinary:
        x = plan[t.name]
        if x.removes:
            cutoff_matched = any(
                (r.kind is RuleKind.REMOVE_OLDER_THAN and t.pushed_at < NOW - int(r.value) * DAY_MS)
                or (
                    r.kind is RuleKind.REMOVE_NOT_PULLED_FOR
                    and max(t.pushed_at, t.last_pulled or 0) < NOW - int(r.value) * DAY_MS
                )
                for r in rules
            )
            assert cutoff_matched
