"""The reference counters kept incrementally (app.registry.gc.usage) against a full
recomputation, after random sequences of pushes (by tag and by digest), tag moves,
tag, manifest and image deletes, index pushes, referrer pushes (before and after
their subject), and GC passes.

The recomputation here is the test's own: a walk in Python over the raw rows
(tags, index children, subjects, layers, configs). fsck's walk (``usage.expected``)
is compared with it too, and fsck must report the registry clean at the end.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import Connection, select

from app.registry.db import schema as s
from app.registry.errors import Conflict, ManifestInvalid, ManifestUnknown
from app.registry.gc import fsck, usage
from tests.support import oci
from tests.support.inprocess import Store

IMAGES = ["acme/web/app", "acme/web/other"]
TAGS = ["t0", "t1", "t2", "t3"]
LAYERS = [oci.random_layer(200, f"usage-layer-{i}") for i in range(5)]
LABELS = range(6)


def plain(label: int, layers: tuple[int, ...]) -> oci.Image:
    return oci.image([LAYERS[i] for i in layers], label=f"p{label}")


def index_of(children: list[oci.Image], subject: oci.Image | None = None) -> oci.Image:
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_INDEX,
        "manifests": [c.manifest.descriptor() for c in children],
    }
    if subject is not None:
        body["subject"] = {
            "mediaType": subject.manifest.media_type,
            "digest": subject.digest,
            "size": subject.manifest.size,
        }
    data = json.dumps(body, sort_keys=True).encode()
    return oci.Image(oci.Blob(data, oci.OCI_INDEX), [], children)


def referrer(subject: oci.Image, label: int) -> oci.Image:
    sig = oci.random_layer(50, f"usage-sig-{label}")
    return oci.image([sig], label=f"r{label}", subject=subject.manifest, artifact_type="x/sig")


# What a step pushes: every manifest a rule can name, built from a few ingredients so
# the same ones recur (re-pushes, shared children, subjects pushed before or after).
layer_sets = st.lists(st.integers(0, len(LAYERS) - 1), min_size=1, max_size=3, unique=True).map(
    lambda xs: tuple(sorted(xs))
)
plains = st.builds(plain, st.sampled_from(LABELS), layer_sets)
subjects = st.deferred(lambda: plains | indexes)
indexes = st.builds(lambda cs: index_of(cs), st.lists(plains, min_size=1, max_size=3))
referrers = st.builds(referrer, subjects, st.sampled_from(LABELS))
indexes_with_subject = st.builds(
    index_of, st.lists(plains | referrers, min_size=1, max_size=2), subjects
)
anything = plains | indexes | referrers | indexes_with_subject


Counters = tuple[dict[int, int], dict[tuple[int, int], int], dict[int, int]]


def recompute(conn: Connection, kind: usage.Kind = usage.TAGS) -> Counters:
    """(holders per manifest, refs per (image, blob), images per blob) of one kind of
    holder, from raw rows. Tags: the tags of live images are the roots, and edges
    into manifests deleted by digest (hidden) do not count. Trash: its entries and
    the tags of images in the trash are the roots, every edge counts."""
    m = s.manifests.c
    manifests = {
        r.id: r
        for r in conn.execute(
            select(m.id, m.image_id, m.digest, m.subject_digest, m.config_blob_id, m.trashed_at)
        )
    }
    trashed = set(
        conn.execute(select(s.images.c.id).where(s.images.c.trashed_at.is_not(None))).scalars()
    )
    by_digest = {(r.image_id, r.digest): r.id for r in manifests.values()}
    edges: dict[int, set[int]] = defaultdict(set)
    tags_kind = kind is usage.TAGS

    def counts(target: int) -> bool:
        return not (tags_kind and manifests[target].trashed_at is not None)

    for parent, child in conn.execute(
        select(s.manifest_children.c.parent_id, s.manifest_children.c.child_id)
    ):
        if counts(child):
            edges[parent].add(child)
    for r in manifests.values():
        subject = by_digest.get((r.image_id, r.subject_digest)) if r.subject_digest else None
        if subject is not None and subject != r.id and counts(r.id):
            edges[subject].add(r.id)
    roots: dict[int, int] = defaultdict(int)
    for mid, image_id in conn.execute(select(s.tags.c.manifest_id, s.tags.c.image_id)):
        if (image_id in trashed) != tags_kind:
            roots[mid] += 1
    if not tags_kind:
        for (mid,) in conn.execute(
            select(s.trash_entries.c.manifest_id).where(s.trash_entries.c.manifest_id.is_not(None))
        ):
            roots[mid] += 1
    live: set[int] = set()
    stack = list(roots)
    while stack:
        mid = stack.pop()
        if mid not in live:
            live.add(mid)
            stack.extend(edges[mid])
    holders = {mid: roots[mid] for mid in manifests}
    for parent in live:
        for child in edges[parent]:
            holders[child] += 1
    blobs: dict[int, set[int]] = defaultdict(set)
    for mid, r in manifests.items():
        if r.config_blob_id is not None:
            blobs[mid].add(r.config_blob_id)
    for mid, blob_id in conn.execute(
        select(s.manifest_layers.c.manifest_id, s.manifest_layers.c.blob_id)
    ):
        blobs[mid].add(blob_id)
    refs: dict[tuple[int, int], int] = defaultdict(int)
    for mid in live:
        for blob_id in blobs[mid]:
            refs[(manifests[mid].image_id, blob_id)] += 1
    image_refs = {b: 0 for b in conn.execute(select(s.blobs.c.id)).scalars()}
    for _image, blob_id in refs:
        image_refs[blob_id] += 1
    return holders, dict(refs), image_refs


def kept(conn: Connection, kind: usage.Kind = usage.TAGS) -> Counters:
    holders = dict(conn.execute(select(s.manifests.c.id, kind.holders)).all())
    u = kind.usage.c
    refs = {(i, b): n for b, i, n in conn.execute(select(u.blob_id, u.image_id, u.refs))}
    image_refs = dict(conn.execute(select(s.blobs.c.id, kind.images)).all())
    return holders, refs, image_refs


_template: Path | None = None


def fresh_store(trash_retention_ms: int = 0) -> tuple[Store, Path]:
    """A registry copied from one migrated and seeded once (migrating per example
    would be most of the test's time)."""
    global _template
    if _template is None:
        _template = Path(tempfile.mkdtemp(prefix="usage-template-"))
        atexit.register(shutil.rmtree, _template, ignore_errors=True)
        Store(_template / "data", review_delay_ms=0, grace_ms=0).close()
    root = Path(tempfile.mkdtemp(prefix="usage-"))
    shutil.copytree(_template / "data", root / "data")
    store = Store(
        root / "data",
        review_delay_ms=0,
        grace_ms=0,
        seed_accounts=False,
        trash_retention_ms=trash_retention_ms,
    )
    return store, root


class Accounting(RuleBasedStateMachine):
    RETENTION_MS = 0

    def __init__(self) -> None:
        super().__init__()
        self.store, self.root = fresh_store(self.RETENTION_MS)
        self.refused = 0

    def teardown(self) -> None:
        report = fsck.check(self.store.reg, orphan_min_age_ms=0)
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)
        assert report.clean, report.lines()

    def _push(self, name: str, img: oci.Image, tag: str | None) -> None:
        try:
            self.store.push(name, img, tag)
        except ManifestInvalid as exc:
            if "reaches its own subject" not in str(exc):
                raise
            self.refused += 1

    @rule(name=st.sampled_from(IMAGES), img=anything, tag=st.sampled_from([None, *TAGS]))
    def push(self, name: str, img: oci.Image, tag: str | None) -> None:
        self._push(name, img, tag)

    @rule(
        name=st.sampled_from(IMAGES),
        subject=subjects,
        label=st.sampled_from(LABELS),
        tag=st.sampled_from([None, *TAGS]),
    )
    def push_referrer_then_subject(
        self, name: str, subject: oci.Image, label: int, tag: str | None
    ) -> None:
        self._push(name, referrer(subject, label), None)
        self._push(name, subject, tag)

    @rule(name=st.sampled_from(IMAGES), tag=st.sampled_from(TAGS))
    def delete_tag(self, name: str, tag: str) -> None:
        image = self.store.find_image(name)
        with self.store.reg.db.read() as conn:
            tags = s.tags.c
            there = (
                image is not None
                and conn.execute(
                    select(tags.id).where(tags.image_id == image.id, tags.name == tag)
                ).first()
            )
        if there:
            self.store.delete_tag(name, tag)

    @rule(name=st.sampled_from(IMAGES), img=anything)
    def delete_manifest(self, name: str, img: oci.Image) -> None:
        # Refused while a parent index holds it; unknown if it is not there.
        with contextlib.suppress(Conflict, ManifestUnknown):
            self.store.delete_manifest(name, img.digest)

    @rule(name=st.sampled_from(IMAGES))
    def delete_image(self, name: str) -> None:
        if self.store.find_image(name) is not None:
            self.store.delete_image(name)

    @rule()
    def collect(self) -> None:
        self.store.advance(1)
        self.store.gc(ignore_delay=True)

    @invariant()
    def counters_equal_a_full_walk(self) -> None:
        with self.store.reg.db.read() as conn:
            for kind in usage.KINDS:
                truth = recompute(conn, kind)
                assert kept(conn, kind) == truth, kind.name
                for image_id in conn.execute(select(s.images.c.id)).scalars():
                    want = usage.expected(conn, image_id, kind)
                    assert {k: v for k, v in truth[0].items() if k in want.holders} == want.holders
                    assert {b: n for (i, b), n in truth[1].items() if i == image_id} == want.refs
            # A manifest deleted by digest is never live through a tag, nor tagged.
            m = s.manifests.c
            assert not conn.execute(
                select(m.id).where(m.trashed_at.is_not(None), m.holders != 0)
            ).all()
            assert not conn.execute(
                select(s.tags.c.id)
                .join(s.manifests, m.id == s.tags.c.manifest_id)
                .where(m.trashed_at.is_not(None))
            ).all()


