"""Recently deleted: restoring what the trash holds, emptying it, and its expiry
(DESIGN.md §1). The entries are written by the deletes themselves
(app.registry.trash_records).

Restore puts a tag back on its old digest (a moved tag: rolls it back), a manifest
deleted by digest back under its digest, an image back whole under its old id. A
tag name taken since is refused with a message that says so; ``as_name`` restores
under another name instead. Expiry and "empty" turn what an entry held into
ordinary pending GC: the reviews a delete queues today, under the same race rules.

Race safety (DESIGN.md, race rules): every operation takes the image's turn first
(``content.lock_image``; the image row of a trashed image too), then locks its
entries (``FOR UPDATE``; expiry ``SKIP LOCKED``), then the manifest rows and tags it
changes, then blobs' counters in id order, then review queues. Restore, expiry,
empty, a push of the same tag and the GC therefore meet in one order:

* restore vs. expiry or empty, or a second restore: one of them locks the entry
  first; the other finds it gone and says so (``not_found``);
* restore vs. a push of the same tag: they take the image's turn one after the
  other; a restore after the push finds the name taken (refused, or a rollback
  when the push is the one that moved it), a push after the restore moves the tag
  and puts the restored digest in the trash again;
* restore vs. the GC: while an entry exists its manifest has ``trash_holders > 0``
  and the GC (which re-checks under the manifest's row lock, SKIP LOCKED) keeps it;
  once an entry has expired no restore can name it.

Several nodes: each node's GC worker expires due entries image by image, skipping
images and entries another node has locked (``SKIP LOCKED``); an entry's row is
deleted in the transaction that releases its holds, so it expires once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Select, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from app.core.names import InvalidName, validate_image_path, validate_tag
from app.registry import content, ended_uploads, trash_records
from app.registry.content import Change, Image, Timing
from app.registry.db import schema as s
from app.registry.db.engine import Busy, now_ms
from app.registry.gc import reviews, usage
from app.registry.service import Registry

log = logging.getLogger(__name__)

DEFAULT_RETENTION_S = trash_records.WEEK_S
SETTING_KEY = "trash_retention_ms"
# Entries one transaction expires or empties (of one image).
BATCH = 500

e = s.trash_entries.c


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    workspace_id: int
    repository_id: int
    image_id: int
    kind: str
    tag: str | None
    manifest_id: int | None
    digest: str | None
    replaced_by: str | None
    pushed_at: int | None
    size: int
    tag_count: int
    action: str
    deleted_by: str | None
    deleted_at: int
    expires_at: int


_ENTRY_COLS = (
    e.id,
    e.workspace_id,
    e.repository_id,
    e.image_id,
    e.kind,
    e.tag,
    e.manifest_id,
    e.digest,
    e.replaced_by,
    e.pushed_at,
    e.size,
    e.tag_count,
    e.action,
    e.deleted_by,
    e.deleted_at,
    e.expires_at,
)


def entries_by_id(conn: Connection, ids: Iterable[int], *, lock: bool = False) -> list[Entry]:
    q = select(*_ENTRY_COLS).where(e.id.in_(sorted(set(ids)))).order_by(e.id)
    if lock:
        q = q.with_for_update()
    return [Entry(**row._mapping) for row in conn.execute(q)]


# outcomes -------------------------------------------------------------------------

RESTORED = "restored"
CONFLICT = "conflict"
NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"
INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one entry asked to be restored."""

    entry_id: int
    status: str  # RESTORED | CONFLICT | NOT_FOUND | FORBIDDEN | INVALID
    message: str
    image_id: int | None = None
    tag: str | None = None  # the name a tag came back under
    digest: str | None = None


@dataclass(slots=True)
class Restoring:
    """One entry to restore and, if given, the name to restore it under."""

    entry_id: int
    as_name: str | None = None


@dataclass(slots=True)
class Done:
    outcomes: list[Outcome] = field(default_factory=list)
    changes: list[tuple[int, Change]] = field(default_factory=list)  # workspace, change


