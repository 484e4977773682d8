"""Helpers for the inference keeper's tests: a three-miner route, its escrow, and the steps of a session."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nesachain.modules.inference import genesis
from nesachain.modules.inference.keeper import InferenceKeeper
from nesachain.modules.inference.types import Session, max_cost, result_commitment, verdict_commitment
from nesachain.store import CacheStore, CommitStore
from nesachain.types.context import Context
from nesachain.types.errors import ChainError
from tests.modules.inference.conftest import CLIENT, MINERS, OWNER, PARAMS, PRICE, VALIDATORS, Env

ROUTE = [(MINERS[0], 0, 2), (MINERS[1], 2, 4), (MINERS[2], 4, 6)]
ESCROW = max_cost(PRICE, 6, 20, PARAMS.protocol_fee_ppm)
SALT = b"s" * 16
STANDINS = [b"\x13" * 20, b"\x14" * 20]  # miners that take over a dead one's blocks


def rejected(env: Env, err, fn, *args):
    """Run a keeper call on a branch; it must raise ``err`` and the store must not change."""
    before = env.store.writes()
    ctx = env.branch()
    with pytest.raises(ChainError) as info:
        fn(ctx, *args)
    assert info.value.error == err, info.value.log
    assert env.store.writes() == before
    return info.value


def open_and_close(env: Env, tokens: int = 10) -> int:
    s = env.keeper.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    env.keeper.close_session(env.ctx(), s, tokens)
    return s.id


def honest_steps(env: Env, sid: int, miner: bytes) -> int:
    """The steps an honest miner's log holds: a stand-in's replay of the tokens before it, then one a token."""
    s = env.keeper.session(env.store, sid)
    hop = s.hops[s.hop_index(miner)]
    return hop.from_token + hop.tokens


def commit_reveal(env: Env, sid: int, miner: bytes, *, reveal: bool = True, steps: int | None = None) -> bytes:
    """Commit (and reveal) ``miner``'s result: ``steps`` steps, the honest count unless given."""
    root = bytes([miner[0]]) * 32
    steps = honest_steps(env, sid, miner) if steps is None else steps
    env.keeper.commit_result(env.ctx(), sid, OWNER, miner, result_commitment(sid, miner, root, steps, SALT))
    if reveal:
        env.keeper.reveal_result(env.ctx(), sid, OWNER, miner, root, SALT, steps)
    return root


def challenged(env: Env) -> Session:
    """A closed session whose three miners committed and revealed, past its reveal deadline."""
    sid = open_and_close(env)
    for m in MINERS:
        commit_reveal(env, sid, m)
    env.end_block(env.keeper.session(env.store, sid).reveal_deadline)
    return env.keeper.session(env.store, sid)


def verdict(env: Env, sid: int, ch: int, validator: bytes, v: str) -> None:
    env.keeper.commit_verdict(env.ctx(), sid, ch, validator, verdict_commitment(sid, ch, validator, v, SALT))


def vote_round(env: Env, s: Session, votes: dict[int, dict[bytes, str]]) -> Session:
    """Validators commit, then reveal, ``votes`` (challenge index -> validator -> verdict) in ``s``'s open
    round; past the round's verdict deadline it is tallied. Returns the session then."""
    for ch, by in sorted(votes.items()):
        for v, vote in by.items():
            verdict(env, s.id, ch, v, vote)
    env.height = s.verdict_commit_deadline + 1
    for ch, by in sorted(votes.items()):
        for v, vote in by.items():
            env.keeper.reveal_verdict(env.ctx(), s.id, ch, v, vote, SALT)
    env.end_block(s.verdict_reveal_deadline)
    return env.keeper.session(env.store, s.id)


def open_challenges(s: Session) -> list[int]:
    return [i for i, c in enumerate(s.challenges) if c.is_open]


def all_match(env: Env, s: Session) -> Session:
    """Three of the four validators commit and reveal "match" on each of ``s``'s open challenges; past the
    verdict deadline the session settles."""
    return vote_round(env, s, {ch: dict.fromkeys(VALIDATORS[:3], "match") for ch in open_challenges(s)})


def genesis_round_trip(env: Env) -> tuple[dict[str, Any], CacheStore]:
    """Export ``env``'s inference state (as JSON), validate it, import it into a fresh store and check that
    exporting that gives the same state; (the state, the fresh store)."""
    state = json.loads(json.dumps(genesis.export_genesis(env.keeper, env.store)))
    genesis.validate_genesis(state)
    store = CacheStore(CommitStore())
    bank = type(env.bank)()
    k = InferenceKeeper(bank, env.miners, env.validators)
    genesis.init_genesis(k, bank, Context(store, "test", 1, entropy=b"e" * 32), state)
    assert json.loads(json.dumps(genesis.export_genesis(k, store))) == state
    return state, store
