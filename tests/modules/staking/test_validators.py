"""Validators and delegations through the chain: genesis set, create-validator, delegate,
undelegate, unbonding, max_validators, and the two-height delay of validator updates."""

from __future__ import annotations

import pytest

from nesachain.modules.staking.msgs import MsgDelegate, MsgUndelegate
from nesachain.store.kv import CacheStore
from nesachain.types.address import decode_address
from nesachain.types.context import Context
from nesachain.types.errors import ChainError
from tests.modules.staking.conftest import (
    FEE,
    FUNDS,
    SELF_BOND,
    Harness,
    addr,
    cons_addr,
    cons_key,
    create_validator_msg,
    genesis,
    key,
    pub,
)


def test_genesis_validators_form_the_initial_set() -> None:
    h = Harness()
    assert sorted((u.pubkey, u.power) for u in h.genesis_updates) == sorted((pub(cons_key(i)), 10) for i in range(4))
    r = h.block()  # genesis state is committed with block 1
    assert r.validator_updates == ()  # nothing changed: nothing re-sent
    assert h.balance(key(0)) == FUNDS - SELF_BOND
    pool = h.q("staking/pool")
    assert pool["bonded"] == 4 * SELF_BOND and pool["invariant_holds"]
    assert h.validator(0)["status"] == "bonded" and h.validator(0)["power"] == 10


def test_create_validator_joins_two_heights_later(h: Harness) -> None:
    h.block()
    res = h.block([h.tx(key(5), [create_validator_msg(key(5), cons_key(5), "new", 25_000_000)])])
    assert res.tx_results[0].ok, res.tx_results[0].log
    assert [(u.pubkey, u.power) for u in res.validator_updates] == [(pub(cons_key(5)), 25)]
    joined_at = h.height
    h.blocks(2)
    assert cons_addr(cons_key(5)) not in h.cometbft_set(joined_at + 1)
    assert h.cometbft_set(joined_at + 2)[cons_addr(cons_key(5))] == 25
    v = h.validator(5)
    assert v["tokens"] == 25_000_000 and v["status"] == "bonded" and v["moniker"] == "new"
    assert h.balance(key(5)) == FUNDS - 25_000_000 - FEE
    events = [e.type for e in res.tx_results[0].events]
    assert "create_validator" in events and "delegate" in events


def test_delegate_and_undelegate_move_power_and_return_tokens_after_unbonding(h: Harness) -> None:
    op = addr(key(1))
    res = h.block([h.tx(key(6), [MsgDelegate(addr(key(6)), op, 5_000_000)])])
    assert res.tx_results[0].ok
    assert [(u.pubkey, u.power) for u in res.validator_updates] == [(pub(cons_key(1)), 15)]
    d = h.q("staking/delegations", delegator=addr(key(6)))["delegations"]
    assert d == [{"delegator": addr(key(6)), "validator": op, "shares": 5_000_000, "tokens": 5_000_000}]
    before = h.balance(key(6))
    res = h.block([h.tx(key(6), [MsgUndelegate(addr(key(6)), op, 5_000_000)])])
    assert res.tx_results[0].ok
    assert [(u.pubkey, u.power) for u in res.validator_updates] == [(pub(cons_key(1)), 10)]
    started = h.height
    entries = h.q("staking/unbonding", delegator=addr(key(6)))["entries"]
    assert entries[0]["amount"] == 5_000_000 and entries[0]["completion_height"] == started + 5
    assert h.balance(key(6)) == before - FEE
    h.blocks(4)
    assert h.balance(key(6)) == before - FEE  # not yet
    h.block()
    assert h.height == started + 5
    assert h.balance(key(6)) == before - FEE + 5_000_000
    assert h.q("staking/unbonding", delegator=addr(key(6)))["entries"] == []
    assert h.q("staking/delegations", delegator=addr(key(6)))["delegations"] == []


def test_undelegating_the_whole_self_bond_removes_the_validator_from_the_set(h: Harness) -> None:
    res = h.block([h.tx(key(3), [MsgUndelegate(addr(key(3)), addr(key(3)), SELF_BOND)])])
    assert res.tx_results[0].ok, res.tx_results[0].log
    assert [(u.pubkey, u.power) for u in res.validator_updates] == [(pub(cons_key(3)), 0)]
    h.blocks(2)
    assert cons_addr(cons_key(3)) not in h.cometbft_set()
    # below min_self_delegation: jailed (it may unjail once it bonds enough again)
    assert h.validator(3)["status"] == "jailed" and h.validator(3)["tokens"] == 0


def test_max_validators_keeps_the_strongest() -> None:
    h = Harness(genesis(n_vals=4, max_validators=3))
    assert len(h.genesis_updates) == 3
    h.block()
    # the weakest by tie-break (highest operator address) is out; a delegation brings it in
    powers = {v["operator"]: v["last_power"] for v in h.q("staking/validators")["validators"]}
    out = [op for op, p in powers.items() if p == 0]
    assert len(out) == 1
    res = h.block([h.tx(key(7), [MsgDelegate(addr(key(7)), out[0], 1_000_000)])])
    assert sorted(u.power for u in res.validator_updates) == [0, 11]


def test_slash_reaches_every_delegator_in_proportion(h: Harness) -> None:
    op = decode_address(addr(key(0)))
    delegator = decode_address(addr(key(6)))
    h.block([h.tx(key(6), [MsgDelegate(addr(key(6)), addr(key(0)), 3_333_333)])])
    keeper = h.chain.staking.keeper
    ctx = Context(CacheStore(h.chain.store), "x", h.height + 1)
    burned = keeper.slash(ctx, op, h.height, 100_000, "test")  # 10 % (both delegations were bonded then)
    total = SELF_BOND + 3_333_333
    assert burned == total // 10
    val = keeper.must_validator(ctx.store, op)
    assert val.tokens == total - total // 10
    worth_self = val.tokens_for(keeper.delegation(ctx.store, op, op))
    worth_other = val.tokens_for(keeper.delegation(ctx.store, delegator, op))
    assert worth_self == SELF_BOND - SELF_BOND // 10  # each delegation's cut rounds down, in its own shares
    assert worth_other == 3_333_333 - 3_333_333 // 10
    assert worth_self + worth_other <= val.tokens
    # undelegating the full worth burns shares rounded up and leaves the validator's rate intact
    rate_before = (val.tokens, val.shares)
    keeper.undelegate(ctx, delegator, op, worth_other)
    after = keeper.must_validator(ctx.store, op)
    assert after.tokens * rate_before[1] >= rate_before[0] * after.shares


def test_pool_counts_tokens_other_modules_hold(h: Harness) -> None:
    h.block()
    pool = h.q("staking/pool")
    assert pool["other_holders"] == {"inference": 2 * 1_000_000}  # the two genesis models' deposits
    assert pool["invariant_holds"]
    h.chain.staking.add_holder("escrow", lambda store: 0)
    pool = h.q("staking/pool")
    assert pool["other_holders"] == {"escrow": 0, "inference": 2_000_000} and pool["invariant_holds"]


def test_delegation_too_small_for_a_share_is_refused(h: Harness) -> None:
    h.block()
    op = decode_address(addr(key(0)))
    ctx = Context(CacheStore(h.chain.store), "x", 1)
    keeper = h.chain.staking.keeper
    keeper.set_validator(ctx.store, keeper.must_validator(ctx.store, op).with_(tokens=SELF_BOND, shares=100))
    with pytest.raises(ChainError) as err:
        keeper.delegate(ctx, decode_address(addr(key(6))), op, 1)
    assert (err.value.codespace, err.value.code) == ("staking", 15)