class TrashAccounting(Accounting):
    """The same with the trash on: deletes and tag moves go to the trash, and entries
    are restored (under their name or another), emptied and expired."""

    RETENTION_MS = 50

    @rule(pick=st.integers(0, 1_000), other_name=st.booleans())
    def restore(self, pick: int, other_name: bool) -> None:
        entries = self.store.trash_entries()
        if not entries:
            return
        entry = entries[pick % len(entries)]
        as_name = f"back{pick % 3}" if other_name and entry.kind != "image" else None
        outcome = self.store.restore(entry.id, as_name)
        assert outcome.status in ("restored", "conflict"), outcome

    @rule(pick=st.integers(0, 1_000))
    def empty(self, pick: int) -> None:
        entries = self.store.trash_entries()
        if entries:
            self.store.empty([entries[pick % len(entries)].id])

    @rule()
    def expire(self) -> None:
        self.store.advance(self.RETENTION_MS)
        self.store.expire()


TestAccounting = Accounting.TestCase
TestAccounting.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestTrashAccounting = TrashAccounting.TestCase
TestTrashAccounting.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_a_manifest_that_reaches_its_own_subject_is_refused(tmp_path: Path) -> None:
    """An index whose subject is its own child would hold itself live forever."""
    store = Store(tmp_path / "data", review_delay_ms=0, grace_ms=0)
    try:
        child = plain(1, (0,))
        store.push(IMAGES[0], child, "v1")
        with pytest.raises(ManifestInvalid, match="reaches its own subject"):
            store.push(IMAGES[0], index_of([child], subject=child), "loop")
        # Through a referrer: an index over a manifest, whose subject is a referrer of
        # that same manifest (manifest -> referrer -> index -> manifest).
        base = plain(2, (1,))
        sig = referrer(base, 3)
        store.push(IMAGES[0], base, "v2")
        store.push(IMAGES[0], sig)
        with pytest.raises(ManifestInvalid, match="reaches its own subject"):
            store.push(IMAGES[0], index_of([base], subject=sig), "loop2")
        report = fsck.check(store.reg, orphan_min_age_ms=0)
        assert report.clean, report.lines()
    finally:
        store.close()
