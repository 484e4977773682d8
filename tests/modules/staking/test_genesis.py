"""staking genesis: validation, export -> import round trip, and two chains replaying the same
txs reach the same app hashes."""

from __future__ import annotations

import copy
import random

import pytest

from nesachain.abci.chain import Chain
from nesachain.modules.staking.genesis import validate_genesis
from nesachain.modules.staking.msgs import (
    MsgDelegate,
    MsgMinerHeartbeat,
    MsgUndelegate,
)
from nesachain.store import CommitStore
from tests.modules.staking.conftest import (
    CHAIN_ID,
    SELF_BOND,
    Harness,
    addr,
    cons_addr,
    cons_key,
    create_validator_msg,
    genesis,
    key,
    miner_key,
    pub,
    register_miner_msg,
)


def busy_history(h: Harness) -> None:
    """Blocks with every kind of staking state: delegations, unbondings, a jail, a tombstone, miners."""
    h.block([h.tx(key(5), [create_validator_msg(key(5), cons_key(5), "five", 12_000_000)]),
             h.tx(key(6), [MsgDelegate(addr(key(6)), addr(key(0)), 3_000_000)])])
    h.block([h.tx(key(4), [register_miner_msg(4, 0, 0, 15)]), h.tx(key(7), [register_miner_msg(7, 1, 15, 30)])])
    h.block(misbehavior=[("duplicate_vote", cons_addr(cons_key(2)), 10, 2)])
    for _ in range(12):
        h.block([h.tx(key(4), [MsgMinerHeartbeat(addr(key(4)), addr(miner_key(0)))])], absent=[cons_addr(cons_key(1))])
    h.block([h.tx(key(6), [MsgUndelegate(addr(key(6)), addr(key(0)), 1_000_000)])])


def test_genesis_round_trip_export_import_export_is_identical() -> None:
    a = Harness()
    busy_history(a)
    exported = a.chain.export_genesis()
    assert a.validator(1)["jailed"] and a.validator(2)["tombstoned"]
    assert exported["staking"]["unbonding"] and exported["staking"]["miners"]
    imported = copy.deepcopy(exported)
    b = Chain(CommitStore())
    _, updates = b.init_chain(CHAIN_ID, imported)
    b.finalize_block(1, [])
    # (block 1 of chain b runs end-blockers, but no unbonding or heartbeat deadline falls at height 1)
    b.commit()
    again = b.export_genesis()
    assert again["staking"] == exported["staking"]
    assert again["bank"] == exported["bank"]
    assert again["inference"] == exported["inference"]
    want = {pub(cons_key(i)): 10 for i in (0, 3)} | {pub(cons_key(5)): 12}
    assert {u.pubkey: u.power for u in updates} == {**want, pub(cons_key(0)): 12}


def test_default_genesis_is_valid_and_has_no_validators() -> None:
    c = Chain(CommitStore())
    _, updates = c.init_chain(CHAIN_ID, {})
    assert updates == []
    validate_genesis(c.staking.default_genesis())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(bogus=1), "unknown staking genesis fields"),
        (lambda s: s["params"].update(unbonding_blocks=0), "unbonding_blocks"),
        (lambda s: s["create_validators"][1].update(pubkey=s["create_validators"][0]["pubkey"]), "duplicate"),
        (lambda s: s["create_validators"][0].update(pubkey="AAAA"), "32 bytes"),
        (lambda s: s["create_validators"][0].update(amount=5), "below power_reduction"),
        (lambda s: s["params"].update(min_self_delegation=SELF_BOND + 1), "below min_self_delegation"),
        (lambda s: s["params"].update(max_entries=0), "max_entries"),
    ],
)
def test_validate_genesis_names_the_problem(mutate: object, message: str) -> None:
    state = genesis()["staking"]
    mutate(state)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        validate_genesis(state)


def test_genesis_self_bond_beyond_the_balance_fails_init_chain() -> None:
    g = genesis()
    g["staking"]["create_validators"][0]["amount"] = 10**13
    with pytest.raises(ValueError, match="insufficient funds"):
        Chain(CommitStore()).init_chain(CHAIN_ID, g)


def test_two_chains_replaying_the_same_staking_txs_agree_on_every_app_hash() -> None:
    a, b = Harness(), Harness()
    busy_history(a)
    busy_history(b)
    assert a.app_hashes == b.app_hashes
    rng = random.Random(7)
    for _ in range(15):
        i = rng.randrange(4, 8)
        amount = rng.randrange(1, 3) * 1_000_000
        for hh in (a, b):
            hh.block([hh.tx(key(i), [MsgDelegate(addr(key(i)), addr(key(0)), amount)])])
    assert a.app_hashes == b.app_hashes
    assert a.q("staking/validator", address=addr(key(0)))["tokens"] > SELF_BOND
