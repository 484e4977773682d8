"""auth genesis: params and sequences, a pure validate naming what is wrong, import/export mirrored."""

from __future__ import annotations

from typing import Any

import pytest

from nesachain.modules.auth import genesis
from nesachain.modules.auth.keeper import AuthKeeper
from nesachain.store import CacheStore, CommitStore
from nesachain.types.address import encode_address
from nesachain.types.context import Context

A, B = encode_address(b"\x01" * 20), encode_address(b"\x02" * 20)


def state() -> dict[str, Any]:
    return {"params": {"min_fee": 7, "max_tx_bytes": 2048, "fee_per_byte": 2, "fee_per_msg": 30},
            "accounts": [{"address": A, "sequence": 3}, {"address": B, "sequence": 1}]}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: s.update(balances=[]), "unknown auth genesis fields"),
    (lambda s: s.update(params=[]), "auth.params must be a map"),
    (lambda s: s["params"].update(min_fee=-5), "min_fee"),
    (lambda s: s["params"].update(fee_per_byte=-1), "fee_per_byte"),
    (lambda s: s["params"].update(fee_per_msg=10**13), "fee_per_msg"),
    (lambda s: s.update(accounts={}), "auth.accounts must be a list"),
    (lambda s: s["accounts"][0].update(sequence=0), r"accounts\[0\].sequence"),
    (lambda s: s["accounts"][0].update(sequence=2**64), r"accounts\[0\].sequence"),
    (lambda s: s["accounts"][1].update(sequence=True), r"accounts\[1\].sequence"),
    (lambda s: s["accounts"][1].update(address="nesa1bogus"), r"accounts\[1\]"),
    (lambda s: s["accounts"][1].update(address=A), "duplicate address"),
    (lambda s: s["accounts"][0].pop("sequence"), "exactly address and sequence"),
])
def test_validate_genesis_bad_state_names_the_problem(mutate: Any, message: str) -> None:
    s = state()
    mutate(s)
    with pytest.raises(ValueError, match=message):
        genesis.validate_genesis(s)


def test_validate_genesis_default_and_params_only_templates_pass() -> None:
    genesis.validate_genesis(genesis.default_genesis())
    genesis.validate_genesis({"params": {"min_fee": 1000, "max_tx_bytes": 65536}})  # genesis/*.json's shape


def test_genesis_round_trip_init_export_init_gives_the_same_state() -> None:
    keeper = AuthKeeper()
    a = CacheStore(CommitStore())
    genesis.init_genesis(keeper, Context(a, "t"), state())
    assert keeper.sequence(a, b"\x01" * 20) == 3 and keeper.params(a).min_fee == 7
    exported = genesis.export_genesis(keeper, a)
    assert exported == state()
    b = CacheStore(CommitStore())
    genesis.init_genesis(keeper, Context(b, "t"), exported)
    assert b.writes() == a.writes()
