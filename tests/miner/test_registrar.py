"""A miner refuses to serve shards whose hashes differ from the model registered on chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from nesachain.errors import NesaError
from nesachain.miner.registrar import ChainRegistrar
from nesachain.wallet.keyring import Keyring


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
