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
* the derived usage counters, kept incrementally, equal a full walk from every
  image's roots, for both kinds of holder (app.registry.gc.usage): tags
  (``manifests.holders``, ``blob_usage``, ``blobs.image_refs``) and the trash
  (``manifests.trash_holders``, ``trash_usage``, ``blobs.trash_refs``), and
  ``images.tag_count`` (``--repair`` rewrites them); trash entries name manifests of
  their own image, no tag is on a manifest deleted by digest, and every image in
  the trash has its entry;
* garbage is queued: every blob no manifest references and every manifest nothing
  keeps has a GC review queued, or it would never be collected (``--repair`` queues
  it);
* every upload's data belongs to an open upload session (else an orphan: its
  session was cancelled, expired or deleted with its image while the data stayed):
  on the filesystem its file, on object storage its multipart upload and staged
  bytes; ``--repair`` removes those older than ``orphan_min_age_ms``.

Safe to run against a live registry: objects are listed before rows are read, and
anything that looks wrong is re-checked before it is reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, delete, exists, func, insert, or_, select, update

from app.core.digests import Digest, DigestError
from app.core.manifests import ManifestError, parse_manifest
from app.registry import uploads
from app.registry.blobstore import PAGE, FileBlobStore, StoredObject, StoreUnavailable, Stray
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.gc import reviews, usage
from app.registry.service import Registry

ORPHAN_MIN_AGE_MS = 15 * 60 * 1000
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


def _rows_of(conn: Connection, objects: list[StoredObject]) -> dict[tuple[int, str], _Row]:
    """The blob rows of a page of objects, by (workspace, generation)."""
    b = s.blobs.c
    found: dict[tuple[int, str], _Row] = {}
    generations = sorted({o.generation for o in objects})
    for start in range(0, len(generations), 500):
        for r in conn.execute(
            select(b.id, b.workspace_id, b.digest, b.generation, b.size).where(
                b.generation.in_(generations[start : start + 500])
            )
        ):
            found[(int(r.workspace_id), str(r.generation))] = _Row(
                int(r.id), str(r.digest), int(r.size)
            )
    return found


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    digest: str
    size: int


def _check_store(
    reg: Registry,
    report: Report,
    *,
    repair: bool,
    verify_content: bool,
    orphan_min_age_ms: int,
    now: int,
) -> None:
    """Compare the store with the blob rows a page of objects at a time (object
    storage lists a thousand keys per request), then look for rows whose object
    was not listed."""
    # Objects first, rows second: an upload stores its object before its row
    # commits, so this order never sees a row without its object by that race.
    listed: set[tuple[int, str]] = set()
    for page in reg.store.object_pages():
        objects = [o for o in page if isinstance(o, StoredObject)]
        for stray in (o for o in page if isinstance(o, Stray)):
            report.add("stray", f"unexpected entry {stray.where}")
        report.objects += len(objects)
        with reg.db.read() as conn:
            rows = _rows_of(conn, objects)
        for obj in objects:
            key = (obj.workspace_id, obj.generation)
            listed.add(key)
            row = rows.get(key)
            if row is None or (obj.digest is not None and obj.digest != row.digest):
                _orphan(reg, report, obj, repair=repair, min_age_ms=orphan_min_age_ms, now=now)
                continue
            if obj.size != row.size:
                report.add(
                    "corrupt",
                    f"object {obj.path} has {obj.size} bytes, its blob row says {row.size}",
                )
            elif verify_content:
                algorithm, hexpart = row.digest.split(":", 1)
                got = reg.store.hash_object(obj.workspace_id, row.digest, obj.generation, algorithm)
                if got is not None and got != hexpart:
                    report.add("corrupt", f"object {obj.path} hashes to {algorithm}:{got}")

    b = s.blobs.c
    missing: list[tuple[int, str, str]] = []
    last = 0
    while True:
        with reg.db.read() as conn:
            batch = conn.execute(
                select(b.id, b.workspace_id, b.digest, b.generation)
                .where(b.id > last)
                .order_by(b.id)
                .limit(PAGE)
            ).all()
        if not batch:
            break
        last = int(batch[-1].id)
        report.blobs += len(batch)
        missing += [
            (int(r.workspace_id), str(r.digest), str(r.generation))
            for r in batch
            if (int(r.workspace_id), str(r.generation)) not in listed
        ]
    if missing:
        # Re-check each: an upload may have committed, or the GC deleted, meanwhile.
        with reg.db.read() as conn:
            for ws, digest, generation in sorted(missing):
                if reg.store.exists(ws, digest, generation):
                    continue
                still = conn.execute(
                    select(b.id).where(
                        b.workspace_id == ws, b.digest == digest, b.generation == generation
                    )
                ).first()
                if still is not None:
                    report.add(
                        "missing",
                        f"blob {digest} of workspace {ws} (generation {generation}) "
                        "has no stored object",
                    )


