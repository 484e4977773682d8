"""What the agents read from the chain and how they send their txs (thin, synchronous RPC)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nacl.signing import SigningKey

from nesachain.client.rpc import CometRPC
from nesachain.client.txs import SEQUENCE_RETRIES, TxOutcome, send_msgs
from nesachain.tx.msg import Msg

__all__ = ["ChainView"]

PAGE = 100


class ChainView:
    def __init__(self, rpc: CometRPC, key: SigningKey) -> None:
        self.rpc = rpc
        self.key = key
        self._chain_id: str | None = None

    def sessions(self, status: str | None = None, miner: str | None = None) -> Iterator[dict[str, Any]]:
        """Sessions of ``status`` (or "unsettled") naming ``miner``, oldest first; the chain filters them
        through its indexes, so a poll costs what matches, not every session ever opened."""
        offset = 0
        where = {k: v for k, v in (("status", status), ("miner", miner)) if v is not None}
        while True:
            page = self.rpc.abci_query("inference/sessions", {"limit": PAGE, "offset": offset, **where}).json()
            yield from page["sessions"]
            offset += PAGE
            if offset >= page["total"]:
                return

    def count_sessions(self, status: str | None = None, miner: str | None = None) -> int:
        where = {k: v for k, v in (("status", status), ("miner", miner)) if v is not None}
        return int(self.rpc.abci_query("inference/sessions", {"limit": 1, **where}).json()["total"])

    def height(self) -> int:
        return self.rpc.height()

    def miner(self, address: str) -> dict[str, Any]:
        res: dict[str, Any] = self.rpc.abci_query("staking/miner", {"address": address}).json()
        return res

    def active_miners(self, model_id: str) -> list[dict[str, Any]]:
        res = self.rpc.abci_query("staking/miners", {"model_id": model_id, "status": "active"}).json()
        miners: list[dict[str, Any]] = res["miners"]
        return miners

    def send(self, msgs: list[Msg]) -> TxOutcome:
        """Send and await a tx. The same account may also be signing in another process (a miner's
        result agent, another miner of the same owner, a validator's verifier), so a tx whose
        sequence another took is signed again (``send_msgs``' retries)."""
        if self._chain_id is None:
            self._chain_id = self.rpc.chain_id()
        return send_msgs(self.rpc, self.key, msgs, chain_id=self._chain_id, retries=SEQUENCE_RETRIES)
