"""Registry authentication as an ``httpx.Auth`` flow.

:class:`RegistryAuth` speaks both schemes a registry may ask for. It sends nothing
until challenged (unless ``preemptive_basic``); on a ``Basic`` challenge it answers
with the credentials; on a ``Bearer`` challenge it fetches a token from the realm
for the challenged scope, caches it per scope until shortly before it expires, and
retries.

Rules the flow keeps, and why:

* A *cached* token the registry rejects (revoked, expired early, server restarted
  with a new key) is dropped and fetched again once. A *fresh* token that is still
  rejected means the token service granted less than the request needs (it grants
  the intersection of what was asked and what the user holds): the 401 goes back
  to the caller, marked ``insufficient_scope``, instead of fetching in a loop.
* Callers that know the scope a request needs put it in
  ``extensions={"berth_scope": "repository:acme/web/app:pull"}`` so a cached token
  goes out at once. When the registry challenges with a different scope string
  for such a request, the two are remembered as aliases, so the next request with
  the same ``berth_scope`` needs no extra round trip either.
* The realm may live on another host (a separate token service). The password is
  sent there only over HTTPS, or over plain HTTP to the registry's own host (a
  local test registry): never in clear text to a third host.
* A token request that fails raises a clear error (wrong password at the token
  service, token service down) rather than leaving the caller with the
  registry's bare 401.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass

import httpx

from app.client.errors import AuthenticationFailed, ProtocolError
from app.client.transport import error_for_response

_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
EXPIRY_MARGIN_S = 10.0
DEFAULT_TOKEN_TTL_S = 60.0  # what the Docker token spec says to assume
SCOPE_EXTENSION = "berth_scope"


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


def token_actions(token: str) -> dict[str, frozenset[str]] | None:
    """The access a JWT registry token grants (``type:name`` → actions), read
    without verifying it (only the registry can), or None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    access = payload.get("access") if isinstance(payload, dict) else None
    if not isinstance(access, list):
        return None
    out: dict[str, frozenset[str]] = {}
    for entry in access:
        if isinstance(entry, dict) and isinstance(entry.get("actions"), list):
            key = f"{entry.get('type')}:{entry.get('name')}"
            out[key] = frozenset(str(a) for a in entry["actions"])
    return out


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
        self._aliases: dict[str, str] = {}
        self._granted: dict[str, dict[str, frozenset[str]]] = {}
        self._scheme: str | None = "basic" if preemptive_basic else None
        self.token_requests = 0  # for tests and diagnostics

    @property
    def has_credentials(self) -> bool:
        return self.username is not None and self.password is not None

    @property
    def scheme(self) -> str | None:
        """ "basic" or "bearer" once the registry has challenged, else None."""
        return self._scheme

    def granted(self, scope: str) -> dict[str, frozenset[str]] | None:
        """What the last token fetched for ``scope`` grants, when it is a JWT."""
        return self._granted.get(self._aliases.get(scope, scope))

    def _cached(self, scope: str) -> str | None:
        token = self._tokens.get(self._aliases.get(scope, scope))
        if token is not None and token.expires_at > time.monotonic():
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

    def _token_request(
        self, challenge: Challenge, scope: str | None, origin: httpx.Request
    ) -> httpx.Request:
        realm = challenge.params.get("realm", "")
        try:
            realm_url = httpx.URL(realm)
        except httpx.InvalidURL as exc:
            raise ProtocolError(f"The registry named an invalid token realm {realm!r}.") from exc
        if realm_url.is_relative_url:
            realm_url = origin.url.join(realm_url)
        # Several scopes go as several parameters (the token spec's form).
        params: list[tuple[str, str | int | float | bool | None]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", s) for s in (scope or "").split())
        headers = {}
        if self.has_credentials:
            if realm_url.scheme != "https" and realm_url.host != origin.url.host:
                raise AuthenticationFailed(
                    f"The registry sends logins to {realm_url.host} over plain HTTP; "
                    "Berth will not send your password there in clear text.",
                    status=401,
                )
            headers["Authorization"] = basic_header(self.username or "", self.password or "")
        return httpx.Request("GET", realm_url, params=params, headers=headers)

    def _store(self, scope: str, response: httpx.Response) -> str:
        """Keep the token the realm answered with, or raise why there is none."""
        where = f"Getting a token from {response.request.url.host}"
        if response.status_code != 200:
            raise error_for_response(response, what=where)
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"{where}: the answer is not JSON.") from exc
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"{where}: the answer holds no token.")
        expires_in = body.get("expires_in")
        ttl = (
            float(expires_in)
            if isinstance(expires_in, int | float) and expires_in > 0
            else DEFAULT_TOKEN_TTL_S
        )
        # Refresh shortly before expiry, but never treat a short-lived token as
        # expired on arrival.
        margin = min(EXPIRY_MARGIN_S, ttl / 4)
        self._tokens[scope] = _Token(value, time.monotonic() + ttl - margin)
        granted = token_actions(value)
        if granted is not None:
            self._granted[scope] = granted
        return value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        wanted: str | None = request.extensions.get(SCOPE_EXTENSION)
        self._apply(request, wanted)
        response = yield request
        fresh = False  # did the last attempt carry a token fetched just for it?
        for _attempt in range(3):
            if response.status_code != 401:
                return
            challenges = parse_challenges(response.headers.get("www-authenticate", ""))
            bearer = next((c for c in challenges if c.scheme == "bearer"), None)
            basic = next((c for c in challenges if c.scheme == "basic"), None)
            if bearer is not None and "realm" in bearer.params:
                if fresh:
                    return  # a token made for this request is not enough: no loop
                scope = bearer.params.get("scope") or wanted or ""
                if wanted and scope != wanted:
                    self._aliases[wanted] = scope
                self._tokens.pop(scope, None)
                self.token_requests += 1
                token_response = yield self._token_request(bearer, scope, request)
                value = self._store(scope, token_response)
                self._scheme = "bearer"
                request.headers["Authorization"] = f"Bearer {value}"
                fresh = True
            elif basic is not None and self.has_credentials and self._scheme != "basic":
                self._scheme = "basic"
                self._apply(request, None)
            else:
                return
            response = yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        req = next(flow)
        while True:
            response = yield req
            # The flow reads token answers; any other answer it only looks at when
            # it is a 401 (headers). Reading every body would never return on a
            # stream (server-sent events): send() reads the rest when not streaming.
            if req is not request or response.status_code == 401:
                await response.aread()
            try:
                req = flow.send(response)
            except StopIteration:
                return
