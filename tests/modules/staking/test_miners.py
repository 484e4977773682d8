"""Miners: register, heartbeat, inactivity, update (moving blocks), unbond, reputation and slash
hooks for the inference module."""

from __future__ import annotations

import dataclasses

import pytest

from nesachain.modules.staking.errors import CODESPACE
from nesachain.modules.staking.msgs import MsgMinerHeartbeat, MsgUnbondMiner, MsgUpdateMiner
from nesachain.store.kv import CacheStore
from nesachain.types.address import decode_address
from nesachain.types.context import Context
from nesachain.types.errors import ChainError
from tests.modules.staking.conftest import FEE, FUNDS, Harness, addr, key, miner_key, register_miner_msg


def test_three_miners_register_and_one_without_heartbeats_turns_inactive(h: Harness) -> None:
    txs = [h.tx(key(4 + i), [register_miner_msg(4 + i, i, 10 * i, 10 * i + 10)]) for i in range(3)]
    res = h.block(txs)
    assert all(r.ok for r in res.tx_results), [r.log for r in res.tx_results]
    listed = h.q("staking/miners", model_id="smollm2-135m")["miners"]
    assert len(listed) == 3 and {m["status"] for m in listed} == {"active"}
    assert {(m["block_start"], m["block_end"]) for m in listed} == {(0, 10), (10, 20), (20, 30)}
    assert all(m["reputation"] == 1_000_000 and m["reputation_decimal"] == "1.000000" for m in listed)
    registered = h.height
    inactive_at = 0
    for _ in range(10):  # miners 0 and 1 keep beating; miner 2 stopped
        r = h.block([h.tx(key(4 + i), [MsgMinerHeartbeat(addr(key(4 + i)), addr(miner_key(i)))]) for i in range(2)])
        if any(e.type == "miner_inactive" for e in r.events):
            inactive_at = h.height
            break
    assert inactive_at == registered + 5 + 1  # timeout 5 blocks without a heartbeat
    status = {m["miner"]: m["status"] for m in h.q("staking/miners")["miners"]}
    assert status == {addr(miner_key(0)): "active", addr(miner_key(1)): "active", addr(miner_key(2)): "inactive"}
    assert h.q("staking/miners", status="inactive")["total"] == 1
    # a heartbeat brings it back
    assert h.run(key(6), MsgMinerHeartbeat(addr(key(6)), addr(miner_key(2)))).ok
    assert h.q("staking/miner", address=addr(miner_key(2)))["status"] == "active"


def test_update_moves_blocks_inside_the_model_only(h: Harness) -> None:
    assert h.run(key(4), register_miner_msg(4, 0, 0, 10)).ok
    upd = MsgUpdateMiner(addr(key(4)), addr(miner_key(0)), "127.0.0.1:7100", 20, 30, 8192, 2500)
    assert h.run(key(4), upd).ok
    m = h.q("staking/miner", address=addr(miner_key(0)))
    assert (m["block_start"], m["block_end"], m["endpoint"], m["throughput"]) == (20, 30, "127.0.0.1:7100", 2500)
    bad = h.run(key(4), MsgUpdateMiner(addr(key(4)), addr(miner_key(0)), "127.0.0.1:7100", 25, 31, 8192, 2500))
    assert (bad.codespace, bad.code) == (CODESPACE, 21)


def test_unbond_returns_the_bond_after_the_miner_unbonding_period(h: Harness) -> None:
    assert h.run(key(4), register_miner_msg(4, 0, 0, 10, bond=3_000_000)).ok
    before = h.balance(key(4))
    assert h.run(key(4), MsgUnbondMiner(addr(key(4)), addr(miner_key(0)))).ok
    started = h.height
    assert h.q("staking/miner", address=addr(miner_key(0)))["status"] == "unbonding"
    beat = h.run(key(4), MsgMinerHeartbeat(addr(key(4)), addr(miner_key(0))))
    assert (beat.codespace, beat.code) == (CODESPACE, 27)
    while h.height < started + 4:
        h.block()
    assert h.balance(key(4)) == before - 2 * FEE + 3_000_000
    assert h.q("staking/miners")["total"] == 0
    assert h.q("staking/pool")["miner_bonds"] == 0


def test_inference_hooks_update_reputation_and_slash_the_bond(h: Harness) -> None:
    assert h.run(key(4), register_miner_msg(4, 0, 0, 10, bond=4_000_000)).ok
    miners = h.chain.staking.miners
    ctx = Context(CacheStore(h.chain.store), "x", h.height + 1)
    m = decode_address(addr(miner_key(0)))
    miners.record_miner_outcome(ctx, m, failed=True)
    miners.record_miner_outcome(ctx, m, failed=False)
    assert miners.must_miner(ctx.store, m).reputation == 808_000  # 1 * 0.8 * 1.01
    assert miners.slash_miner(ctx, m, 250_000) == 1_000_000
    got = miners.get_miner(ctx.store, m)
    assert got is not None and got.bond == 3_000_000
    assert h.chain.bank.supply(ctx.store) == h.chain.bank.supply(h.chain.store) - 1_000_000
    assert h.balance(key(4)) == FUNDS - FEE - 4_000_000


