"""Pay only for verified work: step counts bound to the commitment and to the tokens served, challenges uniform
over every step, and undecided challenges that never pay but are drawn again, a bounded number of rounds."""

from __future__ import annotations

from collections import Counter

import pytest

from nesachain.modules.inference import errors as E
from nesachain.modules.inference.types import result_commitment
from tests.modules.inference.conftest import CLIENT, MINERS, OWNER, PARAMS, PRICE, VALIDATORS
from tests.modules.inference.keeper_support import (
    ESCROW,
    ROUTE,
    SALT,
    STANDINS,
    challenged,
    commit_reveal,
    genesis_round_trip,
    open_and_close,
    open_challenges,
    rejected,
    verdict,
    vote_round,
)

PAY = 2 * 10 * PRICE  # a hop of 2 blocks, 10 tokens


def held(env) -> int:
    """Every unes the test can see: the client's and owner's balances, what inference holds, the fee pool."""
    return env.balance(CLIENT) + env.balance(OWNER) + env.keeper.escrowed(env.store) + env.bank.fee_pool(env.store)


# step counts ---------------------------------------------------------------------------------------------------

def test_reveal_of_zero_steps_for_served_tokens_is_refused(env):
    """Before: a miner that served 10 tokens revealed n_steps = 0; it was never challenged (a challenge needs
    n_steps > 0) and was paid blocks × 10 tokens × price in full."""
    sid = open_and_close(env, tokens=10)
    root = b"r" * 32
    env.keeper.commit_result(env.ctx(), sid, OWNER, MINERS[0], result_commitment(sid, MINERS[0], root, 0, SALT))
    err = rejected(env, E.ErrInvalidStepCount, env.keeper.reveal_result, sid, OWNER, MINERS[0], root, SALT, 0)
    assert "cover none of the 10 tokens" in err.log
    s = env.keeper.session(env.store, sid)
    env.end_block(s.reveal_deadline)
    s = env.keeper.session(env.store, sid)
    assert s.hops[0].failed == "no_reveal" and (MINERS[0], True) in env.miners.outcomes


def test_the_commitment_binds_the_step_count(env):
    """Before: the commitment was H(session ‖ miner ‖ root ‖ salt), so a miner chose its step count at reveal,
    after seeing the session's tokens (or anything else)."""
    sid = open_and_close(env, tokens=10)
    root = b"r" * 32
    env.keeper.commit_result(env.ctx(), sid, OWNER, MINERS[0], result_commitment(sid, MINERS[0], root, 10, SALT))
    for other in (0, 1, 9, 11):
        rejected(env, E.ErrRevealMismatch, env.keeper.reveal_result, sid, OWNER, MINERS[0], root, SALT, other)
    env.keeper.reveal_result(env.ctx(), sid, OWNER, MINERS[0], root, SALT, 10)
    assert env.keeper.session(env.store, sid).hops[0].n_steps == 10


def test_a_hop_is_paid_only_for_the_tokens_its_steps_cover_and_challenged_on_them(env):
    """Before: hop 1 revealed n_steps = 1 for 10 tokens and was paid for all 10, every challenge landing on its
    prefill (step 0). Now it is paid for the 1 token its one step covers; the rest goes back to the client."""
    before = held(env)
    sid = open_and_close(env, tokens=10)
    for m, steps in zip(MINERS, (10, 1, 10), strict=True):
        commit_reveal(env, sid, m, steps=steps)
    s = env.keeper.session(env.store, sid)
    env.end_block(s.reveal_deadline)
    s = vote_round(env, env.keeper.session(env.store, sid),
                   {ch: dict.fromkeys(VALIDATORS, "match") for ch in range(3)})
    assert s.status == "settled"
    assert [h.paid for h in s.hops] == [PAY, 2 * 1 * PRICE, PAY]
    assert s.refund == ESCROW - (2 * PAY + 2 * PRICE) - s.fee
    assert held(env) == before