def _gone(entry_id: int) -> Outcome:
    return Outcome(
        entry_id,
        NOT_FOUND,
        "no longer in the trash: restored, expired or emptied meanwhile",
    )


# restore ----------------------------------------------------------------------------


def restore_entries(
    conn: Connection,
    image_id: int,
    wanted: Sequence[Restoring],
    timing: Timing,
    now: int,
    actor: str | None,
) -> tuple[list[Outcome], Change]:
    """Restore entries of one image in one transaction, each on its own (a refused
    one leaves the others be). The caller has checked the permissions."""
    change = Change()
    row = conn.execute(
        select(
            s.images.c.id, s.images.c.workspace_id, s.images.c.repository_id, s.images.c.name
        ).where(s.images.c.id == image_id)
    ).first()
    if row is None:
        return [_gone(w.entry_id) for w in wanted], change
    image = Image(*row)
    content.lock_image(conn, image, live=False)  # the image's turn first, as every writer
    locked = {x.id: x for x in entries_by_id(conn, [w.entry_id for w in wanted], lock=True)}
    outcomes = []
    for w in sorted(wanted, key=lambda w: w.entry_id):
        entry = locked.get(w.entry_id)
        if entry is None or entry.image_id != image_id:
            outcomes.append(_gone(w.entry_id))
            continue
        try:
            with conn.begin_nested():
                if entry.kind == trash_records.KIND_IMAGE:
                    outcome = _restore_image(conn, entry, w.as_name, now, actor, change)
                else:
                    outcome = _restore_tag(conn, entry, w.as_name, timing, now, actor, change)
                if outcome.status != RESTORED:
                    raise _Refused(outcome)
        except _Refused as refused:
            outcome = refused.outcome
        if outcome.status == RESTORED:
            del locked[w.entry_id]  # asked twice in one call: the second finds it gone
        outcomes.append(outcome)
    return outcomes, change


