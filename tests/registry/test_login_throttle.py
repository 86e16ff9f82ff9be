"""Failed sign-ins back off exponentially per user name and per client address (429
with Retry-After, before any password hashing), across every node, audited; and a
guesser elsewhere does not lock a user out of the places they sign in from.

Clients' addresses are simulated with X-Forwarded-For, which the server trusts from
this host only (uvicorn's default FORWARDED_ALLOW_IPS), as from a load balancer."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.registry.db import schema as s
from app.registry.service import Registry
from tests.registry.oci_helpers import assert_error
from tests.support.registry import PASSWORD, RegistryServer, standard_registry

HOME = "192.0.2.10"  # where the user signs in every day
GUESSER = "198.51.100.7"
ELSEWHERE = "203.0.113.9"


def get(server: RegistryServer, user: str, password: str, address: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/v2/",
        auth=(user, password),
        headers={"X-Forwarded-For": address},
        timeout=60,
    )


def retry_after(r: httpx.Response) -> int:
    assert_error(r, 429, "TOOMANYREQUESTS")
    return int(r.headers["retry-after"])


def audited(server: RegistryServer) -> list[tuple[str, dict[str, object]]]:
    reg = Registry.open(server.data)
    try:
        with reg.db.read() as conn:
            rows = conn.execute(
                select(s.audit_log.c.target, s.audit_log.c.detail).where(
                    s.audit_log.c.action == "login.blocked"
                )
            ).all()
    finally:
        reg.close()
    return [(r.target, json.loads(r.detail)) for r in rows]


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    first = standard_registry(tmp_path / "data").start()
    second = RegistryServer(first.data)
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def guess_until_blocked(
    server: RegistryServer, user: Callable[[int], str], address: str, seconds: int = 8
) -> list[int]:
    """Guess wrong from ``address``, waiting out each block, until one lasts
    ``seconds`` (long enough for a test's next few requests on a busy machine).
    Returns the statuses seen."""
    seen = []
    for i in range(100):
        r = get(server, user(i), "wrong-guess", address)
        seen.append(r.status_code)
        if r.status_code == 429:
            if retry_after(r) >= seconds:
                return seen
            time.sleep(retry_after(r))
        else:
            assert_error(r, 401, "UNAUTHORIZED")
    raise AssertionError(f"never blocked for {seconds} s: {seen}")


def test_a_guesser_backs_off_without_locking_the_user_out(
    nodes: tuple[RegistryServer, RegistryServer],
) -> None:
    a, b = nodes
    assert get(a, "writer", PASSWORD, HOME).status_code == 200
    a.restart()  # nothing remembered in memory: every check below is a real one
    seen = guess_until_blocked(a, lambda i: "writer", GUESSER)
    assert seen[:5] == [401] * 5  # five free guesses, then the back-off
    # Blocked now, on every node, for the right password too, from anywhere new ...
    assert retry_after(get(b, "writer", PASSWORD, GUESSER)) > 1
    assert retry_after(get(b, "writer", PASSWORD, ELSEWHERE)) > 1
    assert retry_after(get(a, "writer", "wrong-guess", GUESSER)) > 1
    # ... but not from where the user signed in before.
    assert get(b, "writer", PASSWORD, HOME).status_code == 200
    # Each block doubled the last; attempts while blocked were not counted.
    blocks = [detail for target, detail in audited(a) if target == "user:writer"]
    assert [(d["failures"], d["blocked_s"]) for d in blocks] == [(5, 1), (6, 2), (7, 4), (8, 8)]
    assert {d["address"] for d in blocks} == {GUESSER}


def test_an_address_spraying_many_names_is_blocked(
    nodes: tuple[RegistryServer, RegistryServer],
) -> None:
    a, b = nodes
    # Four guesses at each name: no name reaches its own limit, the address does.
    seen = guess_until_blocked(a, lambda i: f"user{i // 4}", GUESSER)
    assert seen[:20] == [401] * 20
    assert retry_after(get(b, "reader", PASSWORD, GUESSER)) > 1
    assert get(b, "reader", PASSWORD, ELSEWHERE).status_code == 200
    blocks = [d["failures"] for t, d in audited(b) if t == "addr:" + GUESSER]
    assert blocks == [20, 21, 22, 23]


def test_the_free_failures_are_configurable(tmp_path: Path) -> None:
    """serve --sign-in-free-failures N: N free guesses at a name, 4 N from an address."""
    server = standard_registry(
        tmp_path / "data", extra_args=["--sign-in-free-failures", "2"]
    ).start()
    try:
        assert guess_until_blocked(server, lambda i: "writer", GUESSER)[:2] == [401] * 2
        assert guess_until_blocked(server, lambda i: f"user{i}", ELSEWHERE)[:8] == [401] * 8
        blocks = {
            target: [(d["failures"], d["blocked_s"]) for t, d in audited(server) if t == target]
            for target in ("user:writer", "addr:" + ELSEWHERE)
        }
        assert blocks == {
            "user:writer": [(2, 1), (3, 2), (4, 4), (5, 8)],
            "addr:" + ELSEWHERE: [(8, 1), (9, 2), (10, 4), (11, 8)],
        }
    finally:
        server.stop()


def test_every_way_in_answers_429_while_blocked(
    nodes: tuple[RegistryServer, RegistryServer],
) -> None:
    a, _ = nodes
    guess_until_blocked(a, lambda i: "reader", GUESSER)
    headers = {"X-Forwarded-For": GUESSER}
    r = httpx.get(f"{a.url}/auth/token", auth=("reader", PASSWORD), headers=headers)
    assert retry_after(r) >= 1
    r = httpx.post(
        f"{a.url}/auth/token",
        data={"grant_type": "password", "username": "reader", "password": PASSWORD},
        headers=headers,
    )
    assert retry_after(r) >= 1
    r = httpx.get(f"{a.url}/api/v1/me", auth=("reader", PASSWORD), headers=headers)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "TOO_MANY_REQUESTS"
    assert int(r.headers["retry-after"]) >= 1
    r = httpx.get(f"{a.url}/v2/acme/web/app/tags/list", auth=("reader", PASSWORD), headers=headers)
    assert retry_after(r) >= 1


def test_a_flood_of_bad_passwords_never_fails_the_server(
    nodes: tuple[RegistryServer, RegistryServer],
) -> None:
    """60 concurrent wrong passwords from 60 addresses at one name: each answer is
    401, 429 or 503 (no slot to check it in time), never a 5xx of another kind, and
    the user still signs in from home meanwhile."""
    a, _ = nodes
    assert get(a, "admin", PASSWORD, HOME).status_code == 200
    with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
        answers = list(
            pool.map(lambda i: get(a, "admin", f"guess-{i}", f"198.51.100.{i}"), range(60))
        )
    assert {r.status_code for r in answers} <= {401, 429, 503}
    assert any(r.status_code == 429 for r in answers)
    assert get(a, "admin", PASSWORD, HOME).status_code == 200
