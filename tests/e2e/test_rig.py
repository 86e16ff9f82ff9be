"""The test rig itself: a store the tests start leaves nothing behind when stopped."""

from __future__ import annotations

from pathlib import Path

from tests.support.seaweedfs import SeaweedS3


def _weed_logs_of(pid: int) -> list[Path]:
    # glog names its files <program>.<host>.<user>.log.<LEVEL>.<date>-<time>.<pid>
    return [p for p in Path("/tmp").glob("weed.*") if p.name.endswith(f".{pid}")]


def test_a_stopped_seaweedfs_leaves_no_process_socket_or_log() -> None:
    store = SeaweedS3()
    pid = store.proc.pid
    try:
        assert all(socket.exists() for socket in store.grpc_sockets)
        assert list(store.root.glob("weed.*.log.INFO.*")), "its logs go to its own directory"
    finally:
        store.stop()
    assert store.proc.returncode is not None, "the process is gone"
    assert not store.root.exists()
    assert [s for s in store.grpc_sockets if s.exists()] == []
    assert _weed_logs_of(pid) == []
