"""inference keeper: sessions, commit–reveal of results and verdicts, challenges, settlement, stand-ins and
their pay, indexes."""

from __future__ import annotations

import pytest

from nesachain.modules.inference import errors as E
from nesachain.modules.inference.types import result_commitment, verdict_commitment
from tests.modules.inference.conftest import CLIENT, MINERS, OWNER, PARAMS, PRICE, VALIDATORS
from tests.modules.inference.keeper_support import (
    ESCROW,
    ROUTE,
    SALT,
    STANDINS,
    all_match,
    challenged,
    commit_reveal,
    open_and_close,
    rejected,
    verdict,
    vote_round,
)


def test_open_session_rejections_change_nothing(env):
    k = env.keeper
    rejected(env, E.ErrUnknownModel, k.open_session, CLIENT, "nope", ROUTE, 20, ESCROW)
    rejected(env, E.ErrRouteGap, k.open_session, CLIENT, "toy", [ROUTE[0], ROUTE[2]], 20, ESCROW)
    rejected(env, E.ErrRouteGap, k.open_session, CLIENT, "toy", ROUTE[:2], 20, ESCROW)
    rejected(env, E.ErrEscrowTooSmall, k.open_session, CLIENT, "toy", ROUTE, 20, ESCROW - 1)
    from dataclasses import replace

    env.miners.miners[MINERS[1]] = replace(env.miners.miners[MINERS[1]], status="inactive")
    err = rejected(env, E.ErrMinerUnavailable, k.open_session, CLIENT, "toy", ROUTE, 20, ESCROW)
    assert "inactive" in err.log
    env.miners.miners[MINERS[1]] = replace(env.miners.miners[MINERS[1]], status="active", block_start=3)
    rejected(env, E.ErrMinerUnavailable, k.open_session, CLIENT, "toy", ROUTE, 20, ESCROW)


def test_honest_session_settles_with_exact_payments_and_conserved_tokens(env):
    total_before = env.balance(CLIENT) + env.balance(OWNER) + env.keeper.escrowed(env.store)
    sid = open_and_close(env, tokens=10)
    assert env.balance(CLIENT) == 10**9 - ESCROW
    for m in MINERS:
        commit_reveal(env, sid, m)
    s = env.keeper.session(env.store, sid)
    env.end_block(s.reveal_deadline)
    s = env.keeper.session(env.store, sid)
    assert s.status == "challenging" and len(s.challenges) == 3  # challenge_rate 100 %
    s = all_match(env, s)
    assert s.status == "settled"
    pay = 2 * 10 * PRICE  # blocks × tokens × price for each miner
    assert [h.paid for h in s.hops] == [pay] * 3
    assert s.fee == 3 * pay * PARAMS.protocol_fee_ppm // 1_000_000
    assert s.refund == ESCROW - 3 * pay - s.fee
    assert env.balance(CLIENT) == 10**9 - 3 * pay - s.fee
    assert env.bank.fee_pool(env.store) == s.fee
    assert [c.outcome for c in s.challenges] == ["match"] * 3
    assert env.miners.outcomes == [(m, False) for m in MINERS]  # 3/4 of the power said match
    total_after = env.balance(CLIENT) + env.balance(OWNER) + env.keeper.escrowed(env.store) + s.fee
    assert total_after == total_before


def test_two_thirds_mismatch_slashes_and_unpays_only_the_cheat(env):
    s = challenged(env)
    sid = s.id
    cheat = next(i for i, c in enumerate(s.challenges) if s.hops[c.hop].miner == MINERS[1])
    for ch in range(3):
        for v in VALIDATORS:
            verdict(env, sid, ch, v, "mismatch" if ch == cheat else "match")
    env.height = s.verdict_commit_deadline + 1
    for ch in range(3):
        for v in VALIDATORS:
            env.keeper.reveal_verdict(env.ctx(), sid, ch, v, "mismatch" if ch == cheat else "match", SALT)
    env.end_block(s.verdict_reveal_deadline)
    s = env.keeper.session(env.store, sid)
    assert s.hops[1].failed == "challenge_mismatch" and s.hops[1].paid == 0
    assert s.hops[0].paid == s.hops[2].paid == 2 * 10 * PRICE
    assert env.miners.slashed == {MINERS[1]: 1000}
    assert (MINERS[1], True) in env.miners.outcomes


