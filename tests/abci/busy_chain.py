"""A chain driven through real txs and blocks until it holds every kind of state the modules keep:
sessions in each phase (open with a stand-in, committing, challenging with verdict commitments,
settled with a match, a mismatch slash and a penalized miner), jailed and tombstoned validators, an
unbonding delegation, miners active, inactive and unbonding, sequences, balances and the fee pool.

Every event the chain emits along the way is kept in ``BusyChain.events``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nesachain.abci.chain import FinalizeResult, TxResult
from nesachain.modules.bank.msgs import MsgSend
from nesachain.modules.inference.msgs import (
    MsgAddStandIn,
    MsgCloseSession,
    MsgCommitResult,
    MsgCommitVerdict,
    MsgOpenSession,
    MsgRevealResult,
    MsgRevealVerdict,
)
from nesachain.modules.inference.types import result_commitment, verdict_commitment
from nesachain.modules.staking.msgs import (
    MsgDelegate,
    MsgMinerHeartbeat,
    MsgUnbondMiner,
    MsgUndelegate,
)
from nesachain.tx.msg import Msg
from nesachain.types.address import decode_address
from nesachain.types.encoding import decode_canonical
from nesachain.types.events import Event
from tests.modules.staking.conftest import (
    MODEL,
    Harness,
    addr,
    cons_addr,
    cons_key,
    create_validator_msg,
    genesis,
    key,
    miner_key,
    register_miner_msg,
)

INFERENCE_PARAMS = {"commit_window": 3, "reveal_window": 3, "challenge_rate_ppm": 1_000_000,
                    "verdict_commit_window": 3, "verdict_reveal_window": 12, "session_timeout": 200}
STAKING_PARAMS = {"unbonding_blocks": 60, "miner_unbonding_blocks": 60, "miner_heartbeat_timeout": 20}
CLIENT = key(7)
SALT = b"s" * 16
# miner index -> (owner account, model, block range); m4 serves the small model and unbonds, m5 never beats
MINERS = {0: (4, MODEL, 0, 10), 1: (5, MODEL, 10, 20), 2: (6, MODEL, 20, 30), 3: (7, MODEL, 10, 20),
          4: (4, "minilm-l6", 0, 6), 5: (5, MODEL, 0, 30)}
BEATING = [0, 1, 2, 3, 4]  # miners whose owners send heartbeats


def miner(m: int) -> str:
    return addr(miner_key(m))


def route(*ms: int) -> list[list[Any]]:
    return [[miner(m), MINERS[m][2], MINERS[m][3]] for m in ms]


class BusyChain(Harness):
    def __init__(self) -> None:
        g = genesis(**STAKING_PARAMS)
        g["inference"]["params"] = INFERENCE_PARAMS
        super().__init__(g)
        self.events: list[Event] = []
        self.beating = list(BEATING)

    def block(self, txs: Sequence[bytes] = (), **kw: Any) -> FinalizeResult:
        if self.height % 8 == 7:  # heartbeats for the miners that keep beating
            txs = [*txs, *(self.tx(key(MINERS[m][0]), [MsgMinerHeartbeat(addr(key(MINERS[m][0])), miner(m))])
                           for m in self.beating)]
        res = super().block(txs, **kw)
        self.events += res.events
        for r in res.tx_results:
            assert r.code == 0, r.log
            self.events += r.events
        return res

    def ok(self, k: Any, *msgs: Msg) -> list[dict[str, Any]]:
        """One tx in its own block; it must succeed; returns its decoded responses."""
        r: TxResult = self.run(k, *msgs)
        out: list[dict[str, Any]] = decode_canonical(r.data)
        return out

    def until(self, height: int, **kw: Any) -> None:
        while self.height < height:
            self.block(**kw)

    def session(self, sid: int) -> dict[str, Any]:
        result: dict[str, Any] = self.q("inference/session", session_id=sid)
        return result

    # inference steps
    def open(self, *ms: int, max_tokens: int = 20) -> int:
        out = self.ok(CLIENT, MsgOpenSession(addr(CLIENT), MODEL, route(*ms), max_tokens, 10_000))
        return int(out[0]["session_id"])

    def close(self, sid: int, tokens: int) -> None:
        self.ok(CLIENT, MsgCloseSession(addr(CLIENT), sid, tokens))

    def commit(self, sid: int, *ms: int) -> None:
        txs = []
        for m in ms:
            c = result_commitment(sid, decode_address(miner(m)), bytes([m + 1]) * 32, 11, SALT)
            txs.append(self.tx(key(MINERS[m][0]), [MsgCommitResult(addr(key(MINERS[m][0])), miner(m), sid, c)]))
        self.block(txs)

    def reveal(self, sid: int, *ms: int) -> None:
        self.block([self.tx(key(MINERS[m][0]), [MsgRevealResult(addr(key(MINERS[m][0])), miner(m), sid,
                                                                bytes([m + 1]) * 32, SALT, 11)]) for m in ms])

    def commit_verdicts(self, sid: int, votes: dict[tuple[int, int], str]) -> None:
        """``votes``: (challenge, validator index) -> verdict."""
        self.block([self.tx(key(v), [MsgCommitVerdict(addr(key(v)), sid, ch, verdict_commitment(
            sid, ch, decode_address(addr(key(v))), verdict, SALT))]) for (ch, v), verdict in sorted(votes.items())])

    def reveal_verdicts(self, sid: int, votes: dict[tuple[int, int], str]) -> None:
        self.block([self.tx(key(v), [MsgRevealVerdict(addr(key(v)), sid, ch, verdict, SALT)])
                    for (ch, v), verdict in sorted(votes.items())])


def busy_chain() -> BusyChain:
    c = BusyChain()
    c.block()
    c.block([c.tx(key(o), [register_miner_msg(o, m, a, b, model=model)]) for m, (o, model, a, b) in MINERS.items()])
    c.block([c.tx(key(6), [MsgDelegate(addr(key(6)), addr(key(0)), 3_000_000)]),
             c.tx(key(5), [create_validator_msg(key(5), cons_key(5), "five", 12_000_000)]),
             c.tx(key(0), [MsgSend(addr(key(0)), addr(key(9)), 123_456)])])

    # session 1: settled; hop 0 matched, hop 1 judged a mismatch (slashed), hop 2 never committed
    s1 = c.open(0, 1, 2)
    c.close(s1, 10)
    closed = c.height
    c.commit(s1, 0, 1)
    c.reveal(s1, 0, 1)
    c.until(closed + 6)  # reveal deadline: both revealed hops challenged, hop 2 penalized
    assert c.session(s1)["status"] == "challenging"
    votes = {(0, v): "match" for v in range(4)} | {(1, v): "mismatch" for v in (0, 1, 2, 5)}
    c.commit_verdicts(s1, votes)
    c.until(closed + 9)
    c.reveal_verdicts(s1, votes)
    c.until(closed + 21)
    assert c.session(s1)["status"] == "settled"

    # staking trouble: validator 2 double-signs (tombstoned), validator 1 stops signing (jailed)
    c.block(misbehavior=[("duplicate_vote", cons_addr(cons_key(2)), 10, c.height)])
    for _ in range(13):
        c.block(absent=[cons_addr(cons_key(1))])
    c.ok(key(6), MsgUndelegate(addr(key(6)), addr(key(0)), 1_000_000))

    # session 2: challenging at the end, with verdict commitments and no reveal yet
    s2 = c.open(0, 3, 2)
    c.close(s2, 7)
    closed = c.height
    c.commit(s2, 0, 3, 2)
    c.reveal(s2, 0, 3, 2)
    c.until(closed + 6)
    c.commit_verdicts(s2, {(0, 0): "match", (0, 3): "match", (2, 0): "mismatch"})
    assert c.session(s2)["status"] == "challenging"

    # session 4: open, with a stand-in; session 3: committing (one miner committed, one revealed)
    s4 = c.open(0, 1, 2)
    c.ok(CLIENT, MsgAddStandIn(addr(CLIENT), s4, 1, miner(3), 2, 1))
    c.beating.remove(4)
    c.ok(key(4), MsgUnbondMiner(addr(key(4)), miner(4)))
    s3 = c.open(0, 1, 2)
    c.close(s3, 5)
    c.commit(s3, 0, 1)
    c.reveal(s3, 1)
    assert [c.session(s)["status"] for s in (s1, s2, s3, s4)] == ["settled", "challenging", "committing", "open"]
    return c