def test_miner_endpoint_must_be_host_and_port_on_register_and_update(h: Harness) -> None:
    """Clients dial a miner's endpoint: one they cannot dial is refused (code 28), the state unchanged."""
    for endpoint in ("::bad", "host", "host:0", "host:99999", "http://miner:7001", "-x:1", "[::1]"):
        with pytest.raises(ChainError) as exc:
            dataclasses.replace(register_miner_msg(4, 0, 0, 10), endpoint=endpoint).validate_basic()
        assert (exc.value.codespace, exc.value.code) == (CODESPACE, 28), endpoint
    bad = h.run(key(6), dataclasses.replace(register_miner_msg(6, 2, 0, 10), endpoint="::bad"))  # through a block
    assert (bad.codespace, bad.code) == (CODESPACE, 28) and h.q("staking/miners")["total"] == 0
    for i, endpoint in enumerate(("miner.example.org:443", "[::1]:7001")):
        assert h.run(key(4 + i), dataclasses.replace(register_miner_msg(4 + i, i, 0, 10), endpoint=endpoint)).ok
    with pytest.raises(ChainError) as exc:
        MsgUpdateMiner(addr(key(4)), addr(miner_key(0)), "miner.example.org", 0, 10, 8192, 2500).validate_basic()
    assert exc.value.code == 28
    assert h.q("staking/miner", address=addr(miner_key(0)))["endpoint"] == "miner.example.org:443"


def test_an_unbonding_miner_stays_until_every_session_naming_it_has_settled(h: Harness) -> None:
    """Its unbonding would otherwise end while a session it served can still challenge it: the
    verifiers could no longer find it, and slashing it halted the chain (an internal error in
    FinalizeBlock, which stops CometBFT)."""
    from nesachain.modules.inference.msgs import MsgCloseSession, MsgOpenSession

    h.block()
    for m, (start, end) in enumerate([(0, 10), (10, 20), (20, 30)]):
        assert h.run(key(4 + m), register_miner_msg(4 + m, m, start, end, bond=3_000_000)).ok
    route = [[addr(miner_key(m)), 10 * m, 10 * m + 10] for m in range(3)]
    assert h.run(key(7), MsgOpenSession(addr(key(7)), "smollm2-135m", route, 20, 10_000)).ok
    before = h.balance(key(5))
    assert h.run(key(5), MsgUnbondMiner(addr(key(5)), addr(miner_key(1)))).ok
    started = h.height
    while h.height < started + 10:  # past miner_unbonding_blocks (4): the session is still open
        h.block()
    m = h.q("staking/miner", address=addr(miner_key(1)))
    assert m["status"] == "unbonding" and m["unbond_height"] == h.height + 1 and m["bond"] == 3_000_000
    assert h.balance(key(5)) == before - FEE
    sessions = h.chain.inference.keeper
    assert h.chain.staking.miners.models.miner_in_unsettled_session(h.chain.store, decode_address(addr(miner_key(1))))
    # what a retiring miner asks the chain (its registrar waits for this count to reach 0)
    mine = {"miner": addr(miner_key(1))}
    assert h.q("inference/sessions", status="unsettled", **mine)["total"] == 1
    assert h.q("inference/sessions", status="open", **mine)["sessions"][0]["id"] == 1
    assert h.q("inference/sessions", status="settled", **mine)["total"] == 0
    assert h.q("inference/sessions", miner=addr(key(9)))["total"] == 0  # names no session
    # the client closes it early (its timeout stays in the due queue) and it settles
    assert h.run(key(7), MsgCloseSession(addr(key(7)), 1, 0)).ok
    while sessions.session(h.chain.store, 1).status != "settled":  # type: ignore[union-attr]
        h.block()
    h.block()
    assert h.balance(key(5)) == before - FEE + 3_000_000  # now the bond is back
    assert h.q("inference/sessions", status="unsettled", **mine)["total"] == 0
    assert [s["id"] for s in h.q("inference/sessions", status="settled", **mine)["sessions"]] == [1]
    assert addr(miner_key(1)) not in [x["miner"] for x in h.q("staking/miners")["miners"]]


def test_the_inference_hooks_leave_a_miner_that_is_gone_alone(h: Harness) -> None:
    miners = h.chain.staking.miners
    ctx = Context(CacheStore(h.chain.store), "x", h.height + 1)
    gone = decode_address(addr(miner_key(9)))
    miners.record_miner_outcome(ctx, gone, failed=True)
    assert miners.slash_miner(ctx, gone, 250_000) == 0
    assert ctx.store.writes() == {}
