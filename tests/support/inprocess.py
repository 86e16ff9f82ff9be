"""A registry driven in-process with an explicit clock, for unit tests of the GC and
fsck: the same content functions the HTTP layer calls, without the HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import Connection, Table, func, select

from app.core.manifests import parse_manifest
from app.core.names import ImageName
from app.registry import accounts, content, trash
from app.registry.blobstore import new_generation
from app.registry.content import Timing
from app.registry.db import schema as s
from app.registry.gc import collector as gc
from app.registry.service import Registry
from tests.support import oci

START = 1_800_000_000_000  # a fixed "now" (ms) the tests move by hand


class Store:
    """Workspaces ``acme`` (repositories ``web``, ``api``) and ``globex`` (``tools``)."""

    def __init__(
        self,
        data: Path,
        *,
        review_delay_ms: int = 0,
        grace_ms: int = 1_000,
        seed_accounts: bool = True,
        database_url: str | None = None,
        trash_retention_ms: int = 0,
    ) -> None:
        self.reg = Registry.open(
            data,
            database_url=database_url,
            timing=Timing(
                review_delay=review_delay_ms,
                upload_grace=grace_ms,
                trash_retention=trash_retention_ms,
            ),
        )
        self.now = START
        if not seed_accounts:  # a registry that already has them
            return
        with self.reg.db.write() as conn:
            for ws, key, repos in (("acme", "PLAT", ("web", "api")), ("globex", "OPS", ("tools",))):
                accounts.add_workspace(conn, ws)
                accounts.add_project(conn, ws, key)
                for repo in repos:
                    accounts.add_repository(conn, ws, repo, key)

    def close(self) -> None:
        self.reg.close()

    # time ------------------------------------------------------------------
    def clock(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms

    @property
    def grace(self) -> int:
        return self.reg.timing.upload_grace

    # lookups ----------------------------------------------------------------
    def workspace_id(self, slug: str = "acme") -> int:
        with self.reg.db.read() as conn:
            return accounts.workspace_id(conn, slug)

    def image(self, conn: Connection, name: str) -> content.Image:
        parsed = ImageName.parse(name)
        repo = accounts.get_repository(conn, parsed.workspace, parsed.repository)
        return content.ensure_image(conn, repo, parsed.image, self.now)

    def find_image(self, name: str) -> content.Image | None:
        parsed = ImageName.parse(name)
        with self.reg.db.read() as conn:
            repo = accounts.get_repository(conn, parsed.workspace, parsed.repository)
            return content.find_image(conn, repo, parsed.image)

    def blob_row(self, digest: str, workspace: str = "acme") -> content.Blob | None:
        with self.reg.db.read() as conn:
            return content.workspace_blob(conn, accounts.workspace_id(conn, workspace), digest)

    def has_object(self, blob: content.Blob) -> bool:
        return self.reg.store.exists(blob.workspace_id, blob.digest, blob.generation)

    def manifest_ids(self, name: str) -> dict[str, int]:
        image = self.find_image(name)
        if image is None:
            return {}
        with self.reg.db.read() as conn:
            rows = conn.execute(
                select(s.manifests.c.digest, s.manifests.c.id).where(
                    s.manifests.c.image_id == image.id
                )
            )
            return {r.digest: r.id for r in rows}

    def count(self, table: Table) -> int:
        with self.reg.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)

    def queued(self) -> tuple[dict[int, int], dict[int, int]]:
        """(manifest id -> review_after, blob id -> review_after)."""
        with self.reg.db.read() as conn:
            m = conn.execute(
                select(s.gc_manifest_reviews.c.manifest_id, s.gc_manifest_reviews.c.review_after)
            )
            b = conn.execute(select(s.gc_blob_reviews.c.blob_id, s.gc_blob_reviews.c.review_after))
            return {r[0]: r[1] for r in m}, {r[0]: r[1] for r in b}

    # writes, as the HTTP handlers make them ----------------------------------
    def upload(self, name: str, blob: oci.Blob) -> content.Blob:
        """A finished upload as the blob store makes it: the bytes renamed into place
        under a new generation, then the row."""
        generation, session = new_generation(), str(uuid.uuid4())
        self.reg.store.create_upload(session).write_bytes(blob.data)
        with self.reg.db.write() as conn:
            image = self.image(conn, name)
            self.reg.store.commit_upload(session, image.workspace_id, blob.digest, generation)
            row, kept = content.finish_upload(
                conn, image, blob.digest, blob.size, generation, self.reg.timing, self.now
            )
        if not kept:
            self.reg.store.delete_object(row.workspace_id, blob.digest, generation)
        return row

    def head(self, name: str, digest: str) -> bool:
        """A blob HEAD: touches the blob if the image may see it."""
        with self.reg.db.write() as conn:
            image = self.image(conn, name)
            blob = content.image_blob(conn, image, digest, lock=True)
            if blob is None:
                return False
            content.touch_blob(conn, blob.id, self.now)
            return True

    def put_manifest(self, name: str, img: oci.Image, tag: str | None = None) -> None:
        payload = img.manifest.data
        manifest = parse_manifest(payload, img.manifest.media_type)

        def read_config(blob: content.Blob) -> bytes | None:
            path = self.reg.store.object_path(blob.workspace_id, blob.digest, blob.generation)
            return path.read_bytes() if path.exists() else None

        with self.reg.db.write() as conn:
            content.put_manifest(
                conn,
                self.image(conn, name),
                img.digest,
                payload,
                manifest,
                tag,
                read_config,
                self.reg.timing,
                self.now,
            )

    def push(self, name: str, img: oci.Image, tag: str | None = None) -> None:
        """Children first, then blobs, then the manifest (by tag, or by digest)."""
        for child in img.children:
            self.push(name, child)
        for blob in img.blobs:
            if not self.head(name, blob.digest):
                self.upload(name, blob)
        self.put_manifest(name, img, tag)

    def get_manifest(self, name: str, reference: str) -> None:
        """A manifest GET/HEAD: touches the manifest."""
        with self.reg.db.write() as conn:
            image = self.image(conn, name)
            m = content.get_manifest(conn, image, reference, by_digest=":" in reference)
            content.touch_manifest(conn, m.id, self.now)

    def delete_tag(self, name: str, tag: str) -> None:
        with self.reg.db.write() as conn:
            deleted, _missing, _change = content.delete_tags(
                conn, self.image(conn, name), [tag], self.reg.timing, self.now, "tests"
            )
        assert deleted == [tag]

    def delete_manifest(self, name: str, digest: str) -> None:
        with self.reg.db.write() as conn:
            content.delete_manifest(
                conn, self.image(conn, name), digest, self.reg.timing, self.now, "tests"
            )

    def delete_image(self, name: str) -> None:
        with self.reg.db.write() as conn:
            content.delete_image(conn, self.image(conn, name), self.reg.timing, self.now, "tests")

    # the trash -----------------------------------------------------------------
    def trash_entries(self) -> list[trash.Entry]:
        with self.reg.db.read() as conn:
            ids = conn.execute(select(s.trash_entries.c.id)).scalars().all()
            return trash.entries_by_id(conn, ids)

    def restore(self, entry_id: int, as_name: str | None = None) -> trash.Outcome:
        (outcome,) = trash.restore(
            self.reg, [trash.Restoring(entry_id, as_name)], "tests", now=self.now
        )
        return outcome

    def empty(self, entry_ids: list[int]) -> list[int]:
        return trash.empty(self.reg, entry_ids, "tests", now=self.now)

    def expire(self) -> int:
        return trash.expire_due(self.reg, clock=self.clock)

    # the GC ------------------------------------------------------------------
    def gc(self, workspace: str = "acme", *, ignore_delay: bool = False) -> gc.Tally:
        return gc.review_workspace(
            self.reg, self.workspace_id(workspace), ignore_delay=ignore_delay, clock=self.clock
        )
