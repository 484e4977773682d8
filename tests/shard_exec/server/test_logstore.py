"""The chain sessions' step-log store: names never reused, records back in order after a crash, a quota that
refuses new sessions but never drops a log already begun, pruning."""

from __future__ import annotations

from pathlib import Path

import pytest

from nesachain.protocol.errors import WireError
from nesachain.shard_exec.server.logstore import LogStore


def rec(step: int) -> dict[str, object]:
    return {"step": step, "position": step, "n_tokens": 1, "in_digest": "a" * 64, "out_digest": "b" * 64, "at": 1.0,
            "in": {"hidden": b"x" * 100}, "in_values": {}, "out": {"hidden": b"y" * 100}, "out_values": {}}


def test_logstore_keeps_records_in_order_and_never_reuses_a_name(tmp_path: Path) -> None:
    store = LogStore.create(tmp_path, 1 << 20)
    store.begin("chain-3-0-0")
    for i in range(3):
        store.append("chain-3-0-0", rec(i))
    assert [r["step"] for r in store.records("chain-3-0-0") or []] == [0, 1, 2]  # readable while open
    store.end("chain-3-0-0")
    with pytest.raises(WireError) as exc:
        store.begin("chain-3-0-0")
    assert exc.value.code == "name_used"
    again = LogStore.create(tmp_path, 1 << 20)  # a restart: what is on disk counts, names stay taken
    assert again.used_bytes == store.used_bytes > 0 and again.names() == ["chain-3-0-0"]
    with pytest.raises(WireError):
        again.begin("chain-3-0-0")
    assert store.records("chain-9-0-0") is None and store.records("../etc/passwd") is None


def test_logstore_drops_only_a_torn_last_record(tmp_path: Path) -> None:
    store = LogStore.create(tmp_path, 1 << 20)
    store.begin("chain-4-1-0")
    for i in range(2):
        store.append("chain-4-1-0", rec(i))
    store.end("chain-4-1-0")
    path = tmp_path / "chain-4-1-0.log"
    path.write_bytes(path.read_bytes() + b"\x50\x00\x00\x00\x81")  # a crash mid-append: 80 bytes announced, 1 there
    assert [r["step"] for r in store.records("chain-4-1-0") or []] == [0, 1]


def test_logstore_quota_refuses_new_sessions_but_not_a_log_begun(tmp_path: Path) -> None:
    store = LogStore.create(tmp_path, 500)
    store.begin("chain-5-0-0")
    for i in range(4):  # ~1 KB: past the quota, and still taken (its log is committed to)
        store.append("chain-5-0-0", rec(i))
    assert store.used_bytes > 500 and len(store.records("chain-5-0-0") or []) == 4
    with pytest.raises(WireError) as exc:
        store.begin("chain-6-0-0")
    assert exc.value.code == "storage_full"
    store.end("chain-5-0-0")
    store.delete("chain-5-0-0")
    assert store.used_bytes == 0 and store.names() == []
    store.begin("chain-6-0-0")  # room again


@pytest.mark.parametrize("name", ["x", "chain-1-0", "chain-a-0-0", "chain-1-0-0/../x", "../chain-1-0-0"])
def test_logstore_takes_only_chain_session_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(WireError) as exc:
        LogStore.create(tmp_path, 1 << 20).begin(name)
    assert exc.value.code == "bad_request"