def test_step_counts_a_session_cannot_hold_are_refused_and_a_stand_in_counts_its_replay(env):
    """Before: any n_steps up to 2^21 was taken whatever the session's max_tokens (20), and a stand-in that took
    over at token 4 could reveal a log of 2 steps (none of them its own) and be paid for its tokens."""
    from tests.modules.inference.conftest import FakeMiner

    env.miners.miners[STANDINS[0]] = FakeMiner(STANDINS[0], OWNER, 10_000, "toy", 2, 4)
    k = env.keeper
    s = k.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    s = k.add_stand_in(env.ctx(), s, 1, STANDINS[0], 4, 1)
    s = k.close_session(env.ctx(), s, 10)
    root = b"r" * 32
    for miner, steps in ((MINERS[0], 21), (STANDINS[0], 4)):
        k.commit_result(env.ctx(), s.id, OWNER, miner, result_commitment(s.id, miner, root, steps, SALT))
        rejected(env, E.ErrInvalidStepCount, k.reveal_result, s.id, OWNER, miner, root, SALT, steps)
    commit_reveal(env, s.id, MINERS[1], steps=5)  # it served tokens 0-3 and logged the step it was failed over at
    commit_reveal(env, s.id, MINERS[2])  # 10
    s = k.session(env.store, s.id)
    assert [h.proven_tokens for h in s.hops] == [0, 4, 10, 0]


@pytest.mark.parametrize("n_steps", [2, 7, 16])
def test_challenged_steps_are_uniform_over_every_step_decode_steps_included(env, n_steps):
    """Each step of [0, n_steps) is challenged about as often as any other (over 240 sessions: within ±60 % of
    the mean, and every step at least once). Before: the draw was the same (64 random bits mod n_steps); what let
    a miner keep every challenge on its prefill was the step count it chose at reveal (above)."""
    env.validators.powers = {VALIDATORS[0]: 10}
    steps: Counter[int] = Counter()
    for _ in range(80):
        sid = open_and_close(env, tokens=n_steps)
        for m in MINERS:
            commit_reveal(env, sid, m)
        env.end_block(env.keeper.session(env.store, sid).reveal_deadline)
        s = env.keeper.session(env.store, sid)
        steps.update(c.step for c in s.challenges)
        env.height += 1  # another block: other entropy
        env.ctx = _entropy_of_height(env)
    assert sorted(steps) == list(range(n_steps))
    mean = 240 / n_steps
    assert all(0.4 * mean <= n <= 1.6 * mean for n in steps.values()), steps


def _entropy_of_height(env):
    """The env's ``ctx`` with block entropy that changes with the height, as a chain's does."""
    from nesachain.types.context import Context

    def ctx(height=None):
        h = env.height if height is None else height
        return Context(env.store, "test", h, entropy=h.to_bytes(32, "big"))

    return ctx


# undecided challenges ------------------------------------------------------------------------------------------

def test_an_undecided_challenge_never_pays_and_draws_a_new_challenge_of_the_same_hop(env):
    """Before: a challenge short of both thresholds ("undecided", here: nobody voted on hop 0's) settled the
    session at once and paid the miner in full."""
    s = challenged(env)
    first = s.challenges[0]
    s = vote_round(env, s, {1: dict.fromkeys(VALIDATORS, "match"), 2: dict.fromkeys(VALIDATORS, "match")})
    assert s.status == "challenging" and [c.outcome for c in s.challenges] == ["undecided", "match", "match", ""]
    again = s.challenges[3]
    assert (again.hop, again.round) == (first.hop, 2)
    p = PARAMS
    assert (again.commit_deadline, again.reveal_deadline) == (
        env.height + p.verdict_commit_window, env.height + p.verdict_commit_window + p.verdict_reveal_window)
    assert (s.verdict_commit_deadline, s.verdict_reveal_deadline) == (again.commit_deadline, again.reveal_deadline)
    assert all(h.paid == 0 for h in s.hops) and env.keeper.escrowed(env.store) == ESCROW + 100  # + the deposit
    # the first round's challenges take no more verdicts; the new one does, in its own window
    rejected(env, E.ErrWrongPhase, env.keeper.commit_verdict, s.id, 0, VALIDATORS[0], b"c" * 32)
    s = vote_round(env, s, {3: dict.fromkeys(VALIDATORS[:3], "match")})
    assert s.status == "settled" and [h.paid for h in s.hops] == [PAY] * 3
    assert not env.miners.slashed