def _orphan(
    reg: Registry, report: Report, obj: StoredObject, *, repair: bool, min_age_ms: int, now: int
) -> None:
    age = now - obj.changed_ms
    if age < min_age_ms:
        report.notes.append(
            f"young orphan {obj.path} ({obj.size} bytes, {age // 1000} s old): "
            "left alone, it may be an upload committing now"
        )
        return
    problem = report.add("orphan", f"object {obj.path} ({obj.size} bytes) has no blob row")
    if repair:
        problem.repaired = reg.store.remove_orphan(obj)


# references --------------------------------------------------------------------


def _dangling(conn: Connection, report: Report) -> None:
    m, b, i, t, te = s.manifests, s.blobs, s.images, s.tags, s.trash_entries
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
            "trash entry naming a manifest of another image",
            lambda: [
                f"entry {r.id} (image {r.image_id}) -> manifest {r.manifest_id}"
                for r in conn.execute(
                    select(te.c.id, te.c.image_id, te.c.manifest_id)
                    .join(m, m.c.id == te.c.manifest_id)
                    .where(m.c.image_id != te.c.image_id)
                )
            ],
        ),
        (
            "tag on a manifest deleted by digest",
            lambda: [
                f"tag {r.name} (image {r.image_id}) -> manifest {r.manifest_id}"
                for r in conn.execute(
                    select(t.c.name, t.c.image_id, t.c.manifest_id)
                    .join(m, m.c.id == t.c.manifest_id)
                    .where(m.c.trashed_at.is_not(None))
                )
            ],
        ),
        (
            "image in the trash without its entry",
            lambda: [
                f"image {r.id}"
                for r in conn.execute(
                    select(i.c.id).where(
                        i.c.trashed_at.is_not(None),
                        ~exists().where(and_(te.c.image_id == i.c.id, te.c.kind == "image")),
                    )
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


@dataclass(slots=True)
class _Drift:
    """Where the incrementally kept counters of one kind differ from a full walk."""

    kind: usage.Kind
    holders: dict[int, tuple[int, int]] = field(default_factory=dict)  # manifest: (kept, true)
    images: dict[int, tuple[dict[int, int], dict[int, int]]] = field(default_factory=dict)
    blobs: dict[int, tuple[int, int]] = field(default_factory=dict)  # images (kept, true)


def _usage_drift(conn: Connection, kind: usage.Kind) -> _Drift:
    """Every image's counters of a kind against a full walk from its roots
    (usage.expected): tags, or the trash's entries and trashed images' tags."""
    drift = _Drift(kind)
    kept_refs: dict[int, dict[int, int]] = defaultdict(dict)
    u = kind.usage.c
    for blob_id, image_id, refs in conn.execute(select(u.blob_id, u.image_id, u.refs)):
        kept_refs[image_id][blob_id] = int(refs)
    kept_holders: dict[int, dict[int, int]] = defaultdict(dict)
    m = s.manifests.c
    for mid, image_id, held in conn.execute(select(m.id, m.image_id, kind.holders)):
        kept_holders[image_id][mid] = int(held)
    images_per_blob: dict[int, int] = defaultdict(int)
    for image_id in sorted(set(kept_holders) | set(kept_refs)):
        want = usage.expected(conn, image_id, kind)
        for mid, true in want.holders.items():
            kept = kept_holders[image_id].get(mid, 0)
            if kept != true:
                drift.holders[mid] = (kept, true)
        have = kept_refs.get(image_id, {})
        if have != want.refs:
            drift.images[image_id] = (want.refs, have)
        for blob_id in want.refs:
            images_per_blob[blob_id] += 1
    for blob_id, recorded in conn.execute(select(s.blobs.c.id, kind.images)):
        true = images_per_blob.get(blob_id, 0)
        if int(recorded) != true:
            drift.blobs[blob_id] = (int(recorded), true)
    return drift


def _tag_count_drift(conn: Connection) -> dict[int, tuple[int, int]]:
    """image: (kept tag_count, true)."""
    drift: dict[int, tuple[int, int]] = {}
    tags: dict[int, int] = dict(
        conn.execute(select(s.tags.c.image_id, func.count()).group_by(s.tags.c.image_id)).all()
    )
    for image_id, recorded in conn.execute(select(s.images.c.id, s.images.c.tag_count)):
        true = int(tags.get(image_id, 0))
        if int(recorded) != true:
            drift[image_id] = (int(recorded), true)
    return drift


def _repair_usage(conn: Connection) -> None:
    m = s.manifests.c
    for kind in usage.KINDS:
        drift = _usage_drift(conn, kind)
        for mid, (_kept, true) in sorted(drift.holders.items()):
            conn.execute(update(s.manifests).where(m.id == mid).values({kind.holders: true}))
        for image_id, (want, _have) in sorted(drift.images.items()):
            conn.execute(delete(kind.usage).where(kind.usage.c.image_id == image_id))
            if want:
                conn.execute(
                    insert(kind.usage),
                    [
                        {"blob_id": b, "image_id": image_id, "refs": n}
                        for b, n in sorted(want.items())
                    ],
                )
        for blob_id, (_recorded, true) in sorted(drift.blobs.items()):
            conn.execute(update(s.blobs).where(s.blobs.c.id == blob_id).values({kind.images: true}))
    for image_id, (_recorded, true) in sorted(_tag_count_drift(conn).items()):
        conn.execute(update(s.images).where(s.images.c.id == image_id).values(tag_count=true))


def _check_usage(reg: Registry, report: Report, *, repair: bool) -> None:
    with reg.db.read() as conn:
        drifts = [_usage_drift(conn, kind) for kind in usage.KINDS]
        tag_counts = _tag_count_drift(conn)
    found: list[Problem] = []
    for drift in drifts:
        kind = drift.kind
        holders = kind.holders.name
        for mid, (kept, true) in sorted(drift.holders.items()):
            found.append(
                report.add("usage", f"manifest {mid} {holders} is {kept}, should be {true}")
            )
        for image_id, (want, have) in sorted(drift.images.items()):
            wrong = sum(1 for b in set(want) & set(have) if want[b] != have[b])
            found.append(
                report.add(
                    "usage",
                    f"image {image_id} reaches {len(want)} blobs from its {kind.name} roots, "
                    f"{kind.usage.name} holds {len(have)} ({len(set(want) - set(have))} "
                    f"missing, {len(set(have) - set(want))} extra, {wrong} with wrong counts)",
                )
            )
        for blob_id, (recorded, true) in sorted(drift.blobs.items()):
            found.append(
                report.add(
                    "usage", f"blob {blob_id} {kind.images.name} is {recorded}, should be {true}"
                )
            )
    for image_id, (recorded, true) in sorted(tag_counts.items()):
        found.append(
            report.add("usage", f"image {image_id} tag_count is {recorded}, it has {true} tags")
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
    # What the GC keeps (gc_review.manifests_in_use): tags, the trash (its entries, and
    # what they reach: trash_holders, checked above), parent rows, and -- unless it
    # was deleted by digest -- a stored subject.
    for ws, manifest_id in conn.execute(
        select(m.c.workspace_id, m.c.id).where(
            ~exists().where(s.tags.c.manifest_id == m.c.id),
            ~exists().where(s.trash_entries.c.manifest_id == m.c.id),
            m.c.trash_holders == 0,
            ~exists().where(s.manifest_children.c.child_id == m.c.id),
            or_(
                m.c.trashed_at.is_not(None),
                ~exists().where(
                    and_(
                        subject.c.image_id == m.c.image_id,
                        subject.c.digest == m.c.subject_digest,
                    )
                ),
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


# uploads ---------------------------------------------------------------------------


def _check_uploads(
    reg: Registry,
    store: FileBlobStore,
    report: Report,
    *,
    repair: bool,
    orphan_min_age_ms: int,
    now: int,
) -> None:
    """Upload files no session owns (object storage: _check_s3_uploads)."""
    files = store.upload_files()  # files first: see uploads.orphans
    with reg.db.read() as conn:
        found = uploads.orphans(conn, files, now, 0)
    for orphan in found:
        path = store.upload_path(orphan.session_id)
        if orphan.age_ms < orphan_min_age_ms:
            report.notes.append(
                f"young orphan upload {path} ({orphan.size} bytes, {orphan.age_ms // 1000} s "
                "old): left alone"
            )
            continue
        problem = report.add(
            "orphan", f"upload data {path} ({orphan.size} bytes) has no upload session"
        )
        if repair:
            store.discard_upload(orphan.session_id)
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
    if isinstance(reg.store, FileBlobStore):
        _check_uploads(
            reg, reg.store, report, repair=repair, orphan_min_age_ms=orphan_min_age_ms, now=now
        )
    else:
        _check_s3_uploads(reg, report, repair=repair, min_age_ms=orphan_min_age_ms, now=now)
    with reg.db.read() as conn:
        _dangling(conn, report)
        _payloads(conn, report)
    _check_usage(reg, report, repair=repair)
    _check_queues(reg, report, repair=repair, now=now)
    return report


def _check_s3_uploads(
    reg: Registry, report: Report, *, repair: bool, min_age_ms: int, now: int
) -> None:
    """Object storage: multipart uploads and staged bytes no upload session holds
    (a node killed between its S3 call and its row). Housekeeping aborts them once
    they are older than the upload TTL; ``--repair`` does at the orphan age."""
    from app.registry import s3_uploads

    for kind, what, forget in s3_uploads.unheld(reg, before=now - min_age_ms):
        problem = report.add("orphan", f"{kind} {what} belongs to no upload session")
        if repair:
            try:
                forget()
                problem.repaired = True
            except StoreUnavailable:
                pass
