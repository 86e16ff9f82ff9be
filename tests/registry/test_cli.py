"""``berth-registry``: the administrative commands, their errors (one line, status
2, nothing half-written), and ``serve`` (the ready line, SIGTERM, TLS, bad options)."""

from __future__ import annotations

import datetime
import io
import ipaddress
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from app.core.permissions import Permission
from app.registry import accounts, cli
from app.registry.db import schema as s
from app.registry.service import Registry
from tests.support.processes import ServerProcess
from tests.support.registry import CLI, PASSWORD, admin


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    data: Path,
    *args: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    """Run the command line in this process: (status, stdout, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        status = cli.main([*args, "--data", str(data)])
    except SystemExit as exc:  # argparse's own errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def snapshot(data: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: to show a failed command changed nothing."""
    registry = Registry.open(data)
    try:
        with registry.db.read() as conn:
            return {
                t.name: sorted(tuple(r) for r in conn.execute(select(t)))
                for t in s.metadata.sorted_tables
            }
    finally:
        registry.close()


@pytest.fixture
def cmd(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    data = tmp_path / "data"

    def call(*args: str, stdin: str = "") -> tuple[int, str, str]:
        return run(capsys, monkeypatch, data, *args, stdin=stdin)

    call.data = data  # type: ignore[attr-defined]
    return call


SEED: list[tuple[tuple[str, ...], str]] = [
    (("init",), ""),
    (("user", "add", "alice", "--password-stdin"), PASSWORD + "\n"),
    (("user", "add", "bob", "--password-stdin"), PASSWORD + "\n"),
    (("user", "add", "op", "--superuser", "--password-stdin"), PASSWORD + "\n"),
    (("workspace", "add", "acme", "--name", "Acme Inc."), ""),
    (("workspace", "member", "add", "acme", "alice", "--admin"), ""),
    (("workspace", "member", "add", "acme", "bob"), ""),
    (("project", "add", "acme", "PLATFORM", "--name", "Platform"), ""),
    (("repository", "add", "acme", "web-app", "--project", "PLATFORM"), ""),
    (("grant", "acme/web-app", "bob", "write"), ""),
]


def _seeded(cmd: Any) -> None:
    for args, stdin in SEED:
        status, out, err = cmd(*args, stdin=stdin)
        assert (status, err) == (0, ""), (args, err)
        assert out.count("\n") == 1, out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory after SEED (made once; tests work on copies)."""
    data = tmp_path_factory.mktemp("cli-seeded") / "data"
    with pytest.MonkeyPatch.context() as mp:
        for args, stdin in SEED:
            mp.setattr("sys.stdin", io.StringIO(stdin))
            assert cli.main([*args, "--data", str(data)]) == 0
    return data


def test_each_admin_command(cmd: Any) -> None:
    _seeded(cmd)
    registry = Registry.open(cmd.data)
    try:
        with registry.db.read() as conn:
            alice, bob = accounts.get_user(conn, "alice"), accounts.get_user(conn, "bob")
            assert accounts.get_user(conn, "op").is_superuser
            assert not alice.is_superuser
            repo = accounts.get_repository(conn, "acme", "web-app")
            assert repo.project_key == "PLATFORM"
            assert accounts.permission_on(conn, alice, repo) == Permission.ADMIN
            assert accounts.permission_on(conn, bob, repo) == Permission.WRITE
            name = conn.execute(select(s.workspaces.c.name)).scalar()
            assert name == "Acme Inc."
            found = accounts.user_password_hash(conn, "alice")
            assert found is not None
            assert accounts.verify_password(found[1], PASSWORD)
    finally:
        registry.close()
    # Grants change and go; a member can be promoted; passwords can be reset.
    assert cmd("grant", "acme/web-app", "bob", "read")[0] == 0
    assert cmd("workspace", "member", "add", "acme", "bob", "--admin")[0] == 0
    assert cmd("user", "passwd", "bob", "--password-stdin", stdin="another-password\n")[0] == 0
    registry = Registry.open(cmd.data)
    try:
        with registry.db.read() as conn:
            bob = accounts.get_user(conn, "bob")
            repo = accounts.get_repository(conn, "acme", "web-app")
            assert accounts.is_workspace_admin(conn, bob, repo.workspace_id)
            found = accounts.user_password_hash(conn, "bob")
            assert found is not None
            assert accounts.verify_password(found[1], "another-password")
    finally:
        registry.close()
    assert cmd("grant", "acme/web-app", "bob", "none")[0] == 0


BAD: list[tuple[tuple[str, ...], str]] = [
    (("user", "add", "Alice"), PASSWORD),  # uppercase user name
    (("user", "add", "carol"), "short"),  # password under 8 characters
    (("user", "add", "carol"), ""),  # nothing on stdin
    (("user", "add", "alice"), PASSWORD),  # exists
    (("user", "add", "carol"), None),  # no --password-stdin
    (("user", "passwd", "nobody"), PASSWORD),
    (("workspace", "add", "Acme"), ""),
    (("workspace", "add", "acme"), ""),  # exists
    (("workspace", "add", "-acme"), ""),
    (("workspace", "member", "add", "nope", "alice"), ""),
    (("workspace", "member", "add", "acme", "nobody"), ""),
    (("project", "add", "acme", "platform"), ""),  # keys are uppercase
    (("project", "add", "acme", "PLATFORM"), ""),  # exists
    (("project", "add", "nope", "DATA"), ""),
    (("repository", "add", "acme", "Web"), ""),
    (("repository", "add", "acme", "api", "--project", "NOPE"), ""),
    (("repository", "add", "acme", "web-app", "--project", "PLATFORM"), ""),  # exists
    (("repository", "add", "acme", "api"), ""),  # no --project
    (("grant", "acme", "bob", "read"), ""),
    (("grant", "acme/web-app/x", "bob", "read"), ""),
    (("grant", "acme/nope", "bob", "read"), ""),
    (("grant", "acme/web-app", "nobody", "read"), ""),
    (("grant", "acme/web-app", "bob", "owner"), ""),
    (("workspace", "remove", "acme"), ""),
    (("frobnicate",), ""),
]


@pytest.mark.parametrize(("args", "stdin"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_one_line_status_2_nothing_written(
    cmd: Any, seeded: Path, args: tuple[str, ...], stdin: str | None
) -> None:
    shutil.copytree(seeded, cmd.data)
    before = snapshot(cmd.data)
    full = (*args, "--password-stdin") if stdin is not None and args[0] == "user" else args
    status, out, err = cmd(*full, stdin=(stdin or "") + "\n")
    assert status == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("berth-registry"), err
    assert "error" in err
    assert snapshot(cmd.data) == before


def test_a_failed_command_on_a_new_data_directory_leaves_none(cmd: Any) -> None:
    status, _, err = cmd("workspace", "member", "add", "acme", "alice")
    assert status == 2
    assert err.count("\n") == 1
    assert not cmd.data.exists()


def test_console_script(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert admin(data, "init").returncode == 0
    ok = admin(data, "user", "add", "dave", "--password-stdin", password=PASSWORD)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "user dave created\n", "")
    bad = admin(data, "workspace", "add", "Not_A_Slug")
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1
    usage = subprocess.run([CLI], capture_output=True, text=True, check=False)
    assert usage.returncode == 2
    assert usage.stderr.count("\n") == 1


# serve -----------------------------------------------------------------------------


def _serve(data: Path, *extra: str) -> ServerProcess:
    return ServerProcess([CLI, "serve", "--data", str(data), "--port", "0", *extra])


def test_serve_prints_where_it_listens_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = _serve(tmp_path / "data")
    try:
        scheme, _, rest = server.url.partition("://")
        host, _, port = rest.rpartition(":")
        assert (scheme, host) == ("http", "127.0.0.1")
        assert 0 < int(port) < 65536
        r = httpx.get(f"{server.url}/v2/")
        assert r.status_code == 401
    finally:
        status = server.stop()
    assert status == 0
    # The data directory is ready for the next start.
    again = _serve(tmp_path / "data")
    assert again.stop() == 0


def _serve_fails(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "serve", "--data", str(data), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_serve_with_bad_options(tmp_path: Path) -> None:
    data = tmp_path / "data"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = str(busy.getsockname()[1])
        for extra in (
            ("--port", "99999"),
            ("--port", "http"),
            ("--port", taken),
            ("--port", "0", "--tls-cert", str(junk)),
            ("--port", "0", "--tls-cert", str(junk), "--tls-key", str(junk)),
            ("--port", "0", "--tls-cert", str(tmp_path / "none"), "--tls-key", str(junk)),
            ("--port", "0", "--gc-review-delay", "-1"),
            ("--port", "0", "--auth-challenge", "digest"),
        ):
            result = _serve_fails(data, *extra)
            assert result.returncode == 2, (extra, result.stderr)
            assert result.stdout == ""
            assert result.stderr.count("\n") == 1, result.stderr
    assert not data.exists()  # none of those touched the data directory


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_serve_with_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server = _serve(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
            r = client.get(f"{server.url}/v2/")
            assert r.status_code == 401
            # The token realm it announces is https too.
            assert r.headers["WWW-Authenticate"].startswith(
                f'Bearer realm="{server.url}/auth/token"'
            )
        with pytest.raises(httpx.ConnectError), httpx.Client() as untrusting:
            untrusting.get(f"{server.url}/v2/")
        with pytest.raises(httpx.HTTPError), httpx.Client() as plain:
            plain.get(server.url.replace("https://", "http://") + "/v2/")
    finally:
        assert server.stop() == 0


# a data directory that holds no registry ----------------------------------------

NO_REGISTRY_COMMANDS: list[tuple[str, ...]] = [
    ("user", "add", "alice", "--password-stdin"),
    ("user", "passwd", "alice", "--password-stdin"),
    ("workspace", "add", "acme"),
    ("workspace", "member", "add", "acme", "alice"),
    ("project", "add", "acme", "PLATFORM"),
    ("repository", "add", "acme", "web", "--project", "PLATFORM"),
    ("grant", "acme/web", "alice", "read"),
    ("gc", "--once"),
    ("gc", "--once", "--ignore-review-delay"),
    ("fsck",),
    ("fsck", "--repair"),
]


@pytest.mark.parametrize("args", NO_REGISTRY_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("where", ["missing", "empty"])
def test_commands_refuse_a_directory_without_a_registry(
    cmd: Any, args: tuple[str, ...], where: str
) -> None:
    """A mistyped --data must not become a new, empty registry that fsck calls clean."""
    if where == "empty":
        cmd.data.mkdir()
    status, out, err = cmd(*args, stdin=PASSWORD + "\n")
    assert status == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1, err
    assert "holds no registry" in err, err
    if where == "missing":
        assert not cmd.data.exists()
    else:
        assert list(cmd.data.iterdir()) == []


def test_init_makes_a_registry_the_other_commands_accept(cmd: Any) -> None:
    status, out, err = cmd("init")
    assert (status, err) == (0, ""), err
    assert out == f"registry created in {cmd.data}\n"
    assert cmd("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    status, out, _ = cmd("fsck")
    assert status == 0, out
    assert "fsck: clean" in out, out
    assert cmd("gc", "--once")[0] == 0
    status, out, _ = cmd("init")
    assert (status, out) == (0, f"{cmd.data} already holds a registry\n")
    registry = Registry.open(cmd.data)
    try:
        with registry.db.read() as conn:
            assert accounts.get_user(conn, "alice").name == "alice"
    finally:
        registry.close()


def test_commands_refuse_a_postgres_database_without_a_registry(tmp_path: Path) -> None:
    from tests.support.postgres import PostgresServer

    postgres = PostgresServer()
    try:
        url = postgres.create_database("berth_empty")
        data = tmp_path / "data"
        data.mkdir()
        for args in (("workspace", "add", "acme"), ("fsck",), ("gc", "--once")):
            result = admin(data, *args, "--database-url", url)
            assert result.returncode == 2, result
            assert result.stderr.count("\n") == 1, result.stderr
            assert "holds no registry" in result.stderr
        assert admin(data, "init", "--database-url", url).returncode == 0
        assert admin(data, "workspace", "add", "acme", "--database-url", url).returncode == 0
        fsck = admin(data, "fsck", "--database-url", url)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    finally:
        postgres.stop()
