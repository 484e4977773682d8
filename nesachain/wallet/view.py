"""What the agents read from the chain and how they send their txs (thin, synchronous RPC)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from nacl.signing import SigningKey

from nesachain.tx.msg import Msg
from nesachain.tx.tx import MAX_MSGS
from nesachain.wallet import queries
from nesachain.wallet.rpc import CometRPC
from nesachain.wallet.txs import SEQUENCE_RETRIES, TxOutcome, send_msgs

__all__ = ["ChainView", "in_phase", "send_batches"]


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


class ChainView:
    """What an agent (a miner's chain and result agents, a validator's verifier) reads from the chain and how it
    sends: the typed queries of ``queries`` on one node, and txs signed with one key."""

    def __init__(self, rpc: CometRPC, key: SigningKey) -> None:
        self.rpc = rpc
        self.key = key
        self._chain_id: str | None = None

    def sessions(self, status: str | None = None, miner: str | None = None) -> Iterator[dict[str, Any]]:
        """Sessions of ``status`` (or "unsettled") naming ``miner``, oldest first."""
        return queries.iter_sessions(self.rpc, status, miner)

    def count_sessions(self, status: str | None = None, miner: str | None = None) -> int:
        return queries.count_sessions(self.rpc, status, miner)

    def session(self, session_id: int) -> dict[str, Any] | None:
        return queries.session(self.rpc, session_id)

    def height(self) -> int:
        return self.rpc.height()

    def chain_id(self) -> str:
        """The chain's id, asked of the node once (an ``RPCError`` until it answers)."""
        if self._chain_id is None:
            self._chain_id = self.rpc.chain_id()
        return self._chain_id

    def miner(self, address: str) -> dict[str, Any] | None:
        return queries.miner(self.rpc, address)

    def active_miners(self, model_id: str) -> list[dict[str, Any]]:
        return queries.miners(self.rpc, model_id, "active")

    def send(self, msgs: list[Msg]) -> TxOutcome:
        """Send and await a tx. The same account may also be signing in another process (a miner's
        result agent, another miner of the same owner, a validator's verifier), so a tx whose
        sequence another took is signed again (``send_msgs``' retries)."""
        if self._chain_id is None:
            self._chain_id = self.rpc.chain_id()
        return send_msgs(self.rpc, self.key, msgs, chain_id=self._chain_id, retries=SEQUENCE_RETRIES)
