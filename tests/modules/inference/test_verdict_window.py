"""Missed verdicts: a validator that misses more than its share of the last ``verdict_window`` challenges is
slashed ``miss_slash_ppm`` and jailed (x/slashing's downtime rule over challenges); abstaining is not missing."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from nesachain.modules.inference import genesis, verdict_window
from nesachain.modules.inference.params import Params
from nesachain.modules.inference.queries import Queries
from nesachain.types.address import encode_address
from tests.modules.inference.conftest import PARAMS, VALIDATORS, Env
from tests.modules.inference.keeper_support import challenged, genesis_round_trip, vote_round

V0, V1, V2, V3 = VALIDATORS
# 3 challenges a session; a full window is 2 sessions, and more than 3 misses in it jail
P = replace(PARAMS, verdict_window=6, min_verdict_share_ppm=500_000, miss_slash_ppm=100, verdict_jail_blocks=9)


def sessions(env: Env, n: int, v3: str | None) -> None:
    """``n`` sessions, each with three challenges that V0-V2 judge "match" and V3 judges ``v3`` (None: misses)."""
    for _ in range(n):
        s = challenged(env)
        votes = {ch: dict.fromkeys((V0, V1, V2), "match") | ({V3: v3} if v3 else {}) for ch in range(3)}
        s = vote_round(env, s, votes)
        assert s.status == "settled" and [c.outcome for c in s.challenges] == ["match"] * 3


def window_of(env: Env, v: bytes) -> dict[str, int]:
    got: dict[str, int] = Queries(env.keeper).verifier_stats(env.store, {"validator": encode_address(v)})["window"]
    return got


def test_verdict_window_validator_that_never_votes_is_slashed_and_jailed_after_a_full_window(env: Env) -> None:
    """Before: a validator that never revealed a verdict was only counted ("missed"); never voting cost nothing."""
    env.keeper.set_params(env.store, P)
    sessions(env, 1, None)
    assert env.validators.slashes == [] and window_of(env, V3) == {"challenges": 3, "missed": 3, "size": 6}
    sessions(env, 1, None)
    assert env.validators.slashes == [(V3, env.height - 1, 100, "missed_verdicts")]
    assert env.validators.jailed == {V3: env.height + 9}
    assert window_of(env, V3) == {"challenges": 0, "missed": 0, "size": 6}  # cleared with the jail
    # jailed, it is not expected to vote: more challenges count nothing against it
    sessions(env, 2, None)
    assert len(env.validators.slashes) == 1
    st = Queries(env.keeper).verifier_stats(env.store, {"validator": encode_address(V3)})
    assert (st["challenges"], st["missed"]) == (6, 6)


def test_verdict_window_abstaining_is_not_missing(env: Env) -> None:
    env.keeper.set_params(env.store, P)
    sessions(env, 3, "abstain")
    assert env.validators.slashes == [] and not env.validators.jailed
    st = Queries(env.keeper).verifier_stats(env.store, {"validator": encode_address(V3)})
    assert (st["abstained"], st["missed"], st["window"]["missed"]) == (9, 0, 0)


def test_verdict_window_validator_that_votes_is_not_jailed(env: Env) -> None:
    env.keeper.set_params(env.store, P)
    sessions(env, 3, "match")
    assert env.validators.slashes == [] and not env.validators.jailed
    assert window_of(env, V3) == {"challenges": 6, "missed": 0, "size": 6}


def test_verdict_window_slides_and_only_a_full_window_over_the_share_jails(env: Env) -> None:
    """Half missed (3 of 6) is allowed; the window slides, so old misses fall out as new verdicts come in."""
    env.keeper.set_params(env.store, P)
    sessions(env, 1, None)
    sessions(env, 1, "match")
    assert window_of(env, V3) == {"challenges": 6, "missed": 3, "size": 6}
    sessions(env, 1, "match")  # the three misses slide out
    assert window_of(env, V3)["missed"] == 0
    sessions(env, 1, None)
    assert window_of(env, V3)["missed"] == 3 and env.validators.slashes == []


def test_verdict_window_restarts_when_staking_says_the_validator_bonded_again(env: Env) -> None:
    env.keeper.set_params(env.store, P)
    sessions(env, 1, None)
    env.keeper.after_validator_bonded(env.ctx(), V3)  # what staking calls on unjail and on joining the set
    assert window_of(env, V3) == {"challenges": 0, "missed": 0, "size": 6}
    sessions(env, 1, None)
    assert env.validators.slashes == []  # three misses in a window not yet full


def test_verdict_window_genesis_round_trip_keeps_windows(env: Env) -> None:
    env.keeper.set_params(env.store, P)
    sessions(env, 1, None)
    state, store = genesis_round_trip(env)
    assert [w["missed"] for w in state["verdict_windows"]] == [0, 0, 0, 3]
    assert verdict_window.window(store, V3) == verdict_window.window(env.store, V3)
    for bad, match in [({"bitmap": "0700"}, "6 bits"), ({"missed": 2}, "does not match"), ({"extra": 1}, "exactly")]:
        broken = json.loads(json.dumps(state))
        broken["verdict_windows"][3] |= bad
        with pytest.raises(ValueError, match=match):
            genesis.validate_genesis(broken)
    twice = json.loads(json.dumps(state))
    twice["verdict_windows"].append(twice["verdict_windows"][0])
    with pytest.raises(ValueError, match="twice"):
        genesis.validate_genesis(twice)


@pytest.mark.parametrize(("change", "ok"), [({"verdict_window": 0}, False), ({"verdict_window": 10_001}, False),
                                            ({"min_verdict_share_ppm": 1_000_001}, False),
                                            ({"miss_slash_ppm": 1_000_001}, False), ({"verdict_jail_blocks": 0}, True)])
def test_verdict_window_params_are_checked(change: dict[str, int], ok: bool) -> None:
    if ok:
        Params.from_dict(change).validate()
    else:
        with pytest.raises(ValueError):
            Params.from_dict(change)


def test_verdict_window_defaults_never_jail_a_verifier_that_misses_half() -> None:
    """An honest localnet verifier that is briefly slow misses a few challenges: the defaults allow half of 100."""
    p = Params()
    assert p.verdict_window >= 20 and p.max_missed_verdicts * 2 >= p.verdict_window
    assert p.miss_slash_ppm == 100