def test_after_max_undecided_rounds_the_share_returns_to_the_client_without_a_slash(env):
    """Before: the first undecided round paid the miner."""
    before = held(env)
    s = challenged(env)
    hop = s.challenges[0].hop
    everyone = dict.fromkeys(VALIDATORS, "match")
    s = vote_round(env, s, {1: everyone, 2: everyone})  # round 1 on hop 0 decides nothing
    for round_ in range(2, PARAMS.max_undecided_rounds + 1):
        (ch,) = open_challenges(s)
        assert s.challenges[ch].round == round_ and s.status == "challenging"
        verdict(env, s.id, ch, VALIDATORS[0], "mismatch")  # 1/4 of the power, never revealed: undecided
        s = vote_round(env, s, {})
    assert s.status == "settled" and len(s.challenges) == 3 + PARAMS.max_undecided_rounds - 1
    assert [c.outcome for c in s.challenges if c.hop == hop] == ["undecided"] * PARAMS.max_undecided_rounds
    assert s.hops[hop].failed == "challenge_undecided" and s.hops[hop].paid == 0
    assert [h.paid for i, h in enumerate(s.hops) if i != hop] == [PAY, PAY]
    assert s.refund == ESCROW - 2 * PAY - s.fee
    assert not env.miners.slashed and all(m != s.hops[hop].miner for m, _ in env.miners.outcomes)
    assert held(env) == before


def test_each_rounds_challenge_has_a_fresh_step(env):
    """The rounds of one hop draw their steps from each deadline block's entropy (here: the height), so a miner
    cannot keep a verifiable step under challenge by stalling the verdicts. Before: there was one round."""
    env.ctx = _entropy_of_height(env)
    sid = open_and_close(env, tokens=20)
    for m in MINERS:
        commit_reveal(env, sid, m)
    env.end_block(env.keeper.session(env.store, sid).reveal_deadline)
    s = env.keeper.session(env.store, sid)
    for _ in range(PARAMS.max_undecided_rounds - 1):
        s = vote_round(env, s, {})
    by_hop = [[c.step for c in s.challenges if c.hop == h] for h in range(3)]
    assert all(len(steps) == PARAMS.max_undecided_rounds for steps in by_hop)
    assert any(len(set(steps)) > 1 for steps in by_hop), by_hop


def test_a_session_in_a_later_round_exports_and_imports_to_the_same_state(env):
    """Genesis mirrors a session between rounds: the tallied round's outcomes, the open round-2 challenge with its
    own deadlines, the due schedule; a fresh chain imported from it exports the same and holds the same keys."""
    import json

    from nesachain.modules.inference import genesis

    s = challenged(env)
    s = vote_round(env, s, {1: dict.fromkeys(VALIDATORS, "match")})  # hops 0 and 2 go to round 2
    assert [c.round for c in s.challenges if c.is_open] == [2, 2]
    state, store = genesis_round_trip(env)
    mine = dict(env.store.iterate(b"inference/", b"inference0"))
    assert dict(store.iterate(b"inference/", b"inference0")) == mine
    bad = json.loads(json.dumps(state))
    bad["sessions"][0]["challenges"][3]["round"] = 0
    with pytest.raises(ValueError, match="round"):
        genesis.validate_genesis(bad)
