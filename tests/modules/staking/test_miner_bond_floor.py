"""The miner bond floor: a miner that a slash leaves below ``min_miner_bond`` is inactive (no route, no stand-in)
until its owner tops it up; heartbeats and updates do not bring it back. Through the chain, from a real verdict."""

from __future__ import annotations

from typing import Any

from nesachain.modules.inference import errors as inference_errors
from nesachain.modules.inference.msgs import (
    MsgCloseSession,
    MsgCommitResult,
    MsgCommitVerdict,
    MsgOpenSession,
    MsgRevealResult,
    MsgRevealVerdict,
)
from nesachain.modules.inference.types import result_commitment, verdict_commitment
from nesachain.modules.staking import errors as staking_errors
from nesachain.modules.staking.msgs import MsgMinerHeartbeat, MsgUpdateMiner
from nesachain.types.address import decode_address
from tests.modules.staking.conftest import Harness, addr, genesis, key, miner_key, register_miner_msg

SALT = b"f" * 16
CLIENT = key(7)
RANGES = [(0, 10), (10, 20), (20, 30)]
INFERENCE = {"commit_window": 2, "reveal_window": 2, "challenge_rate_ppm": 1_000_000, "verdict_commit_window": 2,
             "verdict_reveal_window": 2, "slash_fraction_ppm": 100_000, "protocol_fee_ppm": 20_000,
             "session_timeout": 50, "min_model_deposit": 1_000_000, "max_route_hops": 8}


def route() -> list[list[Any]]:
    return [[addr(miner_key(m)), a, b] for m, (a, b) in enumerate(RANGES)]


def miner(h: Harness, m: int) -> dict[str, Any]:
    result: dict[str, Any] = h.q("staking/miner", address=addr(miner_key(m)))
    return result


def session(h: Harness, sid: int) -> dict[str, Any]:
    result: dict[str, Any] = h.q("inference/session", session_id=sid)
    return result


def slash_miner_1(h: Harness) -> list[str]:
    """A session whose three miners reveal 4 steps; every validator says "mismatch" on miner 1's challenge and
    "match" on the others'. Returns the event types of the blocks until it settled."""
    assert h.run(CLIENT, MsgOpenSession(addr(CLIENT), "smollm2-135m", route(), 20, 10_000)).ok
    sid = 1
    assert h.run(CLIENT, MsgCloseSession(addr(CLIENT), sid, 4)).ok
    roots = {m: bytes([m + 1]) * 32 for m in range(3)}
    h.block([h.tx(key(4 + m), [MsgCommitResult(addr(key(4 + m)), addr(miner_key(m)), sid, result_commitment(
        sid, decode_address(addr(miner_key(m))), roots[m], 4, SALT))]) for m in range(3)])
    h.block([h.tx(key(4 + m), [MsgRevealResult(addr(key(4 + m)), addr(miner_key(m)), sid, roots[m], SALT, 4)])
             for m in range(3)])
    while session(h, sid)["status"] == "committing":
        h.block()
    s = session(h, sid)
    votes = {(ch, v): "mismatch" if c["miner"] == addr(miner_key(1)) else "match"
             for ch, c in enumerate(s["challenges"]) for v in range(4)}
    h.block([h.tx(key(v), [MsgCommitVerdict(addr(key(v)), sid, ch, verdict_commitment(
        sid, ch, decode_address(addr(key(v))), verdict, SALT))]) for (ch, v), verdict in sorted(votes.items())])
    while h.height <= s["verdict_commit_deadline"]:
        h.block()
    revealed = h.block([h.tx(key(v), [MsgRevealVerdict(addr(key(v)), sid, ch, verdict, SALT)])
                        for (ch, v), verdict in sorted(votes.items())])
    assert all(r.ok for r in revealed.tx_results), [r.log for r in revealed.tx_results]
    events = [e.type for e in revealed.events]
    while session(h, sid)["status"] != "settled":
        events += [e.type for e in h.block().events]
    return events


