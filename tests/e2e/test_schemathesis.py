"""Property-based checks of the management API against its own OpenAPI document
(/api/v1/openapi.json): the schemathesis command line, over HTTP, against a real
registry process holding content. Every check must pass: no 5xx, every status,
header and body as documented, invalid input rejected, valid input accepted.

Path parameters are pinned to things that exist (workspace acme, a real image, tag,
digest, repository and user) so the generated requests reach the endpoints' logic
rather than stopping at 404."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import oci
from tests.support.api import api, push_content
from tests.support.processes import VENV_BIN
from tests.support.registry import PASSWORD, RegistryServer, standard_registry

pytestmark = pytest.mark.e2e

# Enough to reach every branch of the small request schemas; bounded for CI.
MAX_EXAMPLES = 10

# Every check schemathesis has, named one by one: "all" also turns on
# max_response_time, a 10 s wall-clock limit per answer, and on a busy CI machine one
# answer (a 400 for a malformed body) took 24 s once. How fast the registry answers
# is measured in tests/benchmarks/, never asserted here.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
    "object_level_authorization",
)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """The standard registry, with room for schemathesis's probes: it sends wrong
    credentials to every operation (one probe each, all from one name and address),
    which the failed sign-in back-off would rightly answer 429 after the first few
    (tests/registry/test_login_throttle.py); those probes test that each operation
    refuses them, not the back-off."""
    server = standard_registry(
        tmp_path / "registry",
        extra_args=["--sign-in-free-failures", "1000"],
        trash_retention=3600,  # the trash's endpoints reach its entries
    ).start()
    try:
        yield server
    finally:
        server.stop()


def config(registry: RegistryServer) -> str:
    content = push_content(registry)
    with api(registry) as c:
        assert c.post("/users", json={"name": "neo", "password": PASSWORD}).status_code == 201
    frontend = content.ids["acme/web/frontend"]
    digest = content.tagged["acme/web/frontend"]["v1"].digest
    # Recently deleted: a tag and an image in the trash, for its endpoints to reach.
    with registry.client("root") as c:
        img = content.tagged["acme/web/backend"]["v1"]
        for tag in ("gone1", "gone2"):
            oci.push(c, "acme/web/backend", img, tag)
            assert c.delete(f"/v2/acme/web/backend/manifests/{tag}").status_code == 202
        oci.push(c, "acme/api/trashed", img, "v1")
    with api(registry) as c:
        trashed = c.get("/workspaces/acme/images", params={"q": "trashed"}).json()["items"][0]
        r = c.delete(f"/images/{trashed['id']}", headers={"If-Match": trashed["etag"]})
        assert r.status_code == 204, r.text
    # A cleanup policy, a preview of it and a run, for their endpoints to read.
    with api(registry) as c:
        keep_all = {"rules": [{"kind": "keep_last", "value": 1000}]}
        for scope in ("/workspaces/acme", "/workspaces/acme/repositories/web"):
            assert c.put(scope + "/policy", json=keep_all).status_code == 200
        preview = c.post("/workspaces/acme/policy/previews").json()["id"]
        run = c.post(f"/policy-previews/{preview}/runs").json()["id"]
        # Finished before the stream is read: its event would otherwise arrive in it.
        deadline = time.monotonic() + 60
        while c.get(f"/policy-runs/{run}").json()["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def toml(value: object) -> str:
        return json.dumps(value)  # JSON strings and numbers are TOML too

    return f"""
[parameters]
"path.ws" = "acme"
"path.image_id" = {toml(frontend)}
"path.digest" = {toml(digest)}
"path.tag" = "v1"
"path.slug" = "web"
"path.user" = "neo"
"path.preview_id" = {toml(preview)}
"path.run_id" = {toml(run)}
# Cursors are opaque tokens the server makes; tests/registry/test_api_browse.py covers
# them. Empty means the first page.
"query.cursor" = ""

# Deletes through an image id name the image they mean (If-Match): a well-formed ETag of
# another image is refused with 412, a missing one with 428 (RFC 6585).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]
[checks.missing_required_header]
expected-statuses = ["400", "401", "403", "406", "415", "422", "428"]

# Deleting the image every other operation reads would starve them of data.
[[operations]]
include-name = "DELETE /api/v1/images/{{image_id}}"
parameters = {{ "path.image_id" = {toml(content.ids["acme/web/backend"])} }}

# The event stream never ends by itself, and schemathesis reads every answer to its end:
# a read timeout decided whether it passed, and on a busy machine it did not. The
# stream's answers (401, 403, 404, what it carries to whom, when it ends) are tested
# in tests/registry/test_api_events.py.
[[operations]]
include-name = "GET /api/v1/workspaces/{{ws}}/events"
enabled = false
"""


@pytest.mark.parametrize("user", ["root", "reader"])
def test_management_api_conforms_to_its_openapi(
    registry: RegistryServer, tmp_path: Path, user: str
) -> None:
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config(registry))
    result = subprocess.run(
        [
            str(VENV_BIN / "schemathesis"),
            "--config-file",
            str(config_file),
            "run",
            f"{registry.url}/api/v1/openapi.json",
            "--url",
            registry.url,
            "--auth",
            f"{user}:{PASSWORD}",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "1",
            "--workers",
            "1",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
