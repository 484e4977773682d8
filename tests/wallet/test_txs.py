"""Awaiting a tx: one another node's block dropped (its sequence taken by another tx of the account)
is reported as such, and sent again by the wallet; one the indexer shows late is still found."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.signing import SigningKey

from nesachain.errors import RPCError
from nesachain.modules.bank.msgs import MsgSend
from nesachain.types.encoding import encode
from nesachain.wallet import txs
from nesachain.wallet.rpc import BroadcastResult, QueryResponse


class Node:
    """A node that takes every tx into its mempool; ``commit_after`` polls later the tx is in a
    block (None: never, because the account's sequence moves on without it)."""

    def __init__(self, sequence: int, commit_after: int | None, moves_after: int = 2) -> None:
        self.sequence, self.commit_after, self.moves_after = sequence, commit_after, moves_after
        self.polls, self.broadcasts = 0, 0

    def chain_id(self) -> str:
        return "test-1"

    def abci_query(self, path: str, data: dict[str, Any] | None = None, height: int = 0) -> QueryResponse:
        value = {"auth/params": b'{"min_fee": 10}'}.get(path)
        if path == "auth/account":
            moved = self.polls >= self.moves_after
            value = b'{"sequence": %d}' % (self.sequence + (1 if moved else 0))
        assert value is not None, path
        return QueryResponse(0, "", "", value, 1)

    def broadcast_tx_sync(self, tx: bytes) -> BroadcastResult:
        self.broadcasts += 1
        return BroadcastResult("AB" * 32, 0, "", "")

    def tx(self, tx_hash: str) -> dict[str, Any] | None:
        self.polls += 1
        if self.commit_after is not None and self.polls > self.commit_after:
            return {"height": "7", "tx_result": {"code": 0}}
        return None


@pytest.fixture(autouse=True)
def fast(monkeypatch: Any) -> None:
    monkeypatch.setattr(txs.time, "sleep", lambda s: None)


def test_a_tx_dropped_because_another_took_its_sequence_is_reported_as_a_sequence_refusal(monkeypatch):
    clock = iter(range(0, 10**6))
    monkeypatch.setattr(txs.time, "monotonic", lambda: float(next(clock)))
    node = Node(sequence=4, commit_after=None)
    out = txs.send_msgs(node, _key(), [_msg()], timeout=100)  # type: ignore[arg-type]
    assert out.sequence_taken and "took sequence 4" in out.log and node.broadcasts == 1


def test_a_tx_the_indexer_shows_after_the_sequence_moved_is_found(monkeypatch):
    clock = iter(x / 10 for x in range(0, 10**6))
    monkeypatch.setattr(txs.time, "monotonic", lambda: next(clock))
    node = Node(sequence=4, commit_after=8)  # the sequence moves at poll 2, the tx shows at poll 9
    out = txs.send_msgs(node, _key(), [_msg()], timeout=100)  # type: ignore[arg-type]
    assert out.ok and out.stage == "deliver" and out.height == 7


def test_a_tx_never_committed_and_no_sequence_moved_times_out(monkeypatch):
    clock = iter(range(0, 10**6))
    monkeypatch.setattr(txs.time, "monotonic", lambda: float(next(clock)))
    node = Node(sequence=4, commit_after=None, moves_after=10**9)
    with pytest.raises(RPCError, match="was not committed within 30s"):
        txs.send_msgs(node, _key(), [_msg()], timeout=30)  # type: ignore[arg-type]


def _key() -> SigningKey:
    return SigningKey(b"\x01" * 32)


def _msg() -> MsgSend:
    a = txs.account_of(_key())
    return MsgSend(a, a, 5)


def test_a_refused_sequence_is_signed_again_with_the_one_checktx_expects(monkeypatch):
    """Other processes' txs of the account wait in the mempool, which the committed sequence does not
    count: the retry takes the sequence CheckTx named instead of reading the stale one again."""
    from nesachain.tx.tx import decode_tx

    class Busy(Node):
        def __init__(self) -> None:
            super().__init__(sequence=4, commit_after=0)
            self.signed: list[int] = []

        def broadcast_tx_sync(self, tx: bytes) -> BroadcastResult:
            self.broadcasts += 1
            seq = decode_tx(tx, max_bytes=1 << 20).body.sequence
            self.signed.append(seq)
            if seq < 9:  # three txs of the account from elsewhere are pending
                return BroadcastResult("AB" * 32, 3, "sdk", f"account x expects sequence 9, tx has {seq}: bad sequence",
                                       encode({"expected_sequence": 9}))
            return BroadcastResult("AB" * 32, 0, "", "")

    node = Busy()
    out = txs.send_msgs(node, _key(), [_msg()], retries=4)  # type: ignore[arg-type]
    assert out.ok and node.signed == [4, 9]
    node = Busy()
    out = txs.send_msgs(node, _key(), [_msg()], retries=0)  # type: ignore[arg-type]
    assert out.sequence_taken and node.signed == [4]  # no retries asked for: none made