class _Refused(Exception):
    """Rolls back one entry's savepoint and carries its outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _live_image(conn: Connection, image_id: int) -> Image | None:
    return content.image_by_id(conn, image_id)


def _restore_tag(
    conn: Connection,
    entry: Entry,
    as_name: str | None,
    timing: Timing,
    now: int,
    actor: str | None,
    change: Change,
) -> Outcome:
    assert entry.manifest_id is not None
    assert entry.digest is not None
    image = _live_image(conn, entry.image_id)
    if image is None:
        return Outcome(
            entry.id,
            CONFLICT,
            "its image is in the trash itself; restore the image first",
            image_id=entry.image_id,
        )
    name = as_name if as_name is not None else entry.tag
    if name is not None:
        try:
            validate_tag(name)
        except InvalidName as exc:
            return Outcome(entry.id, INVALID, str(exc), image_id=image.id)
    label = content.image_label(conn, image)
    m = s.manifests.c
    conn.execute(select(m.id).where(m.id == entry.manifest_id).with_for_update()).first()
    counters = usage.BlobCounters()
    holds: dict[int, int] = defaultdict(int)
    displaced: trash_records.Deleted | None = None
    added_tag = False
    rolled_back = False
    if name is not None:
        t = s.tags.c
        current = conn.execute(
            select(t.id, t.manifest_id, t.pushed_at, t.manifest_size, m.digest)
            .join(s.manifests, m.id == t.manifest_id)
            .where(t.image_id == image.id, t.name == name)
            .with_for_update(of=s.tags)
        ).first()
        sort = conn.execute(select(m.total_size, m.created).where(m.id == entry.manifest_id)).one()
        pushed = entry.pushed_at if (as_name is None and entry.pushed_at is not None) else now
        if current is None:
            conn.execute(
                insert(s.tags).values(
                    image_id=image.id,
                    name=name,
                    manifest_id=entry.manifest_id,
                    pushed_at=pushed,
                    manifest_size=sort.total_size,
                    manifest_created=sort.created or "",
                )
            )
            holds[entry.manifest_id] += 1
            added_tag = True
        elif int(current.manifest_id) == entry.manifest_id:
            pass  # already back on that digest (pushed again with the same bytes)
        elif (
            as_name is None
            and entry.replaced_by is not None
            and current.digest == entry.replaced_by
        ):
            # The push that moved it is the last thing that happened to the tag:
            # restoring rolls it back, and the digest it leaves is restorable in turn.
            conn.execute(
                update(s.tags)
                .where(t.id == current.id)
                .values(
                    manifest_id=entry.manifest_id,
                    pushed_at=pushed,
                    last_pulled_at=None,
                    manifest_size=sort.total_size,
                    manifest_created=sort.created or "",
                )
            )
            holds[entry.manifest_id] += 1
            holds[int(current.manifest_id)] -= 1
            displaced = trash_records.Deleted(
                int(current.manifest_id),
                str(current.digest),
                int(current.manifest_size),
                name,
                pushed_at=int(current.pushed_at),
                replaced_by=entry.digest,
            )
            rolled_back = True
        else:
            return Outcome(
                entry.id,
                CONFLICT,
                f"tag {name} was pushed again since and is on {current.digest} now; "
                "restore it under another name",
                image_id=image.id,
                tag=name,
                digest=entry.digest,
            )
    # Shown again with everything below it that was deleted by digest, so it pulls
    # whole; then the tag's hold, then the trash lets go.
    usage.unhide(conn, usage.hidden_below(conn, [entry.manifest_id]), counters)
    usage.hold(conn, holds, counters=counters)
    usage.hold(conn, {entry.manifest_id: -1}, usage.TRASH, counters=counters)
    conn.execute(delete(s.trash_entries).where(e.id == entry.id))
    trash_events: list[dict[str, Any]] = []  # the rolled back digest's, after the restore's
    if displaced is not None and timing.trash_on:
        trash_records.record(
            conn,
            image.workspace_id,
            image.repository_id,
            image.id,
            [displaced],
            action=trash_records.ROLLBACK,
            actor=actor,
            now=now,
            retention_ms=timing.trash_retention,
            counters=counters,
            events=trash_events,
        )
    counters.flush(conn)
    if added_tag:
        conn.execute(
            update(s.images)
            .where(s.images.c.id == image.id)
            .values(tag_count=s.images.c.tag_count + 1)
        )
    if displaced is not None and not timing.trash_on:
        reviews.queue_manifests(
            conn,
            image.workspace_id,
            [displaced.manifest_id],
            now + timing.review_delay,
            reviews.TAG_REPUSH,
        )
    if name is None:
        # A manifest deleted by digest with no tag: back under its digest, and as
        # collectable as any manifest pushed by digest alone (after the grace).
        content.touch_manifest(conn, entry.manifest_id, now)
        reviews.queue_manifests(
            conn,
            image.workspace_id,
            [entry.manifest_id],
            now + timing.review_delay,
            reviews.TRASH_RESTORE,
        )
    target = f"{label}:{name}" if name is not None else f"{label}@{entry.digest}"
    detail: dict[str, Any] = {"entry": entry.id, "digest": entry.digest, "action": entry.action}
    if as_name is not None:
        detail["as"] = as_name
    if rolled_back:
        detail["rolled_back_from"] = displaced.digest if displaced else None
    content._audit(conn, image.workspace_id, actor, "trash.restore", target, detail, now)
    change.events.append(
        {
            "type": "restored",
            "image_id": image.id,
            "repository_id": image.repository_id,
            "entries": [{"id": entry.id, "kind": entry.kind, "tag": name, "digest": entry.digest}],
            "actor": actor,
        }
    )
    change.events.extend(trash_events)
    return Outcome(entry.id, RESTORED, "restored", image_id=image.id, tag=name, digest=entry.digest)


def _restore_image(
    conn: Connection, entry: Entry, as_name: str | None, now: int, actor: str | None, change: Change
) -> Outcome:
    i = s.images.c
    row = conn.execute(
        select(i.id, i.workspace_id, i.repository_id, i.name, i.trashed_at).where(
            i.id == entry.image_id
        )
    ).one()
    name = as_name if as_name is not None else str(row.name)
    try:
        validate_image_path(name)
    except InvalidName as exc:
        return Outcome(entry.id, INVALID, str(exc), image_id=entry.image_id)
    taken = conn.execute(
        select(i.id).where(
            i.repository_id == row.repository_id, i.name == name, i.trashed_at.is_(None)
        )
    ).first()
    message = f"an image named {name} was pushed since; restore this one under another name"
    if taken is not None:
        return Outcome(entry.id, CONFLICT, message, image_id=entry.image_id)
    try:
        with conn.begin_nested():
            conn.execute(
                update(s.images).where(i.id == entry.image_id).values(trashed_at=None, name=name)
            )
    except IntegrityError:  # created meanwhile (PostgreSQL: by another node)
        return Outcome(entry.id, CONFLICT, message, image_id=entry.image_id)
    counters = usage.BlobCounters()
    roots = trash_records.image_tag_roots(conn, entry.image_id)
    usage.hold(conn, {m: -n for m, n in roots.items()}, usage.TRASH, counters=counters)
    usage.hold(conn, roots, counters=counters)
    counters.flush(conn)
    conn.execute(delete(s.trash_entries).where(e.id == entry.id))
    image = Image(int(row.id), int(row.workspace_id), int(row.repository_id), name)
    label = content.image_label(conn, image)
    detail: dict[str, Any] = {"entry": entry.id, "tags": sum(roots.values())}
    if as_name is not None:
        detail["as"] = as_name
        detail["was"] = str(row.name)
    content._audit(conn, image.workspace_id, actor, "trash.restore", label, detail, now)
    change.events.append(
        {
            "type": "restored",
            "image_id": image.id,
            "repository_id": image.repository_id,
            "name": label,
            "entries": [{"id": entry.id, "kind": entry.kind, "tag": None, "digest": None}],
            "actor": actor,
        }
    )
    return Outcome(entry.id, RESTORED, "restored", image_id=image.id)


# expiry and empty -------------------------------------------------------------------

EXPIRED = "expired"
EMPTIED = "emptied"


def discard_entries(
    conn: Connection,
    image_id: int,
    entry_ids: Sequence[int],
    timing: Timing,
    now: int,
    actor: str | None,
    *,
    why: str,
) -> tuple[list[int], Change]:
    """Let go of entries of one image (their rows already locked by the caller, after
    the image's turn): what they held becomes pending GC through the review queues,
    as a delete with the trash off makes it. An image entry removes its image for
    good (with every other entry of it). Returns the entries that went."""
    change = Change()
    entries = entries_by_id(conn, entry_ids)
    if not entries:
        return [], change
    event = reviews.TRASH_EXPIRE if why == EXPIRED else reviews.TRASH_EMPTY
    action = "trash.expire" if why == EXPIRED else "trash.empty"
    i = s.images.c
    row = conn.execute(
        select(i.id, i.workspace_id, i.repository_id, i.name).where(i.id == image_id)
    ).one()
    image = Image(*row)
    label = content.image_label(conn, image)
    gone: list[int]
    whole = [x for x in entries if x.kind == trash_records.KIND_IMAGE]
    if whole:
        gone = list(
            conn.execute(select(e.id).where(e.image_id == image_id).order_by(e.id)).scalars()
        )
        purged = content.purge_image(conn, image, timing, now, actor, event=event, audit=False)
        change.ended_uploads = purged.ended_uploads
        content._audit(
            conn,
            image.workspace_id,
            actor,
            action,
            label,
            {"entries": gone, "image": True},
            now,
        )
    else:
        counters = usage.BlobCounters()
        holds: dict[int, int] = defaultdict(int)
        for x in entries:
            assert x.manifest_id is not None
            holds[x.manifest_id] -= 1
        conn.execute(delete(s.trash_entries).where(e.id.in_([x.id for x in entries])))
        usage.hold(conn, holds, usage.TRASH, counters=counters)
        counters.flush(conn)
        reviews.queue_manifests(
            conn, image.workspace_id, sorted(holds), now + timing.review_delay, event
        )
        gone = [x.id for x in entries]
        for x in entries:
            target = f"{label}:{x.tag}" if x.tag is not None else f"{label}@{x.digest}"
            content._audit(
                conn,
                image.workspace_id,
                actor,
                action,
                target,
                {"entry": x.id, "digest": x.digest},
                now,
            )
    change.events.append(
        {
            "type": "trash_expired" if why == EXPIRED else "trash_emptied",
            "image_id": image.id,
            "repository_id": image.repository_id,
            "entries": gone,
            "actor": actor,
        }
    )
    return gone, change


def _publish(reg: Registry, workspace_id: int, change: Change) -> None:
    for event in change.events:
        reg.events.publish(workspace_id, event)
    ended_uploads.release(reg, change.ended_uploads)


def _lock_image_skip(conn: Connection, image_id: int) -> bool:
    """Take the image's turn unless another transaction has it (PostgreSQL; SQLite
    writers are serial)."""
    got = conn.execute(
        select(s.images.c.id)
        .where(s.images.c.id == image_id)
        .with_for_update(key_share=True, skip_locked=True)
    ).first()
    return got is not None


def expire_due(
    reg: Registry,
    *,
    clock: Callable[[], int] = now_ms,
    should_stop: Callable[[], bool] = lambda: False,
    workspace_ids: Iterable[int] | None = None,
) -> int:
    """Expire every entry due now, image by image, in batches; returns how many went.
    Images another node (or a restore) holds are passed by: their entries stay due
    for the next pass."""
    now = clock()
    only = None if workspace_ids is None else sorted(set(workspace_ids))
    with reg.db.read() as conn:
        q = select(e.image_id, e.workspace_id).where(e.expires_at <= now).distinct()
        if only is not None:
            q = q.where(e.workspace_id.in_(only))
        due = sorted((int(img), int(ws)) for img, ws in conn.execute(q))
    expired = 0
    for image_id, workspace_id in due:
        while not should_stop():
            try:
                with reg.db.write() as conn:
                    if not _lock_image_skip(conn, image_id):
                        break
                    ids = list(
                        conn.execute(
                            select(e.id)
                            .where(e.image_id == image_id, e.expires_at <= now)
                            .order_by(e.id)
                            .limit(BATCH)
                            .with_for_update(skip_locked=True)
                        ).scalars()
                    )
                    if not ids:
                        break
                    gone, change = discard_entries(
                        conn, image_id, ids, reg.timing, now, None, why=EXPIRED
                    )
            except Busy:
                break  # the next pass takes them
            expired += len(gone)
            _publish(reg, workspace_id, change)
            if len(ids) < BATCH:
                break
    if expired:
        reg.wake_gc()
    return expired


def next_expiry(reg: Registry) -> int | None:
    """When the earliest entry expires (ms), or None with an empty trash."""
    with reg.db.read() as conn:
        at = conn.execute(select(func.min(e.expires_at))).scalar()
    return None if at is None else int(at)


def empty(
    reg: Registry,
    entry_ids: Sequence[int],
    actor: str | None,
    *,
    now: int | None = None,
) -> list[int]:
    """Empty these entries now (the caller has checked the permissions): one
    transaction per image and batch. Returns the entries that went (an image's other
    entries go with it)."""
    now = now if now is not None else now_ms()
    with reg.db.read() as conn:
        per_image: dict[int, list[int]] = defaultdict(list)
        workspace_of: dict[int, int] = {}
        for x in entries_by_id(conn, entry_ids):
            per_image[x.image_id].append(x.id)
            workspace_of[x.image_id] = x.workspace_id
    gone: list[int] = []
    for image_id in sorted(per_image):
        ids = per_image[image_id]
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            with reg.db.write() as conn:
                image = conn.execute(
                    select(s.images.c.id, s.images.c.workspace_id, s.images.c.repository_id,
                           s.images.c.name).where(s.images.c.id == image_id)
                ).first()  # fmt: skip
                if image is None:
                    break  # emptied with its image meanwhile
                content.lock_image(conn, Image(*image), live=False)
                locked = list(
                    conn.execute(
                        select(e.id)
                        .where(e.id.in_(chunk), e.image_id == image_id)
                        .order_by(e.id)
                        .with_for_update()
                    ).scalars()
                )
                went, change = discard_entries(
                    conn, image_id, locked, reg.timing, now, actor, why=EMPTIED
                )
            gone += went
            _publish(reg, workspace_of[image_id], change)
    reg.wake_gc()
    return gone


def restore(
    reg: Registry, wanted: Sequence[Restoring], actor: str | None, *, now: int | None = None
) -> list[Outcome]:
    """Restore entries (the caller has checked the permissions), one transaction per
    image, images in id order; an outcome per entry, in the order asked (an entry asked
    twice is restored once, as first asked, and answers the same both times)."""
    now = now if now is not None else now_ms()
    with reg.db.read() as conn:
        found = {x.id: x for x in entries_by_id(conn, [w.entry_id for w in wanted])}
    per_image: dict[int, list[Restoring]] = defaultdict(list)
    outcomes: dict[int, Outcome] = {}
    first = {w.entry_id: w for w in reversed(wanted)}
    for w in first.values():
        x = found.get(w.entry_id)
        if x is None:
            outcomes[w.entry_id] = _gone(w.entry_id)
        else:
            per_image[x.image_id].append(w)
    for image_id in sorted(per_image):
        with reg.db.write() as conn:
            done, change = restore_entries(
                conn, image_id, per_image[image_id], reg.timing, now, actor
            )
        for outcome in done:
            outcomes[outcome.entry_id] = outcome
        _publish(reg, found[per_image[image_id][0].entry_id].workspace_id, change)
    return [outcomes[w.entry_id] for w in wanted]


# listing ----------------------------------------------------------------------------


def full_name_column() -> Any:
    return (
        s.workspaces.c.slug + literal("/") + s.repositories.c.slug + literal("/") + s.images.c.name
    )


def listing(workspace_id: int) -> Select[Any]:
    """Entries of a workspace with their image's full name (the caller adds filters,
    order and paging)."""
    i = s.images.c
    return (
        select(
            *_ENTRY_COLS,
            i.name.label("image_name"),
            full_name_column().label("full_name"),
            s.repositories.c.slug.label("repository"),
            i.trashed_at.label("image_trashed_at"),
        )
        .select_from(s.trash_entries)
        .join(s.images, i.id == e.image_id)
        .join(s.repositories, s.repositories.c.id == e.repository_id)
        .join(s.workspaces, s.workspaces.c.id == e.workspace_id)
        .where(e.workspace_id == workspace_id)
    )


# the retention setting ----------------------------------------------------------------


def stored_retention_ms(conn: Connection) -> int | None:
    """The retention ``serve`` last started with (so the command line's deletes, a
    policy run, honour it too), or None if no serve has recorded one."""
    value = conn.execute(select(s.settings.c.value).where(s.settings.c.key == SETTING_KEY)).scalar()
    return int(value) if value is not None else None


def use_stored_retention(reg: Registry) -> None:
    """For a command other than serve (a policy run, a restore that rolls a tag back):
    the retention serve last started with, or serve's default if none has."""
    with reg.db.read() as conn:
        stored = stored_retention_ms(conn)
    retention = stored if stored is not None else DEFAULT_RETENTION_S * 1000
    reg.timing = replace(reg.timing, trash_retention=retention)


def store_retention_ms(conn: Connection, retention_ms: int) -> None:
    st = s.settings.c
    if conn.execute(select(st.key).where(st.key == SETTING_KEY)).first() is None:
        conn.execute(insert(s.settings).values(key=SETTING_KEY, value=str(retention_ms)))
    else:
        conn.execute(
            update(s.settings).where(st.key == SETTING_KEY).values(value=str(retention_ms))
        )
