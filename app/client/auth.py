"""Registry authentication as an ``httpx.Auth`` flow.

:class:`RegistryAuth` speaks both schemes a registry may ask for. It sends nothing
until challenged; on a ``Basic`` challenge it answers with the credentials; on a
``Bearer`` challenge it fetches a token from the realm for the challenged scope,
caches it per scope until shortly before it expires, and retries. A token that the
registry rejects (expired early, revoked) is dropped and fetched again once.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass

import httpx

_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
EXPIRY_MARGIN_S = 10.0


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (one or more challenges)."""
    out: list[Challenge] = []
    # Split before each scheme token that is followed by a space and a param.
    for part in re.split(r",\s*(?=[A-Za-z]+\s+\w+=)", header.strip()):
        scheme, _, rest = part.strip().partition(" ")
        if not scheme:
            continue
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PARAM_RE.finditer(rest)
        }
        out.append(Challenge(scheme.lower(), params))
    return out


def basic_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryAuth(httpx.Auth):
    """Basic or bearer-token auth, whichever the registry challenges with.

    ``preemptive_basic`` sends Basic credentials on the first request (the Berth
    management API accepts them everywhere and this saves a round trip).
    """

    requires_response_body = True

    def __init__(
        self, username: str | None, password: str | None, *, preemptive_basic: bool = False
    ) -> None:
        self.username = username
        self.password = password
        self.preemptive_basic = preemptive_basic
        self._tokens: dict[str, _Token] = {}
        self._scheme: str | None = "basic" if preemptive_basic else None
        self.token_requests = 0  # for tests and diagnostics

    @property
    def has_credentials(self) -> bool:
        return self.username is not None and self.password is not None

    def _cached(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is not None and token.expires_at - EXPIRY_MARGIN_S > time.monotonic():
            return token.value
        return None

    def _apply(self, request: httpx.Request, scope: str | None) -> None:
        if self._scheme == "basic" and self.has_credentials:
            request.headers["Authorization"] = basic_header(
                self.username or "", self.password or ""
            )
        elif self._scheme == "bearer" and scope is not None:
            value = self._cached(scope)
            if value is not None:
                request.headers["Authorization"] = f"Bearer {value}"

    def _token_request(self, challenge: Challenge, scope: str | None) -> httpx.Request:
        realm = challenge.params.get("realm", "")
        params: dict[str, str] = {}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        if scope:
            params["scope"] = scope
        headers = {}
        if self.has_credentials:
            headers["Authorization"] = basic_header(self.username or "", self.password or "")
        return httpx.Request("GET", realm, params=params, headers=headers)

    def _store(self, scope: str, response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        try:
            body = response.json()
        except ValueError:
            return False
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str):
            return False
        expires_in = body.get("expires_in")
        ttl = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60.0
        self._tokens[scope] = _Token(value, time.monotonic() + ttl)
        return True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # Callers that know the scope a request needs put it in extensions["berth_scope"]
        # (e.g. "repository:acme/web/app:pull"), so a cached token goes out at once.
        scope = request.extensions.get("berth_scope")
        self._apply(request, scope)
        response = yield request
        for _attempt in range(3):
            if response.status_code != 401:
                return
            challenges = parse_challenges(response.headers.get("www-authenticate", ""))
            bearer = next((c for c in challenges if c.scheme == "bearer"), None)
            basic = next((c for c in challenges if c.scheme == "basic"), None)
            if bearer is not None and "realm" in bearer.params:
                scope = bearer.params.get("scope") or scope or ""
                cached = self._cached(scope)
                sent = request.headers.get("Authorization")
                if cached is None or sent == f"Bearer {cached}":
                    # No token yet, or the registry refused the one we sent: fetch anew.
                    self._tokens.pop(scope, None)
                    self.token_requests += 1
                    token_response = yield self._token_request(bearer, scope)
                    if not self._store(scope, token_response):
                        return
                self._scheme = "bearer"
            elif basic is not None and self.has_credentials and self._scheme != "basic":
                self._scheme = "basic"
            else:
                return
            self._apply(request, scope)
            response = yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        req = next(flow)
        while True:
            response = yield req
            await response.aread()
            try:
                req = flow.send(response)
            except StopIteration:
                return