@pytest.mark.parametrize(("powers", "mismatch", "match", "outcome"), [
    ((10, 10, 10, 10), 2, 0, "contested"),  # 1/2 said mismatch, the rest did not reveal
    ((10, 10, 10, 10), 2, 2, "contested"),  # a split vote
    ((10, 10, 10), 1, 1, "undecided"),  # exactly 1/3 is not more than 1/3
    ((10, 10, 11), 1, 0, "undecided"),
    ((10, 10, 9), 1, 0, "contested"),  # 10 of 29
])
def test_more_than_one_third_mismatch_withholds_pay_without_slashing(env, powers, mismatch, match, outcome):
    """Contested: the miner is unpaid, not slashed, its reputation unchanged. Undecided: nothing is decided about
    it either, and its share waits in escrow for the next round (tests/modules/inference/test_challenges.py)."""
    env.validators.powers = dict(zip(VALIDATORS, powers, strict=False))
    s = challenged(env)
    votes = ["mismatch"] * mismatch + ["match"] * match
    everyone = dict.fromkeys(env.validators.powers, "match")
    s = vote_round(env, s, {0: dict(zip(VALIDATORS, votes, strict=False)), 1: everyone, 2: everyone})
    c = s.challenges[0]
    hop = s.hops[c.hop]
    assert c.outcome == outcome and c.mismatch_power == 10 * mismatch
    assert not env.miners.slashed and all(m != hop.miner for m, _ in env.miners.outcomes)  # no reputation change
    pay = 2 * 10 * PRICE
    if outcome == "contested":
        assert s.status == "settled" and hop.failed == "challenge_contested" and hop.paid == 0
        assert sorted(h.paid for h in s.hops) == [0, pay, pay]
        assert s.refund == ESCROW - sum(h.paid for h in s.hops) - s.fee
        assert env.balance(CLIENT) == 10**9 - ESCROW + s.refund
    else:
        assert s.status == "challenging" and not hop.failed and len(s.challenges) == 4
        assert s.challenges[3].hop == c.hop and s.challenges[3].round == 2


def test_commit_without_reveal_is_penalized_and_unpaid(env):
    sid = open_and_close(env)
    commit_reveal(env, sid, MINERS[0])
    commit_reveal(env, sid, MINERS[1], reveal=False)
    s = env.keeper.session(env.store, sid)
    env.end_block(s.reveal_deadline)
    s = env.keeper.session(env.store, sid)
    assert [h.failed for h in s.hops] == ["", "no_reveal", "no_commit"]
    assert (MINERS[1], True) in env.miners.outcomes and (MINERS[2], True) in env.miners.outcomes


def test_result_reveal_rejections(env):
    k = env.keeper
    sid = open_and_close(env)
    root = b"r" * 32
    k.commit_result(env.ctx(), sid, OWNER, MINERS[0], result_commitment(sid, MINERS[0], root, 5, SALT))
    rejected(env, E.ErrRevealMismatch, k.reveal_result, sid, OWNER, MINERS[0], b"x" * 32, SALT, 5)
    rejected(env, E.ErrRevealMismatch, k.reveal_result, sid, OWNER, MINERS[0], root, SALT, 10)  # not the count
    rejected(env, E.ErrAlreadyCommitted, k.commit_result, sid, OWNER, MINERS[0], b"c" * 32)
    rejected(env, E.ErrUnauthorizedMiner, k.commit_result, sid, CLIENT, MINERS[1], b"c" * 32)
    rejected(env, E.ErrNotInRoute, k.commit_result, sid, OWNER, b"\x99" * 20, b"c" * 32)
    s = k.session(env.store, sid)
    env.height = s.reveal_deadline + 1
    rejected(env, E.ErrDeadlinePassed, k.reveal_result, sid, OWNER, MINERS[0], root, SALT, 5)