def test_a_miner_slashed_below_the_bond_floor_is_inactive_until_its_owner_tops_it_up() -> None:
    """Before: a slash took miner 1 from 1.05 to 0.945 NES, under min_miner_bond (1 NES), and it stayed active:
    routable and paid, each further slash taking 10 % of less, so the penalty tended to zero."""
    app_state = genesis(miner_heartbeat_timeout=1000)  # no miner times out here
    app_state["inference"]["params"] = INFERENCE
    h = Harness(app_state)
    h.block()
    for m, (a, b) in enumerate(RANGES):
        assert h.run(key(4 + m), register_miner_msg(4 + m, m, a, b, bond=1_050_000 if m == 1 else 2_000_000)).ok
    events = slash_miner_1(h)
    assert "miner_inactive" in events
    m1 = miner(h, 1)
    assert (m1["bond"], m1["status"]) == (945_000, "inactive")
    assert [miner(h, m)["status"] for m in (0, 2)] == ["active", "active"]
    # neither a heartbeat nor an update brings it back, and nobody may route through it
    assert h.run(key(5), MsgMinerHeartbeat(addr(key(5)), addr(miner_key(1)))).ok
    assert h.run(key(5), MsgUpdateMiner(addr(key(5)), addr(miner_key(1)), "127.0.0.1:7101", 10, 20, 4096, 900)).ok
    assert miner(h, 1)["status"] == "inactive"
    assert addr(miner_key(1)) not in [x["miner"] for x in h.q("staking/miners", status="active")["miners"]]
    refused = h.run(CLIENT, MsgOpenSession(addr(CLIENT), "smollm2-135m", route(), 20, 10_000))
    assert (refused.codespace, refused.code) == ("inference", inference_errors.ErrMinerUnavailable.code)
    assert "inactive" in refused.log
    # a top-up short of the floor is refused; one that reaches it makes the miner active again
    short = h.run(key(5), register_miner_msg(5, 1, 10, 20, bond=54_999))
    assert (short.codespace, short.code) == ("staking", staking_errors.ErrMinerBondTooLow.code)
    balance = h.balance(key(5))
    assert h.run(key(5), register_miner_msg(5, 1, 10, 20, bond=55_000)).ok
    m1 = miner(h, 1)
    assert (m1["bond"], m1["status"], m1["reputation"]) == (1_000_000, "active", 800_000)
    assert h.balance(key(5)) == balance - 55_000 - 1000  # the top-up and the fee
    assert h.run(CLIENT, MsgOpenSession(addr(CLIENT), "smollm2-135m", route(), 20, 10_000)).ok
    # a miner at or above the floor cannot be registered again, by its owner or anyone
    again = h.run(key(5), register_miner_msg(5, 1, 10, 20, bond=1_000_000))
    assert (again.codespace, again.code) == ("staking", staking_errors.ErrMinerExists.code)


def test_a_miner_below_the_floor_exports_and_imports_to_the_same_state() -> None:
    """A miner below the floor is inactive with no heartbeat deadline queued, as an import rebuilds it: the
    imported chain holds the same staking keys and exports the same genesis."""
    import copy
    import json

    from nesachain.abci.chain import Chain
    from nesachain.store import CommitStore
    from tests.modules.staking.conftest import CHAIN_ID

    app_state = genesis(miner_heartbeat_timeout=1000)  # no miner times out here
    app_state["inference"]["params"] = INFERENCE
    h = Harness(app_state)
    h.block()
    for m, (a, b) in enumerate(RANGES):
        assert h.run(key(4 + m), register_miner_msg(4 + m, m, a, b, bond=1_050_000 if m == 1 else 2_000_000)).ok
    slash_miner_1(h)
    assert miner(h, 1)["status"] == "inactive"
    exported = json.loads(json.dumps(h.chain.export_genesis()))
    b = Chain(CommitStore())
    b.init_chain(CHAIN_ID, copy.deepcopy(exported), time_ns=1)
    assert dict(b._base_store().iterate(b"staking/", b"staking0")) == \
        dict(h.chain._base_store().iterate(b"staking/", b"staking0"))
    assert json.loads(json.dumps(b.export_genesis())) == exported
