"""bank genesis: a pure validate naming what is wrong, and import/export that mirror each other."""

from __future__ import annotations

from typing import Any

import pytest

from nesachain.modules.bank import genesis
from nesachain.modules.bank.keeper import BankKeeper
from nesachain.store import CacheStore, CommitStore
from nesachain.types.address import encode_address
from nesachain.types.coin import MAX_AMOUNT
from nesachain.types.context import Context
from tests.modules.bank.conftest import ALICE, BOB

A, B = encode_address(ALICE), encode_address(BOB)


def state() -> dict[str, Any]:
    return {"balances": [{"address": A, "amount": 500}, {"address": B, "amount": 70}], "fee_pool": 30}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: s.update(extra=1), "unknown bank genesis fields"),
    (lambda s: s.update(balances={}), "must be a list"),
    (lambda s: s["balances"].append({"address": A, "amount": 1}), "duplicate address"),
    (lambda s: s["balances"][0].update(amount=0), r"balances\[0\].*positive"),
    (lambda s: s["balances"][1].update(address="nesa1bogus"), r"balances\[1\]"),
    (lambda s: s["balances"][1].pop("amount"), "exactly address and amount"),
    (lambda s: s.update(fee_pool=-1), "fee_pool"),
    (lambda s: s["balances"][0].update(amount=MAX_AMOUNT), "exceeds"),
    (lambda s: s.update(supply=599), "bank.supply"),
    (lambda s: s.update(supply=True), "bank.supply"),
])
def test_validate_genesis_bad_state_names_the_problem(mutate: Any, message: str) -> None:
    s = state()
    mutate(s)
    with pytest.raises(ValueError, match=message):
        genesis.validate_genesis(s)


def test_validate_genesis_default_and_supply_at_least_the_balances_pass() -> None:
    genesis.validate_genesis(genesis.default_genesis())
    genesis.validate_genesis({**state(), "supply": 600})
    genesis.validate_genesis({**state(), "supply": 10**9})  # other modules hold the rest (the app checks)
    assert genesis.genesis_supply(state()) == 600


def test_genesis_round_trip_init_export_init_gives_the_same_state() -> None:
    keeper = BankKeeper()
    a = CacheStore(CommitStore())
    genesis.init_genesis(keeper, Context(a, "t"), state())
    exported = genesis.export_genesis(keeper, a)
    assert exported == {**state(), "supply": 600}
    assert keeper.balance(a, ALICE) == 500 and keeper.fee_pool(a) == 30
    b = CacheStore(CommitStore())
    genesis.init_genesis(keeper, Context(b, "t"), exported)
    assert b.writes() == a.writes()
    assert genesis.export_genesis(keeper, b) == exported
