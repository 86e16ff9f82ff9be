"""The storage effect of deleting tags, computed two ways: from the tag ids
(``delete_impact``, what the API's delete-impact and every delete report) and from
the manifests of the tags that go and stay (``manifests_impact``, what a cleanup
preview reports). On SQLite and PostgreSQL, over random sets of tags of a registry
holding shared layers, an index whose children are tagged too, referrers tagged and
untagged, and a manifest two tags share, the two give the same figures."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.registry.db import schema as s
from app.registry.gc import storage
from tests.support import oci
from tests.support.inprocess import Store
from tests.support.postgres import PostgresServer

SHARED = oci.random_layer(300, "forms-shared")
APP, OTHER = "acme/web/app", "acme/web/other"


def _world(store: Store) -> None:
    builds = [oci.image([SHARED, oci.random_layer(200, f"forms-{n}")], label=f"b{n}")
              for n in range(4)]  # fmt: skip
    for n, img in enumerate(builds):
        store.push(APP, img, f"b{n}")
    store.push(APP, builds[0], "latest")  # one manifest, two tags
    arm = oci.image([oci.random_layer(200, "forms-arm")], arch="arm64", label="arm")
    idx = oci.index([builds[1], arm])
    store.push(APP, idx, "multi")  # builds[1] is tagged itself too; arm is not
    sig = oci.image([oci.random_layer(50, "forms-sig")], label="sig",
                    subject=builds[2].manifest, artifact_type="x/sig")  # fmt: skip
    store.push(APP, sig)  # untagged referrer: held while its subject is
    att = oci.image([oci.random_layer(50, "forms-att")], label="att",
                    subject=builds[3].manifest, artifact_type="x/att")  # fmt: skip
    store.push(APP, att, "b3-att")
    # Another image shares the base layer and one build's own layer.
    store.push(OTHER, oci.image([SHARED, oci.random_layer(200, "forms-1")], label="o1"), "o1")
    store.push(OTHER, oci.image([oci.random_layer(200, "forms-o2")], label="o2"), "o2")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest) -> Iterator[Store]:
    root = Path(tempfile.mkdtemp(prefix="impact-forms-"))
    postgres = PostgresServer() if request.param == "postgresql" else None
    url = postgres.create_database("impact_forms") if postgres else None
    store = Store(root / "data", review_delay_ms=0, grace_ms=0, database_url=url)
    try:
        _world(store)
        yield store
    finally:
        store.close()
        if postgres:
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def _tags(store: Store) -> list[tuple[int, int, int]]:
    t = s.tags.c
    with store.reg.db.read() as conn:
        return [tuple(r) for r in conn.execute(select(t.id, t.image_id, t.manifest_id)).all()]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_both_forms_agree(world: Store, data: st.DataObject) -> None:
    tags = _tags(world)
    assert len(tags) == 9
    going = data.draw(st.sets(st.sampled_from(tags)))
    losing = {image_id for _, image_id, _ in going}
    gone = {manifest_id for _, _, manifest_id in going}
    staying = {m for tag in tags if tag not in going and tag[1] in losing for m in [tag[2]]}
    workspace = world.workspace_id()
    with world.reg.db.read() as conn:
        by_tags = storage.delete_impact(conn, workspace, [t[0] for t in going], ())
        by_manifests = storage.manifests_impact(conn, workspace, losing, gone, staying)
    assert by_manifests == by_tags


def test_the_world_frees_and_keeps_something(world: Store) -> None:
    """The world is rich enough: deleting every tag of the app frees some bytes and
    keeps those the other image shares."""
    tags = [t for t in _tags(world) if t[1] == _tags(world)[0][1]]
    with world.reg.db.read() as conn:
        impact = storage.manifests_impact(
            conn, world.workspace_id(), {tags[0][1]}, {t[2] for t in tags}, set()
        )
    assert impact.freed > 0
    assert impact.kept == SHARED.size + oci.random_layer(200, "forms-1").size
