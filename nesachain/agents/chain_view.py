"""What the agents read from the chain and how they send their txs (thin, synchronous RPC)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from nacl.signing import SigningKey

from nesachain.client.rpc import CometRPC
from nesachain.client.txs import SEQUENCE_RETRIES, TxOutcome, send_msgs
from nesachain.tx.msg import Msg
from nesachain.tx.tx import MAX_MSGS
from nesachain.types.sdk_errors import ErrNotFound

__all__ = ["ChainView", "in_phase", "send_batches"]

PAGE = 100


def send_batches(chain: Any, msgs: Sequence[Msg], event: str, log: Any) -> tuple[int, list[Msg]]:
    """Send ``msgs``, MAX_MSGS to a tx, through ``chain.send``. Returns the txs sent and the msgs that
    are finished with: taken by the chain, or refused for good. A msg whose tx lost a sequence race
    even after the retries is not finished (the caller keeps what it needs to send it again); a
    batch refused for any other reason is sent again one msg to a tx, so that one bad msg (a deadline
    just passed, say) does not take the others down with it."""
    batches = [list(msgs[i : i + MAX_MSGS]) for i in range(0, len(msgs), MAX_MSGS)]
    sent, finished = 0, []
    while batches:
        batch = batches.pop(0)
        out = chain.send(batch)
        sent += 1
        log.info(event, count=len(batch), code=out.code, log=out.log)
        if out.ok:
            finished += batch
        elif out.sequence_taken:
            continue
        elif len(batch) > 1:
            batches += [[m] for m in batch]
        else:
            finished += batch
    return sent, finished


def in_phase(chain: Any, session_id: int, status: str) -> bool:
    """Whether ``chain.session`` shows the session in ``status`` (an agent's salts of a session that has
    left its phase can go)."""
    s = chain.session(session_id)
    return s is not None and s["status"] == status


def _filters(status: str | None, miner: str | None) -> dict[str, str]:
    return {k: v for k, v in (("status", status), ("miner", miner)) if v is not None}


class ChainView:
    def __init__(self, rpc: CometRPC, key: SigningKey) -> None:
        self.rpc = rpc
        self.key = key
        self._chain_id: str | None = None

    def sessions(self, status: str | None = None, miner: str | None = None) -> Iterator[dict[str, Any]]:
        """Sessions of ``status`` (or "unsettled") naming ``miner``, oldest first; the chain filters them
        through its indexes, so a poll costs what matches, not every session ever opened."""
        offset = 0
        where = _filters(status, miner)
        while True:
            page = self.rpc.abci_query("inference/sessions", {"limit": PAGE, "offset": offset, **where}).json()
            yield from page["sessions"]
            offset += PAGE
            if offset >= page["total"]:
                return

    def count_sessions(self, status: str | None = None, miner: str | None = None) -> int:
        return int(self.rpc.abci_query("inference/sessions", {"limit": 1, **_filters(status, miner)}).json()["total"])

    def session(self, session_id: int) -> dict[str, Any] | None:
        res = self.rpc.abci_query("inference/session", {"session_id": session_id})
        if res.code == ErrNotFound.code and res.codespace == ErrNotFound.codespace:
            return None
        found: dict[str, Any] = res.json()
        return found

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
