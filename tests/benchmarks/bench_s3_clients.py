"""Which S3 library the blob store uses: obstore against boto3, on SeaweedFS here.

Measured for what the registry does with object storage:

* a 256 MiB blob written as a multipart upload in 8 MiB parts (boto3: the low-level
  calls the registry needs, since an upload's parts arrive on different nodes and
  its state lives in the database; obstore: its own multipart writer, which keeps
  the upload id inside the process), sequential and with 4 parts in flight;
* a 256 MiB object read as a stream in 1 MiB chunks, and 64 ranged reads of 1 MiB;
* 200 small PUTs (manifest-sized objects).

Prints MB/s (median of the rounds) for each and the ratio obstore / boto3.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_s3_clients.py -s``
(``BENCH_ROUNDS`` sets the rounds, default 3).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import obstore
import pytest
from obstore.store import S3Store

from tests.support.seaweedfs import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SIZE = 256 * 1024 * 1024
PART = 8 * 1024 * 1024
CHUNK = 1024 * 1024
BUCKET = "bench"


@pytest.fixture(scope="module")
def s3() -> Iterator[SeaweedS3]:
    store = SeaweedS3()
    try:
        store.create_bucket(BUCKET)
        yield store
    finally:
        store.stop()


def _obstore(s3: SeaweedS3) -> S3Store:
    return S3Store(
        BUCKET,
        endpoint=s3.endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        client_options={"allow_http": True},
    )


def _median_rate(fn: Callable[[], int]) -> float:
    rates = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start) / 1e6)
    return statistics.median(rates)


def test_s3_clients(s3: SeaweedS3) -> None:
    data = os.urandom(SIZE)
    parts = [data[i : i + PART] for i in range(0, SIZE, PART)]
    client = s3.client()
    store = _obstore(s3)

    def boto_multipart(workers: int) -> Callable[[], int]:
        def run() -> int:
            key = f"boto-mpu-{workers}"
            upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]

            def put(i: int) -> dict[str, Any]:
                r = client.upload_part(
                    Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=i + 1, Body=parts[i]
                )
                return {"PartNumber": i + 1, "ETag": r["ETag"]}

            with ThreadPoolExecutor(workers) as pool:
                done = list(pool.map(put, range(len(parts))))
            client.complete_multipart_upload(
                Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
            )
            return SIZE

        return run

    def obstore_multipart(workers: int) -> Callable[[], int]:
        def run() -> int:
            obstore.put(
                store,
                f"obstore-mpu-{workers}",
                iter(parts),
                use_multipart=True,
                chunk_size=PART,
                max_concurrency=workers,
            )
            return SIZE

        return run

    client.put_object(Bucket=BUCKET, Key="read", Body=data)

    def boto_stream() -> int:
        body = client.get_object(Bucket=BUCKET, Key="read")["Body"]
        return sum(len(c) for c in body.iter_chunks(CHUNK))

    def obstore_stream() -> int:
        return sum(len(c) for c in obstore.get(store, "read").stream(CHUNK))

    def boto_ranges() -> int:
        n = 0
        for i in range(64):
            body = client.get_object(
                Bucket=BUCKET, Key="read", Range=f"bytes={i * CHUNK}-{(i + 1) * CHUNK - 1}"
            )["Body"]
            n += len(body.read())
        return n

    def obstore_ranges() -> int:
        return sum(
            len(obstore.get_range(store, "read", start=i * CHUNK, length=CHUNK)) for i in range(64)
        )

    small = os.urandom(2048)

    def boto_small() -> int:
        for i in range(200):
            client.put_object(Bucket=BUCKET, Key=f"small/{i}", Body=small)
        return 200 * len(small)

    def obstore_small() -> int:
        for i in range(200):
            obstore.put(store, f"small/{i}", small)
        return 200 * len(small)

    rows = [
        ("multipart put, 1 part in flight", boto_multipart(1), obstore_multipart(1)),
        ("multipart put, 4 parts in flight", boto_multipart(4), obstore_multipart(4)),
        ("streamed get, 1 MiB chunks", boto_stream, obstore_stream),
        ("64 ranged gets of 1 MiB", boto_ranges, obstore_ranges),
        ("200 small puts (2 KiB)", boto_small, obstore_small),
    ]
    print(f"\nS3 client libraries on SeaweedFS, median of {ROUNDS} (MB/s):")
    print(f"{'':36} {'boto3':>9} {'obstore':>9} {'obstore/boto3':>14}")
    for title, boto_fn, obs_fn in rows:
        b, o = _median_rate(boto_fn), _median_rate(obs_fn)
        print(f"{title:36} {b:9.1f} {o:9.1f} {o / b:13.2f}x")
    print(f"load average: {os.getloadavg()}")
