"""Several registry nodes as in production (tests/support/cluster.py): one PostgreSQL,
one bucket on SeaweedFS, two ``berth-registry serve`` processes, HAProxy in front
running the packaged configuration.

* skopeo pushes through the load balancer and pulls from each node directly;
* one chunked upload's PATCHes land on different nodes, its PUT on a third door;
* a node keeps a push it received whole for the first pulls; an upload split
  across nodes is kept by none;
* a PUT refused because a chunk landed on the other node under it leaves its node
  no hash to trust (a later PUT claiming a digest of other bytes is refused);
* a token one node issued is valid on the other;
* the desktop app's event stream (app.client.events), open on node A, sees a delete
  made on node B;
* the race stress across both nodes (pushes on one, deletes on the other, GC
  workers on both, run-now on both, a ``gc`` process), then every tag pulls with
  verified digests and fsck is clean;
* kill -9 of a node mid-upload and mid-GC while the other keeps serving.

One cluster for the module: starting PostgreSQL, two nodes and HAProxy costs
seconds, and every test works in images of its own. Nodes killed are restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.client.events import Backoff, EventStream
from app.registry.db import schema as s
from tests.e2e.test_race_stress import FAST_IMAGES, GRACE, SLOW_IMAGES, Tally, Worker, _loop
from tests.support import oci
from tests.support.cluster import Cluster, HaProxy
from tests.support.distribution import make_tls
from tests.support.gc_checks import Metadata, http_pull, skopeo_pull, wait_until
from tests.support.registry import CLI, PASSWORD
from tests.support.seaweedfs import SeaweedS3
from tests.support.tools import require

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MiB = 1024 * 1024
STRESS_SECONDS = float(os.environ.get("BERTH_CLUSTER_STRESS_SECONDS", "30"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Cluster]:
    bucket = seaweed.create_bucket(f"cluster-{uuid.uuid4().hex[:8]}")
    rig = Cluster(
        tmp_path_factory.mktemp("cluster"),
        seaweed,
        bucket,
        review_delay=0,
        upload_grace=GRACE,
    ).start()
    try:
        yield rig
    finally:
        rig.stop()


def _skopeo(*args: str) -> None:
    result = subprocess.run(
        [require("skopeo"), "copy", "--quiet", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _name() -> str:
    return f"acme/web/c-{uuid.uuid4().hex[:8]}"


def _image_of(data: bytes, label: str) -> oci.Image:
    """An image whose one layer is ``data`` (random bytes: no diff_ids to compute)."""
    config = oci.Blob(
        json.dumps({"architecture": "amd64", "os": "linux", "label": label}).encode(),
        oci.OCI_CONFIG,
    )
    return oci.image([oci.Blob(data, oci.OCI_LAYER)], config_blob=config)


def test_push_through_the_balancer_pull_from_each_node(cluster: Cluster, tmp_path: Path) -> None:
    img = oci.image([oci.random_layer(12 * MiB, "lb-1"), oci.random_layer(3000, "lb-2")])
    layout = oci.write_layout(tmp_path / "layout", {"v1": img})
    assert cluster.lb is not None
    name = _name()
    _skopeo(
        "--dest-tls-verify=false",
        "--dest-creds",
        f"writer:{PASSWORD}",
        f"oci:{layout}:v1",
        f"docker://{cluster.lb.host}/{name}:v1",
    )
    for i, node in enumerate(cluster.nodes):
        skopeo_pull(node.host, name, "v1", img, tmp_path / f"pulled{i}")


def test_one_upload_across_both_nodes(cluster: Cluster) -> None:
    """PATCHes on node 1, node 2, node 1, the PUT through the balancer: the state of
    the upload is in the database, the bytes in the bucket."""
    data = os.urandom(15 * MiB + 12345)
    name = _name()
    one, two = (cluster.client("writer", n.url) for n in cluster.nodes)
    lb = cluster.client("writer")
    before = set(cluster.seaweed.keys(cluster.bucket))
    try:
        location = one.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
        offset = 0
        for client, size in ((one, 6 * MiB), (two, 2 * MiB), (one, 5 * MiB)):
            piece = data[offset : offset + size]
            r = client.patch(
                location,
                content=piece,
                headers={"Content-Range": f"{offset}-{offset + size - 1}"},
            )
            assert r.status_code == 202, r.text
            offset += size
            # Either node reports where the upload stands.
            for other in (one, two):
                assert other.get(location).headers["Range"] == f"0-{offset - 1}"
        r = lb.put(location, params={"digest": _sha256(data)}, content=data[offset:])
        assert r.status_code == 201, r.text
        # No node saw every byte, so none kept the upload as its copy: with the
        # object out of the bucket behind their backs, both say it is gone.
        with _object_away(cluster, before) as blob:
            for client in (one, two):
                assert client.get(f"/v2/{name}/blobs/{blob}").status_code == 404
        img = _image_of(data, "across")
        oci.push(lb, name, img, "v1")
        for client in (one, two):
            got = client.get(f"/v2/{name}/blobs/{_sha256(data)}")
            assert got.status_code == 200
            assert got.content == data
    finally:
        for c in (one, two, lb):
            c.close()


@contextlib.contextmanager
def _object_away(cluster: Cluster, before: set[str]) -> Iterator[str]:
    """Take the one object stored since ``before`` out of the bucket behind the
    nodes' backs, and put it back; yields the blob's digest."""
    (key,) = (k for k in cluster.seaweed.keys(cluster.bucket) if k not in before)
    client = cluster.seaweed.client()
    body = client.get_object(Bucket=cluster.bucket, Key=key)["Body"].read()
    client.delete_object(Bucket=cluster.bucket, Key=key)
    try:
        yield _sha256(body)
    finally:
        client.put_object(Bucket=cluster.bucket, Key=key, Body=body)


def test_a_push_is_kept_by_the_node_it_went_through(cluster: Cluster) -> None:
    """The node that received a whole upload serves the first pulls from its copy;
    the other node reads the bucket."""
    data = os.urandom(12 * MiB + 7)
    name = _name()
    before = set(cluster.seaweed.keys(cluster.bucket))
    with (
        cluster.client("writer", cluster.nodes[0].url) as one,
        cluster.client("writer", cluster.nodes[1].url) as two,
    ):
        location = one.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
        assert one.patch(location, content=data[: 7 * MiB]).status_code == 202
        r = one.put(location, params={"digest": _sha256(data)}, content=data[7 * MiB :])
        assert r.status_code == 201, r.text
        with _object_away(cluster, before) as blob:
            assert blob == _sha256(data)
            got = one.get(f"/v2/{name}/blobs/{blob}")
            assert got.status_code == 200
            assert got.content == data
            assert two.get(f"/v2/{name}/blobs/{blob}").status_code == 404
        assert two.get(f"/v2/{name}/blobs/{_sha256(data)}").content == data


def test_a_put_that_did_not_land_leaves_no_trusted_hash(cluster: Cluster) -> None:
    """Node 1 takes a PUT of X (1,000 bytes) while node 2 lands a PATCH of other
    1,000 bytes under it: the PUT is refused. The session now stands at 1,000 bytes,
    as node 1's hash of X does; a PUT of Z on node 1 claiming X+Z must not be
    checked against that hash: the object holds the PATCH's bytes and Z."""
    name = _name()
    x, y, z = os.urandom(1000), os.urandom(1000), os.urandom(3000)
    with (
        cluster.client("writer", cluster.nodes[0].url) as one,
        cluster.client("writer", cluster.nodes[1].url) as two,
    ):
        location = one.post(f"/v2/{name}/blobs/uploads/").headers["Location"]

        def x_with_a_patch_on_node_2_under_it() -> Iterator[bytes]:
            yield x[:500]
            time.sleep(0.5)  # node 1 read the session (at 0 bytes) and streams
            r = two.patch(location, content=y, headers={"Content-Range": "0-999"})
            assert r.status_code == 202, r.text
            yield x[500:]

        first = one.put(
            location, params={"digest": _sha256(x)}, content=x_with_a_patch_on_node_2_under_it()
        )
        assert first.status_code == 416, first.text
        assert one.get(location).headers["Range"] == "0-999"
        claimed = _sha256(x + z)
        second = one.put(location, params={"digest": claimed}, content=z)
        assert second.status_code == 400, second.text
        assert second.json()["errors"][0]["code"] == "DIGEST_INVALID"
        for client in (one, two):
            assert client.get(f"/v2/{name}/blobs/{claimed}").status_code == 404


