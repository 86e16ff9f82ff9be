"""Failed logins: exponential back-off per user and per client address, kept in the
metadata store so every node of a cluster applies the same limits.

What an attacker must not get is free guesses; what a legitimate user must not get
is locked out by someone else's guessing. So:

* every failed password check (a wrong password, or a user that does not exist)
  counts against the *user name* and against the *client address*;
* after ``free`` failures within an hour, the key is blocked for 1 s, then 2 s, 4 s,
  ... at most 15 minutes: a blocked attempt is answered 429 with Retry-After before
  any password hashing, and is not counted again (a flood cannot extend its own
  block beyond the cap);
* the user key blocks a user name from every address *except* the addresses where
  that user signed in successfully in the last 30 days, and neither key blocks such
  a known pair: someone guessing alice's password from elsewhere slows themselves
  down without locking alice out of her usual places (a "device cookie" by address,
  which registry clients cannot carry otherwise);
* the address key (more lenient: shared addresses behind NAT and CI farms) stops one
  address from spraying guesses over many user names.

Blocks are audited (``login.blocked``); rows of keys quiet for longer than the
window are pruned by the housekeeping.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.core import names
from app.registry.db import schema as s
from app.registry.errors import RegistryError

log = logging.getLogger(__name__)

SECOND_MS = 1000
WINDOW_MS = 3600 * SECOND_MS  # failures older than this are forgotten
MAX_BLOCK_MS = 15 * 60 * SECOND_MS
KNOWN_FOR_MS = 30 * 24 * 3600 * SECOND_MS
KNOWN_REFRESH_MS = 24 * 3600 * SECOND_MS  # a known address's time is rewritten at most daily
USER_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
MAX_ADDRESS = 64


@dataclass(frozen=True, slots=True)
class Limits:
    """Failed sign-ins a user name and an address may have within the window before
    they back off (``serve --sign-in-free-failures``)."""

    user: int = USER_FREE_FAILURES
    address: int = ADDRESS_FREE_FAILURES

    @classmethod
    def per_user(cls, free: int) -> Limits:
        """``free`` per user name; an address (many users behind NAT, a CI farm) gets
        the same ratio as the defaults."""
        return cls(free, free * (ADDRESS_FREE_FAILURES // USER_FREE_FAILURES))


class LoginThrottled(RegistryError):
    status = 429
    code = "TOOMANYREQUESTS"


@dataclass(frozen=True, slots=True)
class Attempt:
    """Who is trying, from where. ``user`` is None for a name no user can have."""

    name: str
    address: str

    @property
    def user_key(self) -> str | None:
        try:
            names.validate_username(self.name)
        except names.InvalidName:
            return None
        return f"user:{self.name}"

    @property
    def address_key(self) -> str:
        return f"addr:{self.address[:MAX_ADDRESS]}"


def backoff_ms(failures: int, free: int) -> int:
    """How long a key is blocked after ``failures`` failures: nothing for the first
    ``free``, then 1 s doubling per failure, at most MAX_BLOCK_MS."""
    if failures < free:
        return 0
    return min(SECOND_MS << min(failures - free, 30), MAX_BLOCK_MS)


@dataclass(frozen=True, slots=True)
class Standing:
    """Where an attempt stands before its password is checked."""

    wait_ms: int  # 0: check it now
    known_at: int | None  # when this user last signed in from this address


def _known_at(conn: Connection, attempt: Attempt, now: int) -> int | None:
    at = conn.execute(
        select(s.login_addresses.c.last_success_at)
        .join(s.users, s.users.c.id == s.login_addresses.c.user_id)
        .where(
            s.users.c.name == attempt.name,
            s.login_addresses.c.address == attempt.address[:MAX_ADDRESS],
        )
    ).scalar()
    return int(at) if at is not None and at > now - KNOWN_FOR_MS else None


def standing(conn: Connection, attempt: Attempt, now: int) -> Standing:
    known_at = _known_at(conn, attempt, now)
    if known_at is not None:
        return Standing(0, known_at)
    keys = [k for k in (attempt.user_key, attempt.address_key) if k is not None]
    until = conn.execute(
        select(s.login_failures.c.blocked_until).where(
            s.login_failures.c.key.in_(keys), s.login_failures.c.blocked_until > now
        )
    ).scalars()
    return Standing(max((int(u) - now for u in until), default=0), None)


def _upsert(conn: Connection, row: dict[str, object]) -> None:
    stmt = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        s.login_failures
    ).values(row)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[s.login_failures.c.key],
            set_={k: stmt.excluded[k] for k in ("failures", "last_at", "blocked_until")},
        )
    )


def record_failure(conn: Connection, attempt: Attempt, now: int, limits: Limits = Limits()) -> None:
    """Count a failed check against the user name and the address; audit and log
    every block this starts or lengthens."""
    for key, free in ((attempt.user_key, limits.user), (attempt.address_key, limits.address)):
        if key is None:
            continue
        row = conn.execute(
            select(s.login_failures.c.failures, s.login_failures.c.last_at)
            .where(s.login_failures.c.key == key)
            .with_for_update()
        ).first()
        fresh = row is None or now - int(row.last_at) > WINDOW_MS
        failures = 1 if fresh else int(row.failures) + 1  # type: ignore[union-attr]
        blocked_until = now + backoff_ms(failures, free)
        _upsert(
            conn, {"key": key, "failures": failures, "last_at": now, "blocked_until": blocked_until}
        )
        if blocked_until > now:
            seconds = (blocked_until - now) // SECOND_MS
            log.warning("%s blocked for %d s after %d failed sign-ins", key, seconds, failures)
            conn.execute(
                insert(s.audit_log).values(
                    workspace_id=None,
                    at=now,
                    actor=None,
                    action="login.blocked",
                    target=key,
                    detail=json.dumps(
                        {
                            "failures": failures,
                            "blocked_s": seconds,
                            "user": attempt.name[:64],
                            "address": attempt.address[:MAX_ADDRESS],
                        },
                        sort_keys=True,
                    ),
                )
            )


def record_success(conn: Connection, user_id: int, attempt: Attempt, now: int) -> None:
    """Remember the address this user signed in from. (The user's failure count is
    not reset: a success from a known place must not hand a guesser elsewhere a
    fresh set of free attempts; failures age out after the window.)"""
    address = attempt.address[:MAX_ADDRESS]
    updated = conn.execute(
        update(s.login_addresses)
        .where(s.login_addresses.c.user_id == user_id, s.login_addresses.c.address == address)
        .values(last_success_at=now)
    )
    if not updated.rowcount:
        stmt = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
            s.login_addresses
        ).values(user_id=user_id, address=address, last_success_at=now)
        conn.execute(stmt.on_conflict_do_nothing())


def needs_refresh(standing_: Standing, now: int) -> bool:
    """Whether a success must be written (first from here, or a day since)."""
    return standing_.known_at is None or now - standing_.known_at > KNOWN_REFRESH_MS


def prune(conn: Connection, now: int) -> None:
    """Forget failures quiet for longer than the window and addresses unused for
    longer than they count as known."""
    conn.execute(
        delete(s.login_failures).where(
            s.login_failures.c.last_at < now - WINDOW_MS, s.login_failures.c.blocked_until < now
        )
    )
    conn.execute(
        delete(s.login_addresses).where(s.login_addresses.c.last_success_at < now - KNOWN_FOR_MS)
    )
