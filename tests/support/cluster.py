"""Several Berth nodes as in production: one PostgreSQL, one S3 bucket (SeaweedFS),
each node its own ``berth-registry serve`` process with a data directory of its
own, and HAProxy in front of them running ``packaging/haproxy/haproxy.cfg`` — the
README's configuration itself, with the addresses of the nodes started here.

    cluster = Cluster(tmp_path, seaweed, bucket, nodes=2).start()
    cluster.lb_url, cluster.nodes[0].url, cluster.nodes[1].url
    cluster.stop()
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.distribution import free_port
from tests.support.postgres import PostgresServer
from tests.support.registry import RegistryServer, standard_registry
from tests.support.seaweedfs import SeaweedS3
from tests.support.tools import require

HAPROXY_CONFIG = Path(__file__).parents[2] / "packaging" / "haproxy" / "haproxy.cfg"


class HaProxy:
    """HAProxy running the packaged configuration in front of ``backends``."""

    def __init__(self, backends: list[str], tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate, key) for HAProxy to serve https with, set through
        BERTH_LB_BIND as the README says."""
        binary = require("haproxy")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="berth-haproxy-"))
        bind = f"127.0.0.1:{self.port}"
        if tls is not None:
            pem = self.root / "berth.pem"  # HAProxy takes the certificate and key in one file
            pem.write_bytes(tls[0].read_bytes() + tls[1].read_bytes())
            bind += f" ssl crt {pem}"
        env = {
            "PATH": "/usr/sbin:/usr/bin:/bin",
            "BERTH_LB_BIND": bind,
            **{f"BERTH_NODE{i + 1}": b for i, b in enumerate(backends)},
        }
        check = subprocess.run(
            [binary, "-c", "-f", str(HAPROXY_CONFIG)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused the configuration: {check.stdout}{check.stderr}")
        self.log = open(self.root / "haproxy.log", "wb")  # noqa: SIM115 (closed by stop)
        # -db: stay in the foreground, so stopping this process stops HAProxy.
        self.proc = subprocess.Popen(
            [binary, "-db", "-f", str(HAPROXY_CONFIG)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited: {(self.root / 'haproxy.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=2, verify=False).status_code == 401:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("haproxy did not start")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Cluster:
    root: Path
    seaweed: SeaweedS3
    bucket: str
    count: int = 2
    review_delay: float = 300.0
    upload_grace: float = 3600.0
    extra_args: list[str] = field(default_factory=list)
    pg: PostgresServer | None = None
    database_url: str = ""
    nodes: list[RegistryServer] = field(default_factory=list)
    lb: HaProxy | None = None

    @property
    def blob_store(self) -> str:
        return f"s3://{self.bucket}/berth"

    def node(self, name: str, *, seed: bool = False) -> RegistryServer:
        """One more node on the cluster's database and bucket (not behind HAProxy)."""
        kw = {
            "database_url": self.database_url,
            "blob_store": self.blob_store,
            "env": self.seaweed.env,
            "review_delay": self.review_delay,
            "upload_grace": self.upload_grace,
            "extra_args": list(self.extra_args),
            "log_file": self.root / f"{name}.log",
        }
        data = self.root / name
        # The accounts go into the shared database once.
        node = standard_registry(data, **kw) if seed else RegistryServer(data, **kw)  # type: ignore[arg-type]
        return node.start()

    def start(self) -> Cluster:
        self.pg = PostgresServer()
        try:
            self.database_url = self.pg.create_database("berth")
            for i in range(self.count):
                self.nodes.append(self.node(f"node{i + 1}", seed=i == 0))
            backends = [n.host for n in self.nodes]
            # The configuration names two servers: one node stands for both.
            self.lb = HaProxy(backends if len(backends) > 1 else backends * 2)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def lb_url(self) -> str:
        assert self.lb is not None
        return self.lb.url

    def client(self, user: str, url: str | None = None, **kw: object) -> httpx.Client:
        from tests.support.registry import PASSWORD

        return httpx.Client(
            base_url=url or self.lb_url,
            auth=httpx.BasicAuth(user, PASSWORD),
            timeout=60,
            **kw,  # type: ignore[arg-type]
        )

    def logs(self) -> str:
        """What the nodes logged (each ``<name>.log`` beside their data)."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-20_000:]}"
            for path in sorted(self.root.glob("*.log"))
        )

    def stop(self) -> None:
        if self.lb is not None:
            self.lb.stop()
            self.lb = None
        for node in self.nodes:
            node.stop()
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