def test_a_token_from_one_node_is_valid_on_the_other(cluster: Cluster) -> None:
    name = _name()
    with cluster.client("writer") as c:
        oci.push(c, name, oci.image([oci.random_layer(1000, "token")]), "v1")
    first, second = cluster.nodes
    token = httpx.get(
        f"{first.url}/auth/token",
        params={"service": "berth-registry", "scope": f"repository:{name}:pull"},
        auth=("writer", PASSWORD),
    ).json()["token"]
    r = httpx.get(f"{second.url}/v2/{name}/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json()["tags"] == ["v1"]


def test_the_balancer_ends_tls_when_its_bind_says_so(cluster: Cluster, tmp_path: Path) -> None:
    """BERTH_LB_BIND written as the README writes it ("ADDRESS ssl crt FILE"): HAProxy
    speaks https on that port and only https, and a pull goes through it."""
    ca, cert, key = make_tls(tmp_path / "tls")
    lb = HaProxy([n.host for n in cluster.nodes], tls=(cert, key))
    try:
        assert lb.url.startswith("https://")
        name = _name()
        img = oci.image([oci.random_layer(5000, "tls-lb")])
        with cluster.client("writer") as c:
            oci.push(c, name, img, "v1")
        trust = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(base_url=lb.url, verify=trust, auth=("writer", PASSWORD)) as c:
            r = c.get(f"/v2/{name}/manifests/v1", headers={"Accept": oci.OCI_MANIFEST})
            assert r.status_code == 200, r.text
            assert r.headers["Docker-Content-Digest"] == img.digest
            layer = img.blobs[-1]
            assert c.get(f"/v2/{name}/blobs/{layer.digest}").content == layer.data
        # Plain HTTP on the TLS port gets no answer from a node.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{lb.port}/v2/", timeout=5)
    finally:
        lb.stop()


def test_an_event_stream_on_one_node_sees_a_delete_on_the_other(cluster: Cluster) -> None:
    name = _name()
    with cluster.client("wsadmin") as c:
        oci.push(c, name, oci.image([oci.random_layer(1000, "events")]), "gone")
    first, second = cluster.nodes

    async def scenario() -> dict[str, object]:
        async with httpx.AsyncClient(
            base_url=first.url, auth=httpx.BasicAuth("wsadmin", PASSWORD), timeout=30
        ) as http:
            opened = asyncio.Event()
            stream = EventStream(
                http,
                "/api/v1/workspaces/acme/events",
                what="Events of acme",
                backoff=Backoff(initial_s=0.2, max_s=0.5),
                on_open=opened.set,
            )
            found: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

            async def read() -> None:
                async for event in stream:
                    data = event.data
                    if event.type == "tag_deleted" and "gone" in data.get("tags", []):
                        found.set_result(data)
                        return

            reader = asyncio.create_task(read())
            try:
                await asyncio.wait_for(opened.wait(), 30)
                # The stream answers once it is subscribed; the delete goes to the other
                # node, whose event reaches this one through PostgreSQL.
                async with httpx.AsyncClient(
                    base_url=second.url, auth=httpx.BasicAuth("wsadmin", PASSWORD)
                ) as other:
                    r = await other.delete(f"/v2/{name}/manifests/gone")
                    assert r.status_code == 202
                return await asyncio.wait_for(found, 30)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    event = asyncio.run(scenario())
    assert event["actor"] == "wsadmin"
    assert event["tags"] == ["gone"]


def _gc_process(cluster: Cluster, until: float, tally: Tally) -> None:
    """A GC-only process beside the nodes' own workers (an admin's cron job)."""
    node = cluster.nodes[0]
    while time.monotonic() < until:
        result = subprocess.run(
            [
                CLI,
                "gc",
                "--data",
                str(node.data),
                "--database-url",
                cluster.database_url,
                "--blob-store",
                cluster.blob_store,
                "--once",
                "--ignore-review-delay",
                "--gc-upload-grace",
                str(GRACE),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **cluster.seaweed.env},
            check=False,
        )
        if result.returncode not in (0, 1):
            tally.violation(f"gc --once: {result.returncode} {result.stderr[-500:]}")
        tally.add("gc --once (third process)")
        time.sleep(2)


def _fsck(cluster: Cluster, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CLI,
            "fsck",
            "--data",
            str(cluster.nodes[0].data),
            "--database-url",
            cluster.database_url,
            "--blob-store",
            cluster.blob_store,
            "--orphan-min-age",
            "0",
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **cluster.seaweed.env},
        check=False,
    )


