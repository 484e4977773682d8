"""Stand-ins for the wallet's access to a chain, shared by the tests of the agents that use it:
``FakeRPC`` (``nesachain.wallet.rpc.CometRPC`` over an in-process chain, each accepted tx in its own block)
and ``FakeChain`` (``nesachain.wallet.view.ChainView`` over a list of inference sessions), with the
sessions, step log and refusals the result agent's and the verifier's tests show it."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey

from nesachain.types.address import encode_address
from nesachain.wallet.rpc import BroadcastResult, QueryResponse
from nesachain.wallet.txs import TxOutcome
from tests.modules.staking.conftest import CHAIN_ID, Harness


def locked(h: Harness) -> threading.RLock:
    """One lock around the harness: on a real event loop the agent's RPC calls run in worker threads while
    the test makes blocks in the loop's thread (on ``tests.virtual_time``'s loop they run inline). Made once
    per harness; its block, run and q take it too."""
    if "_lock" not in h.__dict__:
        lock = h.__dict__["_lock"] = threading.RLock()
        for name in ("block", "run", "q"):
            method = getattr(h, name)

            def under_lock(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
                with lock:
                    return _method(*args, **kwargs)

            setattr(h, name, under_lock)
    lock_: threading.RLock = h.__dict__["_lock"]
    return lock_


class FakeRPC:
    """Enough of CometRPC for the agent: each accepted tx is put in its own block at once."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.lock = locked(h)
        self.done: dict[str, dict[str, Any]] = {}

    def chain_id(self) -> str:
        return CHAIN_ID

    def height(self) -> int:
        return self.h.height

    def abci_query(self, path: str, data: dict[str, Any] | None = None, height: int = 0) -> QueryResponse:
        with self.lock:
            r = self.h.chain.query(path, json.dumps(data or {}).encode())
        return QueryResponse(r.code, r.codespace, r.log, r.value, r.height)

    def broadcast_tx_sync(self, tx: bytes) -> BroadcastResult:
        digest = hashlib.sha256(tx).hexdigest().upper()
        with self.lock:
            check = self.h.chain.check_tx(tx)
            if check.ok:
                res = self.h.block([tx]).tx_results[0]
                self.done[digest] = {"height": str(self.h.height),
                                     "tx_result": {"code": res.code, "codespace": res.codespace, "log": res.log}}
        return BroadcastResult(digest, check.code, check.codespace, check.log, check.data)

    def tx(self, tx_hash: str) -> dict[str, Any] | None:
        return self.done.get(tx_hash)


MINER = encode_address(b"\x31" * 20)
STEPS = [{"step": i, "position": i, "in_digest": hashlib.sha256(b"i%d" % i).hexdigest(),
          "out_digest": hashlib.sha256(b"o%d" % i).hexdigest()} for i in range(4)]


@dataclass
class FakeChain:
    key: SigningKey
    sessions_: list[dict[str, Any]]
    h: int = 10
    sent: list[Any] = field(default_factory=list)
    refuse: list[TxOutcome] = field(default_factory=list)  # the next sends' outcomes (then: taken)
    looked_up: list[int] = field(default_factory=list)

    def sessions(self, status: str | None = None):
        return [s for s in self.sessions_ if status is None or s["status"] == status]

    def session(self, session_id: int) -> dict[str, Any] | None:
        self.looked_up.append(session_id)
        return next((s for s in self.sessions_ if s["id"] == session_id), None)

    def height(self) -> int:
        return self.h

    def miner(self, address: str) -> dict[str, Any]:
        return {"endpoint": "miner:7000"}

    def send(self, msgs):
        if self.refuse:
            return self.refuse.pop(0)
        self.sent.extend(msgs)
        return TxOutcome("H", self.h, 0, "", "", "deliver")


RACED = TxOutcome("H", 0, 3, "sdk", "account x expects sequence 9, tx has 8: invalid sequence", "check")
LATE = TxOutcome("H", 11, 14, "inference", "reveal deadline was height 10", "deliver")


def session(status: str, **over: Any) -> dict[str, Any]:
    hop = {"miner": MINER, "start": 0, "end": 2, "commitment": "", "root": "", "n_steps": 0, "revealed": False,
           "stands_in_for": -1, "attempt": 0, "tokens": 4}
    s = {"id": 7, "status": status, "tokens": 4, "model_id": "toy", "hops": [hop], "challenges": [],
         "verdict_commit_deadline": 20, "verdict_reveal_deadline": 30}
    s.update(over)
    return s
