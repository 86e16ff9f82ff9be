"""The reference counters kept incrementally (app.registry.usage) against a full
recomputation, after random sequences of pushes (by tag and by digest), tag moves,
tag, manifest and image deletes, index pushes, referrer pushes (before and after
their subject), and GC passes.

The recomputation here is the test's own: a walk in Python over the raw rows
(tags, index children, subjects, layers, configs). fsck's walk (``usage.expected``)
is compared with it too, and fsck must report the registry clean at the end.
"""

from __future__ import annotations

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

from app.registry import fsck, usage
from app.registry.db import schema as s
from app.registry.errors import Conflict, ManifestInvalid, ManifestUnknown
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


def recompute(
    conn: Connection,
) -> tuple[dict[int, int], dict[tuple[int, int], int], dict[int, int]]:
    """(holders per manifest, refs per (image, blob), image_refs per blob) from raw rows."""
    m = s.manifests.c
    manifests = {
        r.id: r
        for r in conn.execute(
            select(m.id, m.image_id, m.digest, m.subject_digest, m.config_blob_id)
        )
    }
    by_digest = {(r.image_id, r.digest): r.id for r in manifests.values()}
    edges: dict[int, set[int]] = defaultdict(set)
    for parent, child in conn.execute(
        select(s.manifest_children.c.parent_id, s.manifest_children.c.child_id)
    ):
        edges[parent].add(child)
    for r in manifests.values():
        subject = by_digest.get((r.image_id, r.subject_digest)) if r.subject_digest else None
        if subject is not None and subject != r.id:
            edges[subject].add(r.id)
    tags: dict[int, int] = defaultdict(int)
    for (mid,) in conn.execute(select(s.tags.c.manifest_id)):
        tags[mid] += 1
    live: set[int] = set()
    stack = list(tags)
    while stack:
        mid = stack.pop()
        if mid not in live:
            live.add(mid)
            stack.extend(edges[mid])
    holders = {mid: tags[mid] for mid in manifests}
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


def kept(conn: Connection) -> tuple[dict[int, int], dict[tuple[int, int], int], dict[int, int]]:
    holders = dict(conn.execute(select(s.manifests.c.id, s.manifests.c.holders)).all())
    u = s.blob_usage.c
    refs = {(i, b): n for b, i, n in conn.execute(select(u.blob_id, u.image_id, u.refs))}
    image_refs = dict(conn.execute(select(s.blobs.c.id, s.blobs.c.image_refs)).all())
    return holders, refs, image_refs


_template: Path | None = None


def fresh_store() -> tuple[Store, Path]:
    """A registry copied from one migrated and seeded once (migrating per example
    would be most of the test's time)."""
    global _template
    if _template is None:
        _template = Path(tempfile.mkdtemp(prefix="usage-template-"))
        Store(_template / "data", review_delay_ms=0, grace_ms=0).close()
    root = Path(tempfile.mkdtemp(prefix="usage-"))
    shutil.copytree(_template / "data", root / "data")
    return Store(root / "data", review_delay_ms=0, grace_ms=0, seed_accounts=False), root


class Accounting(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store, self.root = fresh_store()
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
            truth = recompute(conn)
            assert kept(conn) == truth
            for image_id in conn.execute(select(s.images.c.id)).scalars():
                want = usage.expected(conn, image_id)
                assert {k: v for k, v in truth[0].items() if k in want.holders} == want.holders
                assert {b: n for (i, b), n in truth[1].items() if i == image_id} == want.refs


TestAccounting = Accounting.TestCase
TestAccounting.settings = settings(
    max_examples=60,
    stateful_step_count=25,
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