def test_verdict_rejections_and_no_copying(env):
    k = env.keeper
    sid = open_and_close(env)
    for m in MINERS:
        commit_reveal(env, sid, m)
    s = k.session(env.store, sid)
    env.end_block(s.reveal_deadline)
    s = k.session(env.store, sid)
    rejected(env, E.ErrNotValidator, k.commit_verdict, sid, 0, b"\x77" * 20, b"c" * 32)
    verdict(env, sid, 0, VALIDATORS[0], "mismatch")
    rejected(env, E.ErrAlreadyCommitted, k.commit_verdict, sid, 0, VALIDATORS[0], b"c" * 32)
    rejected(env, E.ErrUnknownChallenge, k.commit_verdict, sid, 9, VALIDATORS[1], b"c" * 32)
    # validator 1 copies validator 0's commitment: it cannot reveal it as its own
    copied = s.challenges[0]
    k.commit_verdict(env.ctx(), sid, 0, VALIDATORS[1],
                     verdict_commitment(sid, 0, VALIDATORS[0], "mismatch", SALT))
    rejected(env, E.ErrWrongPhase, k.reveal_verdict, sid, 0, VALIDATORS[0], "mismatch", SALT)  # too early
    env.height = s.verdict_commit_deadline + 1
    rejected(env, E.ErrRevealMismatch, k.reveal_verdict, sid, 0, VALIDATORS[1], "mismatch", SALT)
    k.reveal_verdict(env.ctx(), sid, 0, VALIDATORS[0], "mismatch", SALT)
    rejected(env, E.ErrAlreadyCommitted, k.reveal_verdict, sid, 0, VALIDATORS[0], "mismatch", SALT)
    env.height = s.verdict_reveal_deadline + 1
    rejected(env, E.ErrDeadlinePassed, k.reveal_verdict, sid, 1, VALIDATORS[2], "match", SALT)
    del copied


def test_open_session_times_out_to_zero_tokens_and_full_refund(env):
    s = env.keeper.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    env.end_block(s.opened_height + PARAMS.session_timeout)
    s2 = env.keeper.session(env.store, s.id)
    assert s2.status == "committing" and s2.tokens == 0
    env.end_block(s2.reveal_deadline)
    s3 = env.keeper.session(env.store, s.id)
    assert s3.status == "settled" and s3.refund == ESCROW and env.balance(CLIENT) == 10**9
    assert env.miners.outcomes == []  # an unused session penalizes nobody


def test_session_indexes_follow_every_phase_and_stand_in_and_can_be_rebuilt(env):
    """The status and miner indexes answer exactly what a scan of every session would, at each phase;
    a chain whose sessions predate the indexes gets the same index entries from ``ensure_indexes``."""
    from nesachain.modules.inference import keys
    from nesachain.modules.inference.keeper import InferenceModels, session_ids
    from nesachain.modules.inference.types import STATUSES, UNSETTLED
    from nesachain.store import CacheStore, CommitStore
    from nesachain.store.kv import prefix_end
    from tests.modules.inference.conftest import FakeMiner

    k = env.keeper
    everyone = [*MINERS, *STANDINS, b"\x15" * 20]

    def check() -> None:
        every = list(k.sessions(env.store))
        for miner in (None, *everyone):
            for status in (None, *STATUSES, "unsettled"):
                want = [s.id for s in every
                        if (status is None or s.status == status or (status == "unsettled" and s.status in UNSETTLED))
                        and (miner is None or any(h.miner == miner for h in s.hops))]
                assert session_ids(env.store, status, miner) == want, (status, miner)
        for miner in everyone:
            busy = any(s.status in UNSETTLED and any(h.miner == miner for h in s.hops) for s in every)
            assert InferenceModels().miner_in_unsettled_session(env.store, miner) == busy

    for m in STANDINS:
        env.miners.miners[m] = FakeMiner(m, OWNER, 10_000, "toy", 2, 4)
    check()
    settled = challenged(env)  # a second session, carried to settlement below
    s = k.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    check()
    s = k.add_stand_in(env.ctx(), s, 1, STANDINS[0], 4, 1)
    check()
    s = k.close_session(env.ctx(), s, 10)
    check()
    assert all_match(env, settled).status == "settled"
    assert k.session(env.store, s.id).status == "settled"  # past its reveal deadline too: nobody committed
    check()
    k.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    open_and_close(env)
    assert [x.status for x in k.sessions(env.store)] == ["settled", "settled", "open", "committing"]
    check()

    def index(store) -> list[bytes]:
        return [key for p in (keys.BY_STATUS, keys.BY_MINER) for key, _ in store.iterate(p, prefix_end(p))]

    old = CacheStore(CommitStore())  # the same sessions written as before the indexes existed
    for sess in k.sessions(env.store):
        old.set(keys.session_key(sess.id), env.store.get(keys.session_key(sess.id)))
    assert index(old) == [] and k.ensure_indexes(old) == 4
    assert index(old) == index(env.store) and len(index(old)) == (1 + 3) + (1 + 4) + (1 + 3) + (1 + 3)
    assert k.ensure_indexes(old) == 0  # once only


