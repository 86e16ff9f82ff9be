"""``fsck``: check the metadata store and the blob store against each other.

Checks, in order:

* every stored object has a blob row (else an *orphan*: leaked by a crash between
  the GC's commit and its delete, or between an upload's rename and its commit);
  ``--repair`` removes orphans older than ``orphan_min_age_ms`` (younger ones may
  be an upload committing right now, so they are only listed);
* every blob row has its object, of the recorded size (with ``verify_content``,
  whose bytes also hash to its digest);
* every reference resolves inside its workspace and image: tags, index children,
  layers, configs, image links, and each manifest's payload (it hashes to its
  digest and every descriptor in it has its row);
* the derived usage graph (``blob_usage``, ``blobs.image_refs``) equals a
  recomputation (``--repair`` rewrites it);
* garbage is queued: every blob no manifest references and every manifest nothing
  keeps has a GC review queued, or it would never be collected (``--repair`` queues
  it).

Safe to run against a live registry: objects are listed before rows are read, and
anything that looks wrong is re-checked before it is reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, and_, delete, exists, insert, select, update

from app.core.digests import Digest, DigestError, new_hasher
from app.core.manifests import ManifestError, parse_manifest
from app.registry import reviews, usage
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.service import Registry

ORPHAN_MIN_AGE_MS = 15 * 60 * 1000
HASH_CHUNK = 1 << 20
# The event recorded on reviews fsck queues for garbage nothing had queued.
FSCK_EVENT = "fsck"

EXIT_CLEAN = 0
EXIT_REPAIRED = 1
EXIT_PROBLEMS = 4


@dataclass(slots=True)
class Problem:
    kind: str
    message: str
    repaired: bool = False

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}" + (" (repaired)" if self.repaired else "")


@dataclass(slots=True)
class Report:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    objects: int = 0
    blobs: int = 0
    manifests: int = 0

    @property
    def clean(self) -> bool:
        return not self.problems

    @property
    def unrepaired(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    def of_kind(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    @property
    def exit_code(self) -> int:
        if self.clean:
            return EXIT_CLEAN
        return EXIT_PROBLEMS if self.unrepaired else EXIT_REPAIRED

    def lines(self) -> list[str]:
        """What the command prints: problems, notes, then a summary."""
        out = [str(p) for p in self.problems] + [f"note: {n}" for n in self.notes]
        checked = (
            f"{self.objects} objects, {self.blobs} blob rows, {self.manifests} manifests checked"
        )
        if self.clean:
            out.append(f"fsck: clean ({checked})")
        else:
            repaired = len(self.problems) - len(self.unrepaired)
            out.append(
                f"fsck: {len(self.problems)} problems, {repaired} repaired, "
                f"{len(self.unrepaired)} left ({checked})"
            )
        return out

    def add(self, kind: str, message: str) -> Problem:
        problem = Problem(kind, message)
        self.problems.append(problem)
        return problem


# the blob store ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Object:
    workspace_id: int
    digest: str
    generation: str
    path: Path
    size: int
    changed_ms: int  # latest of mtime and ctime: a rename into place sets ctime


def _walk_objects(root: Path, report: Report) -> Iterator[_Object]:
    """Every object under ``blobs/<ws>/<alg>/<hh>/<hex>/<generation>``; anything
    else there is reported as a stray entry."""
    if not root.is_dir():
        return
    for ws_dir in sorted(root.iterdir()):
        if not (ws_dir.is_dir() and ws_dir.name.isdigit()):
            report.add("stray", f"unexpected entry {ws_dir}")
            continue
        for alg_dir in sorted(ws_dir.iterdir()):
            for prefix in sorted(alg_dir.iterdir()) if alg_dir.is_dir() else [alg_dir]:
                for hex_dir in sorted(prefix.iterdir()) if prefix.is_dir() else [prefix]:
                    digest = f"{alg_dir.name}:{hex_dir.name}"
                    try:
                        valid = hex_dir.is_dir() and Digest.parse(digest).hex[:2] == prefix.name
                    except DigestError:
                        valid = False
                    if not valid:
                        report.add("stray", f"unexpected entry {hex_dir}")
                        continue
                    for gen in sorted(hex_dir.iterdir()):
                        try:
                            st = gen.stat()
                        except FileNotFoundError:
                            continue  # removed meanwhile (the GC)
                        if not gen.is_file():
                            report.add("stray", f"unexpected entry {gen}")
                            continue
                        changed = int(max(st.st_mtime, st.st_ctime) * 1000)
                        yield _Object(int(ws_dir.name), digest, gen.name, gen, st.st_size, changed)


def _hash_file(path: Path, algorithm: str) -> str | None:
    hasher = new_hasher(algorithm)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                hasher.update(chunk)
    except FileNotFoundError:
        return None
    return hasher.hexdigest()


def _remove_orphan(obj: _Object) -> bool:
    try:
        obj.path.unlink()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for parent in (obj.path.parent, obj.path.parent.parent):
        try:
            parent.rmdir()
        except OSError:
            break
    return True


def _check_store(
    reg: Registry,
    report: Report,
    *,
    repair: bool,
    verify_content: bool,
    orphan_min_age_ms: int,
    now: int,
) -> None:
    # Objects first, rows second: an upload renames its object into place before its
    # row commits, so this order never sees a row without its object by that race.
    objects = list(_walk_objects(reg.store.objects, report))
    report.objects = len(objects)
    with reg.db.read() as conn:
        rows = {
            (r.workspace_id, r.digest, r.generation): (r.id, int(r.size))
            for r in conn.execute(
                select(
                    s.blobs.c.id,
                    s.blobs.c.workspace_id,
                    s.blobs.c.digest,
                    s.blobs.c.generation,
                    s.blobs.c.size,
                )
            )
        }
    report.blobs = len(rows)
    on_disk = {(o.workspace_id, o.digest, o.generation): o for o in objects}

    for key, obj in sorted(on_disk.items()):
        row = rows.get(key)
        if row is None:
            age = now - obj.changed_ms
            if age < orphan_min_age_ms:
                report.notes.append(
                    f"young orphan {obj.path} ({obj.size} bytes, {age // 1000} s old): "
                    "left alone, it may be an upload committing now"
                )
                continue
            problem = report.add("orphan", f"object {obj.path} ({obj.size} bytes) has no blob row")
            if repair:
                problem.repaired = _remove_orphan(obj)
            continue
        _blob_id, size = row
        if obj.size != size:
            report.add(
                "corrupt",
                f"object {obj.path} has {obj.size} bytes, its blob row says {size}",
            )
        elif verify_content:
            algorithm, hexpart = obj.digest.split(":", 1)
            got = _hash_file(obj.path, algorithm)
            if got is not None and got != hexpart:
                report.add("corrupt", f"object {obj.path} hashes to {algorithm}:{got}")

    missing = [key for key in rows if key not in on_disk]
    if missing:
        # Re-check each: an upload may have committed, or the GC deleted, meanwhile.
        with reg.db.read() as conn:
            for ws, digest, generation in sorted(missing):
                if reg.store.exists(ws, digest, generation):
                    continue
                still = conn.execute(
                    select(s.blobs.c.id).where(
                        s.blobs.c.workspace_id == ws,
                        s.blobs.c.digest == digest,
                        s.blobs.c.generation == generation,
                    )
                ).first()
                if still is not None:
                    report.add(
                        "missing",
                        f"blob {digest} of workspace {ws} (generation {generation}) "
                        "has no stored object",
                    )


# references --------------------------------------------------------------------


def _dangling(conn: Connection, report: Report) -> None:
    m, b, i, t = s.manifests, s.blobs, s.images, s.tags
    child = s.manifests.alias("child")
    checks: list[tuple[str, Callable[[], list[str]]]] = [
        (
            "tag on a manifest of another image",
            lambda: [
                f"tag {r.name} (image {r.image_id}) -> manifest {r.manifest_id}"
                for r in conn.execute(
                    select(t.c.name, t.c.image_id, t.c.manifest_id)
                    .outerjoin(m, m.c.id == t.c.manifest_id)
                    .where((m.c.id.is_(None)) | (m.c.image_id != t.c.image_id))
                )
            ],
        ),
        (
            "manifest outside its image's workspace",
            lambda: [
                f"manifest {r.digest} (id {r.id})"
                for r in conn.execute(
                    select(m.c.id, m.c.digest)
                    .outerjoin(i, i.c.id == m.c.image_id)
                    .where((i.c.id.is_(None)) | (i.c.workspace_id != m.c.workspace_id))
                )
            ],
        ),
        (
            "layer not in the manifest's workspace",
            lambda: [
                f"manifest {r.digest} layer {r.position} -> blob {r.blob_id}"
                for r in conn.execute(
                    select(m.c.digest, s.manifest_layers.c.position, s.manifest_layers.c.blob_id)
                    .select_from(s.manifest_layers)
                    .join(m, m.c.id == s.manifest_layers.c.manifest_id)
                    .outerjoin(b, b.c.id == s.manifest_layers.c.blob_id)
                    .where((b.c.id.is_(None)) | (b.c.workspace_id != m.c.workspace_id))
                )
            ],
        ),
        (
            "config not in the manifest's workspace",
            lambda: [
                f"manifest {r.digest} -> config blob {r.config_blob_id}"
                for r in conn.execute(
                    select(m.c.digest, m.c.config_blob_id)
                    .outerjoin(b, b.c.id == m.c.config_blob_id)
                    .where(
                        m.c.config_blob_id.is_not(None),
                        (b.c.id.is_(None)) | (b.c.workspace_id != m.c.workspace_id),
                    )
                )
            ],
        ),
        (
            "index child not in the index's image",
            lambda: [
                f"index {r.digest} -> manifest {r.child_id}"
                for r in conn.execute(
                    select(m.c.digest, s.manifest_children.c.child_id)
                    .select_from(s.manifest_children)
                    .join(m, m.c.id == s.manifest_children.c.parent_id)
                    .outerjoin(child, child.c.id == s.manifest_children.c.child_id)
                    .where((child.c.id.is_(None)) | (child.c.image_id != m.c.image_id))
                )
            ],
        ),
        (
            "image linked to a blob of another workspace",
            lambda: [
                f"image {r.image_id} -> blob {r.blob_id}"
                for r in conn.execute(
                    select(s.image_blobs.c.image_id, s.image_blobs.c.blob_id)
                    .join(i, i.c.id == s.image_blobs.c.image_id)
                    .outerjoin(b, b.c.id == s.image_blobs.c.blob_id)
                    .where((b.c.id.is_(None)) | (b.c.workspace_id != i.c.workspace_id))
                )
            ],
        ),
    ]
    for title, run in checks:
        for item in run():
            report.add("dangling", f"{title}: {item}")


def _payloads(conn: Connection, report: Report) -> None:
    """Each manifest's bytes hash to its digest, and every descriptor in them has
    its row (the rows are what keep content alive)."""
    layer_digests: dict[int, set[str]] = defaultdict(set)
    for mid, digest in conn.execute(
        select(s.manifest_layers.c.manifest_id, s.blobs.c.digest).join(
            s.blobs, s.blobs.c.id == s.manifest_layers.c.blob_id
        )
    ):
        layer_digests[mid].add(digest)
    child_digests: dict[int, set[str]] = defaultdict(set)
    child = s.manifests.alias("child")
    for pid, digest in conn.execute(
        select(s.manifest_children.c.parent_id, child.c.digest).join(
            child, child.c.id == s.manifest_children.c.child_id
        )
    ):
        child_digests[pid].add(digest)
    config_of = s.blobs.alias("config")
    q = select(
        s.manifests.c.id,
        s.manifests.c.digest,
        s.manifests.c.media_type,
        s.manifests.c.payload,
        config_of.c.digest.label("config_digest"),
    ).outerjoin(config_of, config_of.c.id == s.manifests.c.config_blob_id)
    count = 0
    for row in conn.execute(q):
        count += 1
        payload = bytes(row.payload)
        try:
            declared = Digest.parse(row.digest)
            if str(Digest.of(payload, declared.algorithm)) != row.digest:
                report.add("corrupt", f"manifest {row.digest} (id {row.id}) payload digest differs")
                continue
            manifest = parse_manifest(payload, row.media_type)
        except (DigestError, ManifestError) as exc:
            report.add("corrupt", f"manifest {row.digest} (id {row.id}): {exc}")
            continue
        needed_layers = {str(d.digest) for d in manifest.layers if not d.non_distributable}
        lost = needed_layers - layer_digests.get(row.id, set())
        config = manifest.config
        if config is not None and row.config_digest != str(config.digest):
            lost.add(str(config.digest))
        lost |= {str(d.digest) for d in manifest.manifests} - child_digests.get(row.id, set())
        for digest in sorted(lost):
            report.add(
                "dangling", f"manifest {row.digest} (id {row.id}) refers to {digest}, not stored"
            )
    report.manifests = count


# derived usage ------------------------------------------------------------------


def _usage_drift(
    conn: Connection,
) -> tuple[dict[int, tuple[set[int], set[int]]], dict[int, tuple[int, int]]]:
    """(per image: (wanted, held) blob sets that differ; per blob: (recorded, true)
    image_refs that differ)."""
    held: dict[int, set[int]] = defaultdict(set)
    for blob_id, image_id in conn.execute(select(s.blob_usage.c.blob_id, s.blob_usage.c.image_id)):
        held[image_id].add(blob_id)
    tagged = set(conn.execute(select(s.tags.c.image_id).distinct()).scalars())
    images: dict[int, tuple[set[int], set[int]]] = {}
    refs: dict[int, int] = defaultdict(int)
    for image_id in sorted(tagged | set(held)):
        want = usage.reachable_blob_ids(conn, image_id) if image_id in tagged else set()
        for blob_id in want:
            refs[blob_id] += 1
        have = held.get(image_id, set())
        if want != have:
            images[image_id] = (want, have)
    blobs: dict[int, tuple[int, int]] = {}
    for blob_id, recorded in conn.execute(select(s.blobs.c.id, s.blobs.c.image_refs)):
        true = refs.get(blob_id, 0)
        if int(recorded) != true:
            blobs[blob_id] = (int(recorded), true)
    return images, blobs


def _repair_usage(conn: Connection) -> None:
    images, blobs = _usage_drift(conn)
    for image_id, (want, _have) in sorted(images.items()):
        conn.execute(delete(s.blob_usage).where(s.blob_usage.c.image_id == image_id))
        if want:
            conn.execute(
                insert(s.blob_usage),
                [{"blob_id": b, "image_id": image_id} for b in sorted(want)],
            )
    for blob_id, (_recorded, true) in sorted(blobs.items()):
        conn.execute(update(s.blobs).where(s.blobs.c.id == blob_id).values(image_refs=true))


def _check_usage(reg: Registry, report: Report, *, repair: bool) -> None:
    with reg.db.read() as conn:
        images, blobs = _usage_drift(conn)
    found: list[Problem] = []
    for image_id, (want, have) in sorted(images.items()):
        found.append(
            report.add(
                "usage",
                f"image {image_id} reaches {len(want)} blobs from its tags, "
                f"blob_usage holds {len(have)} ({len(want - have)} missing, "
                f"{len(have - want)} extra)",
            )
        )
    for blob_id, (recorded, true) in sorted(blobs.items()):
        found.append(
            report.add("usage", f"blob {blob_id} image_refs is {recorded}, should be {true}")
        )
    if found and repair:
        with reg.db.write() as conn:
            _repair_usage(conn)
        for problem in found:
            problem.repaired = True


# garbage nobody queued ------------------------------------------------------------


def _unqueued(conn: Connection) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """(workspace -> unreferenced blobs with no review queued, workspace -> manifests
    nothing keeps with no review queued)."""
    b, m = s.blobs, s.manifests
    blobs: dict[int, list[int]] = defaultdict(list)
    for ws, blob_id in conn.execute(
        select(b.c.workspace_id, b.c.id).where(
            ~exists().where(s.manifest_layers.c.blob_id == b.c.id),
            ~exists().where(m.c.config_blob_id == b.c.id),
            ~exists().where(s.gc_blob_reviews.c.blob_id == b.c.id),
        )
    ):
        blobs[ws].append(blob_id)
    subject = s.manifests.alias("subject")
    manifests: dict[int, list[int]] = defaultdict(list)
    for ws, manifest_id in conn.execute(
        select(m.c.workspace_id, m.c.id).where(
            ~exists().where(s.tags.c.manifest_id == m.c.id),
            ~exists().where(s.manifest_children.c.child_id == m.c.id),
            ~exists().where(
                and_(subject.c.image_id == m.c.image_id, subject.c.digest == m.c.subject_digest)
            ),
            ~exists().where(s.gc_manifest_reviews.c.manifest_id == m.c.id),
        )
    ):
        manifests[ws].append(manifest_id)
    return blobs, manifests


def _check_queues(reg: Registry, report: Report, *, repair: bool, now: int) -> None:
    with reg.db.read() as conn:
        blobs, manifests = _unqueued(conn)
    found: list[Problem] = []
    for ws, ids in sorted(blobs.items()):
        for blob_id in ids:
            found.append(
                report.add(
                    "unqueued",
                    f"blob {blob_id} of workspace {ws} is unreferenced but no GC review is queued",
                )
            )
    for ws, ids in sorted(manifests.items()):
        for manifest_id in ids:
            found.append(
                report.add(
                    "unqueued",
                    f"manifest {manifest_id} of workspace {ws} is kept by nothing but no "
                    "GC review is queued",
                )
            )
    if found and repair:
        with reg.db.write() as conn:
            # Recomputed under the write lock; the review itself re-checks everything.
            blobs, manifests = _unqueued(conn)
            for ws, ids in blobs.items():
                reviews.queue_blobs(conn, ws, ids, now, FSCK_EVENT)
            for ws, ids in manifests.items():
                reviews.queue_manifests(conn, ws, ids, now, FSCK_EVENT)
        for problem in found:
            problem.repaired = True


def check(
    reg: Registry,
    *,
    repair: bool = False,
    verify_content: bool = False,
    orphan_min_age_ms: int = ORPHAN_MIN_AGE_MS,
    clock: Callable[[], int] = now_ms,
) -> Report:
    report = Report()
    now = clock()
    _check_store(
        reg,
        report,
        repair=repair,
        verify_content=verify_content,
        orphan_min_age_ms=orphan_min_age_ms,
        now=now,
    )
    with reg.db.read() as conn:
        _dangling(conn, report)
        _payloads(conn, report)
    _check_usage(reg, report, repair=repair)
    _check_queues(reg, report, repair=repair, now=now)
    return report
