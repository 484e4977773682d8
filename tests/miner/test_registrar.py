"""A miner refuses to serve shards whose hashes differ from the model registered on chain, and keeps the step
logs of its chain sessions until they settle (and the retention it is given after)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nesachain.errors import NesaError
from nesachain.miner import registrar as registrar_module
from nesachain.miner.registrar import ChainRegistrar
from nesachain.protocol.sessions import chain_session_name
from nesachain.wallet.keyring import Keyring
from tests.virtual_time import run_on_virtual_time


class FakeRPC:
    def __init__(self, hashes: list[str]) -> None:
        self.hashes = hashes

    def abci_query(self, path: str, data: dict) -> FakeRPC:
        assert path == "inference/model" and data == {"model_id": "toy"}
        return self

    def json(self) -> dict:
        return {"block_hashes": self.hashes}


def registrar(tmp_path: Path) -> ChainRegistrar:
    return ChainRegistrar("http://127.0.0.1:1", Keyring(tmp_path, "test"), "owner", "miner", "toy", 10**6, 256,
                          tmp_path / "state.json")


def test_registrar_accepts_matching_hashes(tmp_path):
    info = {"blocks": [1, 3], "block_hashes": ["b" * 64, "c" * 64]}
    registrar(tmp_path).check_hashes(FakeRPC(["a" * 64, "b" * 64, "c" * 64]), info)  # type: ignore[arg-type]


def test_registrar_refuses_mismatching_block(tmp_path):
    info = {"blocks": [1, 3], "block_hashes": ["b" * 64, "x" * 64]}
    with pytest.raises(NesaError, match=r"blocks \[2\].*refusing to serve"):
        registrar(tmp_path).check_hashes(FakeRPC(["a" * 64, "b" * 64, "c" * 64]), info)  # type: ignore[arg-type]


class LogServer:
    """The two calls the pruner makes of a miner's server."""

    def __init__(self, names: list[str]) -> None:
        self.names = set(names)

    def logged_sessions(self) -> list[str]:
        return sorted(self.names)

    def forget_log(self, name: str) -> None:
        self.names.discard(name)


@pytest.mark.parametrize("keep", [0.0, 30.0])
def test_the_pruner_drops_unknown_logs_at_once_and_settled_ones_after_the_retention(tmp_path, monkeypatch, keep):
    settled, unsettled = chain_session_name(1, 0, 0), chain_session_name(2, 0, 0)
    statuses = {1: "settled", 2: "revealed"}
    monkeypatch.setattr(registrar_module.queries, "session",
                        lambda rpc, sid: {"status": statuses[sid]} if sid in statuses else None)
    server = LogServer([settled, unsettled, chain_session_name(9, 0, 0), "not-a-chain-name"])

    async def main() -> list[list[str]]:
        loop = asyncio.get_running_loop()
        reg = ChainRegistrar("http://127.0.0.1:1", Keyring(tmp_path, "test"), "owner", "miner", "toy", 10**6, 256,
                             tmp_path / "state.json", poll_s=1.0, keep_settled_logs_s=keep, clock=loop.time)
        task = asyncio.create_task(reg._prune(server, None))  # type: ignore[arg-type]
        seen = []
        for wait in (0.5, 20.0, 20.0):  # passes at t = 0, 10, 20, 30, 40
            await asyncio.sleep(wait)
            seen.append(server.logged_sessions())
        reg._stop.set()
        await task
        return seen

    first, at_20, at_40 = run_on_virtual_time(main())
    assert first == ([unsettled] if keep == 0 else [settled, unsettled])
    assert at_20 == first
    assert at_40 == [unsettled]  # a session still under challenge keeps its log
