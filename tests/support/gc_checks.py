"""What the GC tests check on a real registry: storage figures and GC runs read
from its metadata store, stored objects on disk, and pulls that verify every byte
(with skopeo, or over plain HTTP for many pulls)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import func, select

from app.core.mediatypes import ACCEPT_ALL_MANIFESTS
from app.registry import accounts
from app.registry.db import schema as s
from app.registry.db.engine import Database, sqlite_url
from app.registry.gc import storage
from tests.support import oci
from tests.support.registry import PASSWORD
from tests.support.tools import require


class Metadata:
    """Read-only access to a registry's metadata store (SQLite in ``data``, or the
    PostgreSQL database at ``database_url``) while its servers run."""

    def __init__(self, data: Path, database_url: str | None = None) -> None:
        self.data = data
        self.db = Database(database_url or sqlite_url(data))

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Metadata:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def workspace_id(self, slug: str = "acme") -> int:
        with self.db.read() as conn:
            return accounts.workspace_id(conn, slug)

    def totals(self, slug: str = "acme") -> storage.Totals:
        with self.db.read() as conn:
            return storage.totals(conn, accounts.workspace_id(conn, slug))

    def last_run_id(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(s.gc_runs.c.id), 0))).scalar())

    def freed_since(self, run_id: int, slug: str = "acme") -> tuple[int, int, int]:
        """(bytes freed, blobs deleted, manifests deleted) by runs after ``run_id``."""
        r = s.gc_runs.c
        with self.db.read() as conn:
            row = conn.execute(
                select(
                    func.coalesce(func.sum(r.bytes_freed), 0),
                    func.coalesce(func.sum(r.blobs_deleted), 0),
                    func.coalesce(func.sum(r.manifests_deleted), 0),
                ).where(r.id > run_id, r.workspace_id == accounts.workspace_id(conn, slug))
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    def queued(self) -> int:
        with self.db.read() as conn:
            return sum(
                int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
                for t in (s.gc_manifest_reviews, s.gc_blob_reviews)
            )

    def blob_rows(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(s.blobs)).scalar() or 0)


def objects(data: Path, workspace_id: int, digest: str) -> list[Path]:
    """The stored objects (one per generation) of a digest in a workspace."""
    alg, hexpart = digest.split(":", 1)
    folder = data / "blobs" / str(workspace_id) / alg / hexpart[:2] / hexpart
    return sorted(folder.iterdir()) if folder.is_dir() else []


def all_objects(data: Path) -> list[Path]:
    root = data / "blobs"
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Poll until ``check()`` holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.1)


def exclusive_bytes(gone: list[oci.Image], staying: list[oci.Image]) -> int:
    """Bytes of the blobs only the ``gone`` images reach: what GC must free."""
    kept = {b.digest for img in staying for b in img.all_blobs()}
    sizes = {b.digest: b.size for img in gone for b in img.all_blobs()}
    return sum(size for digest, size in sizes.items() if digest not in kept)


def skopeo_pull(host: str, name: str, tag: str, img: oci.Image, dest: Path) -> None:
    """Pull with skopeo (every platform of an index) and compare every byte."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            require("skopeo"),
            "copy",
            "--quiet",
            "--all",
            "--src-tls-verify=false",
            "--src-creds",
            f"root:{PASSWORD}",
            f"docker://{host}/{name}:{tag}",
            f"oci:{dest}:{tag}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"skopeo could not pull {name}:{tag}: {result.stderr}"
    pulled = dest / "blobs" / "sha256"
    stack = [img]
    while stack:
        current = stack.pop()
        for blob in [current.manifest, *current.blobs]:
            path = pulled / blob.digest.split(":", 1)[1]
            assert path.read_bytes() == blob.data, f"{name}:{tag}: {blob.digest} differs"
        stack.extend(current.children)
    index = json.loads((dest / "index.json").read_text())
    assert img.digest in {m["digest"] for m in index["manifests"]}


def http_pull(client: httpx.Client, name: str, reference: str) -> str:
    """Pull a manifest (and an index's children) and every blob over HTTP, verifying
    each digest. Returns the manifest's digest. Raises AssertionError on any miss."""
    r = client.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT_ALL_MANIFESTS})
    if r.status_code != 200:
        raise AssertionError(f"manifest {name}:{reference}: {r.status_code} {r.text[:200]}")
    digest = "sha256:" + hashlib.sha256(r.content).hexdigest()
    if ":" in reference and reference != digest:
        raise AssertionError(f"manifest {name}@{reference} came back as {digest}")
    body = json.loads(r.content)
    for child in body.get("manifests", []):
        http_pull(client, name, child["digest"])
    descriptors = ([body["config"]] if "config" in body else []) + body.get("layers", [])
    for d in descriptors:
        got = client.get(f"/v2/{name}/blobs/{d['digest']}")
        if got.status_code != 200:
            raise AssertionError(f"blob {d['digest']} of {name}:{reference}: {got.status_code}")
        actual = "sha256:" + hashlib.sha256(got.content).hexdigest()
        if actual != d["digest"] or len(got.content) != d["size"]:
            raise AssertionError(f"blob {d['digest']} of {name}:{reference} came back wrong")
    return digest
