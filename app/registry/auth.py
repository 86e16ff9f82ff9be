"""Authentication: HTTP Basic and the Docker/OCI bearer-token flow.

Basic credentials are checked against argon2id hashes. Verifying argon2 costs tens
of milliseconds by design, and clients send credentials with every request, so a
successful check is remembered for a minute under a keyed hash of the password
(never the password itself) -- together with the user's credential stamp, which
every use compares with the store's: a password changed or a user removed through
any node ends what this node remembers at the next request.

Failed checks are rate-limited per user name and per client address with an
exponential back-off kept in the store (:mod:`app.registry.throttle`), and at most
``HASH_SLOTS`` argon2 checks run at once per process (64 MiB each): a flood of bad
passwords costs a bounded amount of memory and CPU, then nothing at all.

Bearer tokens are HS256 JWTs signed with a secret kept in the metadata store (so
every node of a cluster shares it). A token names the user and, per repository, the
actions granted: the intersection of what was requested and what the user holds.
Permissions are still checked against the store on every request; a token can only
narrow them. A token also names the user's id and credential stamp: it dies with a
password change or the user's removal.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field

import jwt
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from app.core.names import ImageName, InvalidName
from app.core.permissions import Permission, allowed_actions
from app.registry import accounts, throttle
from app.registry.accounts import User
from app.registry.db import schema as s
from app.registry.db.engine import Busy, Database, now_ms

TOKEN_TTL_S = 300
CACHE_TTL_S = 60.0
SERVICE = "berth-registry"
# Concurrent argon2 checks per process (each holds 64 MiB while it runs; more than
# the cores buys no throughput), and how long a check may wait for a slot before the
# request is answered 503 "busy, retry".
HASH_SLOTS = max(1, min(4, os.cpu_count() or 1))
HASH_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class Identity:
    user: User
    # None: Basic auth, no narrowing. Otherwise "type:name" -> granted actions.
    token_access: dict[str, frozenset[str]] | None = None
    token_api: bool = True

    def token_allows(self, resource_type: str, name: str, action: str) -> bool:
        if self.token_access is None:
            return True
        actions = self.token_access.get(f"{resource_type}:{name}", frozenset())
        return action in actions or "*" in actions


@dataclass(frozen=True, slots=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scopes(values: list[str]) -> list[Scope]:
    """Scopes from one or more ``scope`` parameters, each possibly space-separated.
    A resource named twice (clients that split ``pull`` and ``push`` into two
    parameters) is one scope with the actions of both, in the order first asked."""
    merged: dict[tuple[str, str], list[str]] = {}
    for value in values:
        for item in value.split():
            parts = item.split(":")
            if len(parts) < 3:
                continue
            # The name may itself contain ':' only for registry:catalog; keep it simple.
            rtype, actions = parts[0], parts[-1]
            name = ":".join(parts[1:-1])
            held = merged.setdefault((rtype, name), [])
            held += [a for a in actions.split(",") if a and a not in held]
    return [Scope(rtype, name, tuple(actions)) for (rtype, name), actions in merged.items()]


@dataclass
class Authenticator:
    db: Database
    secret: bytes
    _cache: dict[tuple[str, bytes], tuple[User, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _hashing: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(HASH_SLOTS)
    )
    limits: throttle.Limits = field(default_factory=throttle.Limits)

    @classmethod
    def load(cls, db: Database) -> Authenticator:
        """With the token secret every node shares: made by the first node to start."""
        for _attempt in range(2):
            try:
                with db.write() as conn:
                    secret = conn.execute(
                        select(s.settings.c.value).where(s.settings.c.key == "token_secret")
                    ).scalar()
                    if secret is None:
                        secret = secrets.token_hex(32)
                        conn.execute(insert(s.settings).values(key="token_secret", value=secret))
                return cls(db, bytes.fromhex(secret))
            except IntegrityError:
                continue  # another node made it at the same moment: read theirs
        raise RuntimeError("could not read the token secret")

    # Basic -------------------------------------------------------------------
    def check_password(self, name: str, password: str, address: str = "") -> User | None:
        """The user whose password this is, or None. Raises LoginThrottled while the
        name or the address ``address`` (the client's) is backing off, and Busy when
        no hashing slot frees up in time."""
        key = (name, hmac.new(self.secret, password.encode(), hashlib.sha256).digest())
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            with self.db.read() as conn:
                current = accounts.find_user(conn, name)
            if current is not None and (current.id, current.stamp) == (hit[0].id, hit[0].stamp):
                return current  # fresh: a superuser flag changed meanwhile counts too
            with self._lock:
                self._cache.pop(key, None)
        attempt = throttle.Attempt(name, address)
        with self.db.read() as conn:
            standing = throttle.standing(conn, attempt, now_ms())
            found = accounts.user_password_hash(conn, name)
        if standing.wait_ms > 0:
            retry = -(-standing.wait_ms // 1000)
            raise throttle.LoginThrottled(
                f"too many failed sign-ins for this user or from this address; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        # A user that does not exist costs the same check, so timing does not tell.
        user, pw_hash = found if found is not None else (None, _dummy_hash())
        if not self._verify(pw_hash, password) or user is None:
            with self.db.write() as conn:
                throttle.record_failure(conn, attempt, now_ms(), self.limits)
            return None
        if throttle.needs_refresh(standing, now_ms()):
            with self.db.write() as conn:
                throttle.record_success(conn, user.id, attempt, now_ms())
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (user, now + CACHE_TTL_S)
        return user

    def _verify(self, pw_hash: str, password: str) -> bool:
        if not self._hashing.acquire(timeout=HASH_WAIT_S):
            raise Busy("every password-check slot stayed taken")
        try:
            return accounts.verify_password(pw_hash, password)
        finally:
            self._hashing.release()

    def from_basic(self, header_value: str, address: str = "") -> User | None:
        try:
            raw = base64.b64decode(header_value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        name, sep, password = raw.partition(":")
        if not sep:
            return None
        return self.check_password(name, password, address)

    # Bearer ------------------------------------------------------------------
    def issue_token(
        self, conn: Connection, user: User, scopes: list[Scope], service: str
    ) -> dict[str, object]:
        access = []
        for scope in scopes:
            granted = self._grant(conn, user, scope)
            access.append({"type": scope.type, "name": scope.name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": SERVICE,
            "sub": user.name,
            # Who exactly, under which credentials: see from_bearer.
            "uid": user.id,
            "stamp": user.stamp,
            "aud": service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + TOKEN_TTL_S,
            "jti": str(uuid.uuid4()),
            "access": access,
        }
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        return {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_TTL_S,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        }

    def _grant(self, conn: Connection, user: User, scope: Scope) -> list[str]:
        if scope.type == "registry" and scope.name == "catalog":
            # The catalog is filtered per user, so anyone signed in may list it.
            return [a for a in scope.actions if a == "*"]
        if scope.type == "api" and scope.name == "berth":
            return ["*"] if "*" in scope.actions else []
        if scope.type != "repository":
            return []
        try:
            name = ImageName.parse(scope.name)
        except InvalidName:
            return []
        repo = accounts.find_repository(conn, name.workspace, name.repository)
        if repo is None:
            return []
        perm = accounts.permission_on(conn, user, repo)
        requested = list(scope.actions)
        if "*" in requested:
            # "*" asks for everything the user holds; the literal "*" only for admins.
            requested = ["pull", "push", "delete"] + (["*"] if perm >= Permission.ADMIN else [])
        return allowed_actions(perm, requested) if perm > Permission.NONE else []

    def from_bearer(self, token: str) -> Identity | None:
        try:
            # The audience is this service: a token minted for another (were the
            # secret ever shared) does not open this one.
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=SERVICE,
                issuer=SERVICE,
                options={"require": ["exp", "aud", "sub"]},
                leeway=5,
            )
        except jwt.PyJWTError:
            return None
        name = claims.get("sub")
        if not isinstance(name, str):
            return None
        with self.db.read() as conn:
            user = accounts.find_user(conn, name)
        # The same user (not a namesake created since) under the same credentials.
        if user is None or (user.id, user.stamp) != (claims.get("uid"), claims.get("stamp")):
            return None
        access: dict[str, frozenset[str]] = {}
        api = False
        for entry in claims.get("access") or []:
            if not isinstance(entry, dict):
                continue
            key = f"{entry.get('type')}:{entry.get('name')}"
            actions = entry.get("actions") or []
            if not isinstance(actions, list):
                continue
            access[key] = access.get(key, frozenset()) | {str(a) for a in actions}
            if key == "api:berth" and "*" in access[key]:
                api = True
        return Identity(user, access, api)

    def authenticate(self, authorization: str | None, address: str = "") -> Identity | None:
        """Who the Authorization header says is calling; ``address`` is the client's
        (for the failed-login back-off)."""
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "basic":
            user = self.from_basic(value, address)
            return Identity(user) if user is not None else None
        if scheme == "bearer":
            return self.from_bearer(value)
        return None


_dummy_lock = threading.Lock()


@functools.cache
def _dummy_hash() -> str:
    # Made once, under a lock: a first wave of unknown names must not build one
    # 64 MiB hash each at the same time (functools.cache does not wait for a call
    # already under way).
    with _dummy_lock:
        return _made_dummy_hash()


@functools.cache
def _made_dummy_hash() -> str:
    return accounts.hash_password(secrets.token_hex(8))