def test_stand_ins_are_paid_for_the_tokens_they_served_and_a_dead_primary_is_penalized(env):
    from tests.modules.inference.conftest import FakeMiner

    for m in STANDINS:  # two more miners for blocks [2, 4), hop 1's
        env.miners.miners[m] = FakeMiner(m, OWNER, 10_000, "toy", 2, 4)
    k = env.keeper
    s = k.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    s = k.add_stand_in(env.ctx(), s, 1, STANDINS[0], 4, 1)  # hop 1's miner died after 4 tokens
    s = k.add_stand_in(env.ctx(), s, 1, STANDINS[1], 7, 3)  # and its stand-in after 7 (attempt 2 was refused)
    s = k.close_session(env.ctx(), s, 10)
    assert [(h.tokens, h.stands_in_for) for h in s.hops] == [(10, -1), (4, -1), (10, -1), (3, 1), (3, 1)]
    for m in (MINERS[0], MINERS[2], *STANDINS):  # the dead miner commits nothing
        commit_reveal(env, s.id, m)
    env.end_block(s.reveal_deadline)
    s = k.session(env.store, s.id)
    assert s.hops[1].failed == "no_commit" and (MINERS[1], True) in env.miners.outcomes
    assert {s.hops[c.hop].miner for c in s.challenges} == {MINERS[0], MINERS[2], *STANDINS}
    s = all_match(env, s)
    assert s.status == "settled"
    assert [h.paid for h in s.hops] == [2 * n * PRICE for n in (10, 0, 10, 3, 3)]
    assert s.refund == ESCROW - sum(h.paid for h in s.hops) - s.fee  # hop 1's first 4 tokens go back


def test_stand_in_rejections_change_nothing(env):
    from tests.modules.inference.conftest import FakeMiner

    env.miners.miners[STANDINS[0]] = FakeMiner(STANDINS[0], OWNER, 10_000, "toy", 2, 4)
    env.miners.miners[STANDINS[1]] = FakeMiner(STANDINS[1], OWNER, 10_000, "toy", 2, 4, status="inactive")
    k = env.keeper
    s = k.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 3, STANDINS[0], 1, 1)  # the route has hops 0-2
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, MINERS[2], 1, 1)  # in the route already
    rejected(env, E.ErrMinerUnavailable, k.add_stand_in, s, 0, STANDINS[0], 1, 1)  # serves other blocks
    rejected(env, E.ErrMinerUnavailable, k.add_stand_in, s, 1, STANDINS[1], 1, 1)  # inactive
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[0], 21, 1)  # past max_tokens
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[0], 1, 0)  # attempt 0 is the route's
    s = k.add_stand_in(env.ctx(), s, 1, STANDINS[0], 5, 1)
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[0], 6, 2)  # twice
    env.miners.miners[STANDINS[1]] = FakeMiner(STANDINS[1], OWNER, 10_000, "toy", 2, 4)
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[1], 4, 2)  # before the last one took over
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[1], 6, 1)  # attempts only go up
    s = k.close_session(env.ctx(), s, 3)  # closed before the stand-in's token 5: it served none
    assert [h.tokens for h in s.hops] == [3, 3, 3, 0]
    rejected(env, E.ErrWrongPhase, k.add_stand_in, s, 1, STANDINS[1], 6, 2)
