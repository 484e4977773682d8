"""Missed verdicts on a whole chain, in process: a validator that never reveals a verdict is slashed a little
(the stake burned, as downtime's) and jailed through staking; one that abstains or votes is not; its verdict
window restarts when it unjails."""

from __future__ import annotations

from typing import Any

from nesachain.modules.staking.msgs import MsgUnjail
from nesachain.types.events import Event
from tests.abci.busy_chain import INFERENCE_PARAMS, STAKING_PARAMS, BusyChain
from tests.modules.staking.conftest import Harness, addr, cons_addr, cons_key, genesis, key, register_miner_msg

# three challenges a session (every revealed hop is challenged): a full window is two sessions, and more than
# three misses in it jail
WINDOW = {"verdict_window": 6, "min_verdict_share_ppm": 500_000, "miss_slash_ppm": 10_000, "verdict_jail_blocks": 5}
SELF_BOND = 10_000_000


class MissChain(BusyChain):
    """Three miners of one model, four validators of equal power, the verdict window above."""

    def __init__(self) -> None:
        g = genesis(**STAKING_PARAMS)
        g["inference"]["params"] = {**INFERENCE_PARAMS, **WINDOW}
        Harness.__init__(self, g)
        self.events: list[Event] = []
        self.beating = [0, 1, 2]
        self.block()
        self.block([self.tx(key(o), [register_miner_msg(o, m, a, b)])
                    for m, (o, a, b) in {0: (4, 0, 10), 1: (5, 10, 20), 2: (6, 20, 30)}.items()])

    def session(self, sid: int) -> dict[str, Any]:
        result: dict[str, Any] = self.q("inference/session", session_id=sid)
        return result

    def judged(self, v3: str | None) -> None:
        """One session whose three hops are challenged; validators 0-2 judge "match", validator 3 ``v3``
        (None: nothing). It settles matched."""
        sid = self.open(0, 1, 2)
        self.close(sid, 10)
        closed = self.height
        self.commit(sid, 0, 1, 2)
        self.reveal(sid, 0, 1, 2)
        self.until(closed + 6)
        assert self.session(sid)["status"] == "challenging"
        votes = {(ch, v): "match" for ch in range(3) for v in range(3)} | {(ch, 3): v3 for ch in range(3) if v3}
        self.commit_verdicts(sid, votes)
        self.until(closed + 9)
        self.reveal_verdicts(sid, votes)
        while self.session(sid)["status"] != "settled":
            self.block()
        assert [c["outcome"] for c in self.session(sid)["challenges"]] == ["match"] * 3

    def stats(self, i: int) -> dict[str, Any]:
        result: dict[str, Any] = self.q("inference/verifier_stats", validator=addr(key(i)))
        return result


def test_verdict_misses_validator_that_never_votes_is_slashed_and_jailed() -> None:
    """Before (f079b6d): a validator whose verifier never revealed a verdict kept its stake and its seat (its
    misses were only counted), so running no verifier cost nothing: the old chain refused these params, and with
    them left out it was still "bonded" with all its tokens after six missed challenges."""
    c = MissChain()
    supply = c.q("staking/pool")["supply"]
    c.judged(None)
    assert c.validator(3)["status"] == "bonded" and c.stats(3)["window"]["missed"] == 3
    c.judged(None)
    v3 = c.validator(3)
    burned = SELF_BOND * WINDOW["miss_slash_ppm"] // 1_000_000
    assert v3["status"] == "jailed" and v3["tokens"] == SELF_BOND - burned
    assert c.q("staking/pool")["supply"] == supply - burned  # burned, as downtime's slash (the invariant holds)
    jailed = [e for e in c.events if e.type == "verifier_jailed"]
    assert len(jailed) == 1 and dict(jailed[0].attributes)["validator"] == addr(key(3))
    assert any(e.type == "slash" and dict(e.attributes)["reason"] == "missed_verdicts" for e in c.events)
    assert sum(e.type == "verdict_missed" for e in c.events) == 6
    c.blocks(3)
    assert cons_addr(cons_key(3)) not in c.cometbft_set()  # it left the validator set
    for i in range(3):
        assert c.validator(i)["status"] == "bonded" and c.validator(i)["tokens"] == SELF_BOND
        assert c.stats(i)["window"] == {"challenges": 6, "missed": 0, "size": 6}


def test_verdict_misses_validator_that_abstains_is_not_jailed() -> None:
    c = MissChain()
    for _ in range(3):
        c.judged("abstain")
    assert c.validator(3)["status"] == "bonded" and c.validator(3)["tokens"] == SELF_BOND
    st = c.stats(3)
    assert (st["abstained"], st["missed"], st["window"]["missed"]) == (9, 0, 0)


def test_verdict_misses_validator_that_votes_is_not_jailed() -> None:
    c = MissChain()
    for _ in range(3):
        c.judged("match")
    assert c.validator(3)["status"] == "bonded" and c.validator(3)["tokens"] == SELF_BOND
    assert c.stats(3)["agreed"] == 9 and c.stats(3)["window"]["missed"] == 0


def test_verdict_misses_window_restarts_when_the_validator_unjails() -> None:
    """Jailed for downtime with misses in its verdict window, it starts with none after unjailing (as x/slashing
    resets its missed-blocks counter): the old misses do not jail it again."""
    c = MissChain()
    c.judged(None)
    assert c.stats(3)["window"]["missed"] == 3
    for _ in range(13):
        c.block(absent=[cons_addr(cons_key(3))])
    assert c.validator(3)["status"] == "jailed"
    c.blocks(6)  # downtime_jail_blocks
    assert c.run(key(3), MsgUnjail(addr(key(3)))).ok
    assert c.stats(3)["window"] == {"challenges": 0, "missed": 0, "size": 6}
    c.blocks(3)
    c.judged(None)
    assert c.validator(3)["status"] == "bonded" and c.stats(3)["window"]["missed"] == 3
