"""A real CNCF Distribution 2.8 registry (Debian's ``docker-registry``) for tests and
benchmarks: TLS with a certificate made here, htpasswd (bcrypt) Basic auth, deletes
enabled or not, filesystem storage under a directory the test owns.

    server = DistributionServer(tmp_path / "dist").start()
    ...  # server.url, server.host, server.ca_file, USER / PASSWORD
    server.stop()
    server.garbage_collect()  # `docker-registry garbage-collect`, registry stopped

For a fixture: ``yield from distribution_server(tmp_path / "dist", delete_enabled=False)``
(starts, yields, always stops). ``push_image`` seeds content over HTTP; skopeo
reaches the server with ``server.skopeo_tls_args("dest")``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import oci
from tests.support.tools import require

USER = "dist-admin"
PASSWORD = "dist-secret-pass"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_tls(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``host`` (and localhost) signed by it:
    (ca.pem, cert.pem, key.pem)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Berth test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


def htpasswd_line(user: str, password: str) -> str:
    # Distribution accepts only bcrypt entries; a low cost keeps logins fast in tests.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return f"{user}:{hashed}\n"


@dataclass
class DistributionServer:
    """``docker-registry serve`` on 127.0.0.1 with its data under ``root``."""

    root: Path
    delete_enabled: bool = True
    tls: bool = True
    auth: bool = True
    users: dict[str, str] = field(default_factory=lambda: {USER: PASSWORD})
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.storage = self.root / "storage"
        self.config_file = self.root / "config.yml"
        self.log_file = self.root / "registry.log"
        self.ca_file: Path | None = None

    # --- configuration ------------------------------------------------------------
    def write_config(self) -> None:
        """Write config, TLS files and htpasswd (``start`` does it when missing)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        if not self.port:
            self.port = free_port()
        # Distribution reads YAML; JSON is YAML, and needs no YAML writer here.
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": self.delete_enabled},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": "berth-tests"},
        }
        http = config["http"]
        assert isinstance(http, dict)
        if self.tls:
            self.ca_file, cert, key = make_tls(self.root / "tls")
            http["tls"] = {"certificate": str(cert), "key": str(key)}
        if self.auth:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text("".join(htpasswd_line(u, p) for u, p in self.users.items()))
            config["auth"] = {"htpasswd": {"realm": "berth-test", "path": str(htpasswd)}}
        self.config_file.write_text(json.dumps(config, indent=2))

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """host:port, as skopeo wants it."""
        return f"127.0.0.1:{self.port}"

    def skopeo_tls_args(self, direction: str | None) -> list[str]:
        """skopeo options that trust our CA and log in: ``--src-…``/``--dest-…`` for
        ``direction`` "src"/"dest", plain ``--cert-dir``/``--creds`` for None."""
        prefix = f"--{direction}-" if direction else "--"
        args: list[str] = []
        if self.tls:
            assert self.ca_file is not None
            certs = self.ca_file.parent / "skopeo"
            certs.mkdir(exist_ok=True)
            (certs / "ca.crt").write_bytes(self.ca_file.read_bytes())
            args.append(f"{prefix}cert-dir={certs}")
        else:
            args.append(f"{prefix}tls-verify=false")
        if self.auth:
            user, password = next(iter(self.users.items()))
            args.append(f"{prefix}creds={user}:{password}")
        return args

    # --- lifecycle ----------------------------------------------------------------
    def start(self, ready_timeout: float = 30.0) -> DistributionServer:
        binary = require("docker-registry")
        if not self.config_file.exists():
            self.write_config()
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [binary, "serve", str(self.config_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
        )
        log.close()
        ctx: ssl.SSLContext | bool = False
        if self.tls:
            assert self.ca_file is not None
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_text()}")
            try:
                status = httpx.get(self.url + "/v2/", verify=ctx, timeout=2).status_code
            except httpx.TransportError:
                status = None
            if status in (200, 401):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not become ready: {self.log_text()}")
            time.sleep(0.05)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def garbage_collect(self, *, delete_untagged: bool = False) -> str:
        """``docker-registry garbage-collect`` on the stopped registry's storage."""
        if self.process is not None:
            raise RuntimeError("stop the registry before garbage-collect")
        argv = [require("docker-registry"), "garbage-collect"]
        if delete_untagged:
            argv.append("--delete-untagged")
        result = subprocess.run(
            [*argv, str(self.config_file)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise AssertionError(f"garbage-collect failed: {result.stdout}{result.stderr}")
        return result.stdout

    def blob_bytes(self) -> dict[str, int]:
        """Every blob the storage holds on disk, digest → size (read from the files)."""
        out: dict[str, int] = {}
        root = self.storage / "docker" / "registry" / "v2" / "blobs"
        if not root.exists():
            return out
        for data in root.glob("*/*/*/data"):
            algorithm = data.parent.parent.parent.name
            out[f"{algorithm}:{data.parent.name}"] = data.stat().st_size
        return out

    def http_client(self) -> httpx.Client:
        """A plain synchronous client with Basic auth, for seeding and checking."""
        verify: ssl.SSLContext | bool = False
        if self.tls:
            assert self.ca_file is not None
            verify = ssl.create_default_context(cafile=str(self.ca_file))
        auth = httpx.BasicAuth(*next(iter(self.users.items()))) if self.auth else None
        return httpx.Client(base_url=self.url, verify=verify, auth=auth, timeout=30)


def distribution_server(root: Path, **kw: object) -> Iterator[DistributionServer]:
    """Generator body for a fixture: start, yield, always stop."""
    server = DistributionServer(root, **kw).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def push_blob(client: httpx.Client, name: str, blob: oci.Blob) -> None:
    """Upload one blob unless present. Distribution 2.8 has no single-request
    monolithic upload (POST with ``?digest=`` answers 202): POST, then PUT."""
    if client.head(f"/v2/{name}/blobs/{blob.digest}").status_code == 200:
        return
    started = client.post(f"/v2/{name}/blobs/uploads/")
    if started.status_code != 202:
        raise AssertionError(f"upload start failed: {started.status_code} {started.text}")
    # The Location carries the upload state in its query; add the digest to it.
    location = httpx.URL(started.headers["location"])
    done = client.put(
        location.copy_add_param("digest", blob.digest),
        content=blob.data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if done.status_code != 201:
        raise AssertionError(f"blob upload failed: {done.status_code} {done.text}")


def push_image(client: httpx.Client, name: str, img: oci.Image, tag: str | None = None) -> str:
    """Push an image (or an index and its children); returns the manifest digest."""
    for child in img.children:
        push_image(client, name, child)
    for blob in img.blobs:
        push_blob(client, name, blob)
    r = client.put(
        f"/v2/{name}/manifests/{tag or img.digest}",
        content=img.manifest.data,
        headers={"Content-Type": img.manifest.media_type},
    )
    if r.status_code != 201:
        raise AssertionError(f"manifest push failed: {r.status_code} {r.text}")
    return img.digest
