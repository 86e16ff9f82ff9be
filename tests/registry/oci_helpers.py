"""Helpers for the OCI Distribution API tests: a registry shared by a module, error
checks in the spec's shape, Docker schema 2 manifests, and raw HTTP for requests
httpx will not send (a body cut short)."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer, standard_registry

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


@contextmanager
def running_registry(data: Path, **kw: object) -> Iterator[RegistryServer]:
    """A registry for a module's tests; on the way out it must stop cleanly (status 0)
    having logged no traceback: a request that failed inside the server shows
    there even when the client got a 4xx."""
    server = standard_registry(data, **kw).start()
    try:
        yield server
    finally:
        assert server.process is not None
        proc = server.process.proc
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(30)
        log = proc.stderr.read() if proc.stderr else ""
        server.stop()
    assert status == 0, log
    assert "Traceback" not in log, log


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The spec's error: the status, and ``{"errors": [{"code": ...}]}``."""
    assert response.status_code == status, (response.status_code, response.text)
    if response.request.method == "HEAD":
        return  # no body to carry the code
    codes = [e["code"] for e in response.json()["errors"]]
    assert code in codes, response.text


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def upload(client: httpx.Client, name: str, data: bytes, digest: str | None = None) -> str:
    """Push a blob in one POST; returns its digest."""
    digest = digest or sha256(data)
    r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def put_manifest(
    client: httpx.Client, name: str, reference: str, body: bytes, media_type: str
) -> httpx.Response:
    return client.put(
        f"/v2/{name}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )


def docker_image(layers: list[oci.Blob], arch: str = "amd64") -> oci.Image:
    """A Docker schema 2 image: the same bytes as an OCI image, Docker media types."""
    cfg_oci = oci.config(layers, arch=arch)
    cfg = oci.Blob(cfg_oci.data, DOCKER_CONFIG)
    docker_layers = [oci.Blob(b.data, DOCKER_LAYER) for b in layers]
    body = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": cfg.descriptor(),
        "layers": [b.descriptor() for b in docker_layers],
    }
    manifest = oci.Blob(
        json.dumps(body).encode(), DOCKER_MANIFEST, {"architecture": arch, "os": "linux"}
    )
    return oci.Image(manifest, [cfg, *docker_layers])


def docker_list(children: list[oci.Image]) -> oci.Image:
    body = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [c.manifest.descriptor() for c in children],
    }
    return oci.Image(oci.Blob(json.dumps(body).encode(), DOCKER_LIST), [], children)


def raw_request(
    server: RegistryServer, head: str, body: bytes, user: str | None = "writer"
) -> None:
    """Send a request line and headers, then ``body``, then hang up without reading:
    what a client that dies mid-upload does. ``head`` is "METHOD /path" plus any
    extra header lines; Host and Authorization are added."""
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    method_path, _, extra = head.partition("\n")
    lines = [f"{method_path} HTTP/1.1", f"Host: {parts.netloc}"]
    if user is not None:
        token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    lines += [line for line in extra.splitlines() if line]
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        sock.shutdown(socket.SHUT_WR)
        # Wait for the server to notice (it answers or closes), without asserting on time.
        sock.settimeout(30)
        while sock.recv(65536):
            pass
