"""Verifier incentives: validators whose revealed verdict agrees with the decided outcome share a part of the
session's protocol fee, by power; misses (no verdict) are counted per validator apart from abstains."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from nesachain.modules.inference import genesis
from nesachain.modules.inference.msgs import MsgRevealVerdict
from nesachain.modules.inference.queries import Queries
from nesachain.modules.inference.types import max_cost
from nesachain.types.address import encode_address
from nesachain.types.errors import ChainError
from tests.modules.inference.conftest import CLIENT, MINERS, OWNER, PARAMS, PRICE, VALIDATORS
from tests.modules.inference.keeper_support import ROUTE, commit_reveal, genesis_round_trip, vote_round

V0, V1, V2, V3 = VALIDATORS
P = replace(PARAMS, protocol_fee_ppm=500_000, verifier_reward_ppm=600_000)


def everyone(env) -> int:
    """Every unes the test can see: balances of client, owner and validators, what inference holds, the fee pool."""
    return (sum(env.balance(a) for a in (CLIENT, OWNER, *VALIDATORS)) + env.keeper.escrowed(env.store)
            + env.bank.fee_pool(env.store))


def test_agreeing_validators_share_the_fee_by_power_and_misses_are_counted_apart_from_abstains(env):
    """Before: no validator earned anything for its verdicts, not voting went uncounted, and a verifier could not
    say "abstain" on chain (the message refused it, and the tally had no place for it: a KeyError in end_block)."""
    env.keeper.set_params(env.store, P)
    env.validators.powers = {V0: 10, V1: 20, V2: 30, V3: 40}
    before = everyone(env)
    escrow = max_cost(PRICE, 6, 20, P.protocol_fee_ppm)
    s = env.keeper.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, escrow)
    env.keeper.close_session(env.ctx(), s, 20)
    for m in MINERS:
        commit_reveal(env, s.id, m)
    env.end_block(env.keeper.session(env.store, s.id).reveal_deadline)
    s = env.keeper.session(env.store, s.id)
    assert len(s.challenges) == 3
    votes = {
        0: {V0: "abstain", V1: "match", V2: "match", V3: "match"},  # match: 90 of 100
        1: {V1: "match", V2: "mismatch", V3: "mismatch"},  # mismatch: 70 of 100; V0 missed it
        2: dict.fromkeys(VALIDATORS, "match"),
    }
    s = vote_round(env, s, votes)
    assert s.status == "settled" and [c.outcome for c in s.challenges] == ["match", "mismatch", "match"]
    paid = sum(h.paid for h in s.hops)
    assert paid == 2 * (2 * 20 * PRICE) and s.fee == paid // 2  # the mismatched hop is unpaid
    part = s.fee * P.verifier_reward_ppm // 1_000_000 // 3  # each decided challenge's part
    agreeing = {0: {V1: 20, V2: 30, V3: 40}, 1: {V2: 30, V3: 40}, 2: {V0: 10, V1: 20, V2: 30, V3: 40}}
    want = {v: sum(part * by[v] // sum(by.values()) for by in agreeing.values() if v in by) for v in VALIDATORS}
    assert all(want.values())
    assert {v: env.balance(v) for v in VALIDATORS} == want
    assert s.verifier_rewards == sum(want.values())
    assert env.bank.fee_pool(env.store) == s.fee - s.verifier_rewards
    assert everyone(env) == before
    q = Queries(env.keeper)
    got = {v: q.verifier_stats(env.store, {"validator": encode_address(v)}) for v in VALIDATORS}
    counts = {v: tuple(got[v][f] for f in ("challenges", "agreed", "disagreed", "undecided", "abstained", "missed"))
              for v in VALIDATORS}
    assert counts == {V0: (3, 1, 0, 0, 1, 1), V1: (3, 2, 1, 0, 0, 0), V2: (3, 3, 0, 0, 0, 0), V3: (3, 3, 0, 0, 0, 0)}
    assert {v: got[v]["rewards"] for v in VALIDATORS} == want
    page = q.verifier_stats(env.store, {"limit": 2})
    assert page["total"] == 4 and len(page["verifier_stats"]) == 2

    # genesis mirrors the counts
    state, _ = genesis_round_trip(env)
    twice = json.loads(json.dumps(state))
    twice["verifier_stats"].append(twice["verifier_stats"][0])
    with pytest.raises(ValueError, match="twice"):
        genesis.validate_genesis(twice)


def test_undecided_rounds_count_verdicts_apart_and_pay_no_verifier(env):
    """A verdict on a round that decided nothing is "undecided" for its validator, neither agreed nor disagreed;
    nobody is paid for it. Before: nothing was counted."""
    env.keeper.set_params(env.store, P)
    escrow = max_cost(PRICE, 6, 20, P.protocol_fee_ppm)
    s = env.keeper.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, escrow)
    env.keeper.close_session(env.ctx(), s, 10)
    for m in MINERS:
        commit_reveal(env, s.id, m)
    env.end_block(env.keeper.session(env.store, s.id).reveal_deadline)
    s = env.keeper.session(env.store, s.id)
    s = vote_round(env, s, {0: {V0: "mismatch"}, 1: dict.fromkeys(VALIDATORS[:3], "match"),
                            2: dict.fromkeys(VALIDATORS[:3], "match")})
    assert s.challenges[0].outcome == "undecided"
    st = Queries(env.keeper).verifier_stats(env.store, {"validator": encode_address(V0)})
    assert (st["challenges"], st["agreed"], st["undecided"], st["missed"]) == (3, 2, 1, 0)
    st3 = Queries(env.keeper).verifier_stats(env.store, {"validator": encode_address(V3)})
    assert (st3["challenges"], st3["missed"]) == (3, 3)


@pytest.mark.parametrize(("verdict", "ok"), [("match", True), ("mismatch", True), ("abstain", True),
                                             ("maybe", False), ("", False)])
def test_reveal_verdict_message_takes_match_mismatch_or_abstain(verdict, ok):
    msg = MsgRevealVerdict(encode_address(V0), 1, 0, verdict, b"s" * 16)
    if ok:
        msg.validate_basic()
    else:
        with pytest.raises(ChainError):
            msg.validate_basic()
