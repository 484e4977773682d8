"""CometRPC's reading of CometBFT's answers (its JSON as the node sends it, without a node)."""

from __future__ import annotations

from typing import Any

import pytest

from nesachain.errors import RPCError
from nesachain.tx.ante import sequence_expected
from nesachain.types.encoding import encode
from nesachain.wallet.rpc import CometRPC


def _answering(monkeypatch: pytest.MonkeyPatch, result: dict[str, Any]) -> CometRPC:
    rpc = CometRPC("http://127.0.0.1:1")
    monkeypatch.setattr(rpc, "call", lambda method, **params: result)
    return rpc


def test_rpc_broadcast_tx_sync_reads_checktx_data_as_the_node_sends_it_hex(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode({"expected_sequence": 9})
    rpc = _answering(monkeypatch, {"code": 3, "codespace": "sdk", "log": "bad sequence", "hash": "AB" * 32,
                                   "data": data.hex().upper()})  # CometBFT's HexBytes: upper-case hex
    res = rpc.broadcast_tx_sync(b"tx")
    assert (res.code, res.data) == (3, data) and sequence_expected(res.data) == 9
    assert _answering(monkeypatch, {"code": 0, "hash": "AB" * 32, "data": ""}).broadcast_tx_sync(b"tx").data == b""


def test_rpc_broadcast_tx_sync_data_that_is_not_hex_is_an_rpc_error(monkeypatch: pytest.MonkeyPatch) -> None:
    rpc = _answering(monkeypatch, {"code": 0, "hash": "AB" * 32, "data": "gaA="})
    with pytest.raises(RPCError, match="not hex"):
        rpc.broadcast_tx_sync(b"tx")