def _drained(cluster: Cluster) -> None:
    with Metadata(cluster.nodes[0].data, cluster.database_url) as meta:
        wait_until(lambda: meta.queued() == 0, "the review queues to drain", timeout=180)


def test_race_stress_across_nodes(cluster: Cluster, tmp_path: Path) -> None:
    pusher, deleter = cluster.nodes
    tally = Tally()
    until = time.monotonic() + STRESS_SECONDS
    threads: list[threading.Thread] = []
    for i in range(3):
        w = Worker(pusher, tally, seed=i)
        ops = [(w.push, 50), (w.pull, 20), (w.run_now, 1)]
        threads.append(threading.Thread(target=_loop, args=(w, until, ops)))
    w = Worker(deleter, tally, seed=10)
    ops = [(w.pull, 40), (w.delete_tag, 15), (w.delete_image, 2), (w.run_now, 2)]
    threads.append(threading.Thread(target=_loop, args=(w, until, ops)))
    w = Worker(pusher, tally, seed=100)
    threads.append(threading.Thread(target=_loop, args=(w, until, [(w.slow_push, 1)])))
    threads.append(threading.Thread(target=_gc_process, args=(cluster, until, tally)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _drained(cluster)

    existing: list[tuple[str, str, str]] = []
    for node in cluster.nodes:  # every tag, from each node
        with node.client("root") as c:
            for name in FAST_IMAGES + SLOW_IMAGES:
                r = c.get(f"/v2/{name}/tags/list")
                for tag in (r.json().get("tags") or []) if r.status_code == 200 else []:
                    existing.append((name, tag, http_pull(c, name, tag)))
    assert existing
    for name, tag, digest in random.Random(0).sample(existing, min(2, len(existing))):
        skopeo_pull(deleter.host, name, tag, tally.images[digest], tmp_path / name / tag)
    fsck = _fsck(cluster, "--verify-content")
    counts = dict(sorted(tally.counts.items()))
    print(f"\ncluster race stress, {STRESS_SECONDS:.0f} s: {counts}")
    print(fsck.stdout.strip().splitlines()[-1])
    assert tally.violations == [], (tally.violations, cluster.logs())
    assert fsck.returncode == 0, fsck.stdout
    assert counts.get("push", 0) > 0
    assert counts.get("tag delete", 0) > 0


def _slow_body(data: bytes, sent: threading.Event, step: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), step):
        if start >= len(data) // 2:
            sent.set()
            time.sleep(0.2)
        yield data[start : start + step]


def test_kill_a_node_mid_upload(cluster: Cluster) -> None:
    """A third node takes an upload's first chunk and dies (kill -9) in the middle
    of the second; a node behind the balancer finishes the upload."""
    doomed = cluster.node("doomed-upload")
    data = os.urandom(10 * MiB)
    name = _name()
    with (
        cluster.client("writer", doomed.url) as three,
        cluster.client("writer", cluster.nodes[1].url) as two,
    ):
        location = three.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
        assert three.patch(location, content=data[: 6 * MiB]).status_code == 202
        half_sent = threading.Event()

        def killer() -> None:
            half_sent.wait(60)
            doomed.kill()

        thread = threading.Thread(target=killer)
        thread.start()
        with pytest.raises(httpx.TransportError):
            three.patch(location, content=_slow_body(data[6 * MiB :], half_sent))
        thread.join()
        # The other node knows the upload: what was acknowledged, not a byte more.
        status = two.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{6 * MiB - 1}"
        r = two.put(location, params={"digest": _sha256(data)}, content=data[6 * MiB :])
        assert r.status_code == 201, r.text
    img = _image_of(data, "killed-upload")
    with cluster.client("writer") as lb:
        oci.push(lb, name, img, "v1")
    for node in cluster.nodes:
        with cluster.client("writer", node.url) as c:
            assert http_pull(c, name, "v1") == img.digest


def test_kill_a_node_mid_gc(cluster: Cluster) -> None:
    """A third node's GC is reviewing a delete's garbage when it dies (kill -9); the
    nodes behind the balancer serve on and finish the work."""
    images = [oci.image([oci.random_layer(2000, f"gc-kill-{i}")]) for i in range(80)]
    keep = oci.image([oci.random_layer(5000, "gc-kill-keep")])
    name = _name()
    with cluster.client("wsadmin") as lb:
        oci.push(lb, name, keep, "keep")
        for i, img in enumerate(images):
            oci.push(lb, name, img, f"t{i}")
    doomed = cluster.node("doomed-gc")
    with Metadata(cluster.nodes[0].data, cluster.database_url) as meta:
        wait_until(lambda: meta.queued() == 0, "the pushes' reviews")
        queued_at_most = 0
        with cluster.client("wsadmin", doomed.url) as three:
            for i in range(len(images)):
                assert three.delete(f"/v2/{name}/manifests/t{i}").status_code == 202
            queued_at_most = meta.queued()

            def gc_now() -> None:
                with contextlib.suppress(httpx.TransportError):  # it dies answering
                    three.post("/api/v1/workspaces/acme/gc/run", timeout=120)

            run_now = threading.Thread(target=gc_now)
            run_now.start()
            # Kill it while the reviews are being worked off.
            wait_until(lambda: meta.queued() < queued_at_most, "the GC to start", timeout=60)
            doomed.kill()
            run_now.join()
        with cluster.client("wsadmin") as lb:  # the other nodes serve on
            assert http_pull(lb, name, "keep") == keep.digest
        wait_until(lambda: meta.queued() == 0, "the other nodes to finish the GC", timeout=180)
        with meta.db.read() as conn:
            digests = set(conn.execute(select(s.blobs.c.digest)).scalars())
    assert not {b.digest for img in images for b in img.blobs} & digests
    assert {b.digest for b in keep.blobs} <= digests
    # A kill between a review's commit and its object delete leaks bytes, never loses
    # any: fsck --repair takes the leaks, and then all is clean.
    repaired = _fsck(cluster, "--repair")
    assert repaired.returncode in (0, 1), repaired.stdout
    lines = repaired.stdout.splitlines()
    assert all(line.startswith(("orphan", "note", "fsck:")) for line in lines), repaired.stdout
    assert _fsck(cluster).returncode == 0
    for node in cluster.nodes:
        with cluster.client("wsadmin", node.url) as c:
            assert http_pull(c, name, "keep") == keep.digest


def test_the_nodes_share_one_bucket(cluster: Cluster) -> None:
    """What one node stores, the other serves; nothing is stored twice."""
    layer = oci.random_layer(40_000, "shared-bucket")
    img = oci.image([layer])
    name = _name()
    before = len(cluster.seaweed.keys(cluster.bucket))
    with cluster.client("writer", cluster.nodes[0].url) as one:
        oci.push(one, name, img, "v1")
    with cluster.client("writer", cluster.nodes[1].url) as two:
        assert two.head(f"/v2/{name}/blobs/{layer.digest}").status_code == 200
        oci.push(two, name, img, "v2")  # every blob already there: nothing uploaded
        assert http_pull(two, name, "v1") == img.digest
    assert len(cluster.seaweed.keys(cluster.bucket)) == before + len(img.blobs)
