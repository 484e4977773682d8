"""A delegation's shares by the height they were bonded at (``tranches.py``), and their place in genesis:
exported with the heights, imported as they were (an entry without them counts as bonded at genesis),
refused when they do not add up; unbonding entries keep the height their stake was bonded at."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nesachain.abci.chain import Chain
from nesachain.modules.staking import tranches
from nesachain.modules.staking.genesis import validate_genesis
from nesachain.modules.staking.msgs import MsgDelegate, MsgUndelegate
from nesachain.store import CommitStore
from tests.modules.staking.conftest import CHAIN_ID, SELF_BOND, Harness, addr, key


def test_tranches_add_merges_a_height_and_caps_the_list_at_the_older_height() -> None:
    t: tranches.Tranches = ()
    for h in range(1, tranches.MAX_TRANCHES + 1):
        t = tranches.add(t, h, 10)
    t = tranches.add(t, tranches.MAX_TRANCHES, 5)  # the same height: one tranche
    assert len(t) == tranches.MAX_TRANCHES and t[-1] == (tranches.MAX_TRANCHES, 15)
    t = tranches.add(t, 100, 7)  # one too many: the newest two merge at the older height
    assert len(t) == tranches.MAX_TRANCHES and t[-1] == (tranches.MAX_TRANCHES, 22)
    assert tranches.total(t) == 10 * tranches.MAX_TRANCHES + 12
    assert tranches.at_stake(t, 99) == tranches.total(t)  # merged stake counts as bonded earlier, never later


def test_tranches_remove_newest_first_and_name_the_oldest_height_taken() -> None:
    t = ((0, 100), (5, 50), (9, 20))
    assert tranches.remove_newest(t, 20) == (((0, 100), (5, 50)), 9)
    assert tranches.remove_newest(t, 30) == (((0, 100), (5, 40)), 5)
    assert tranches.remove_newest(t, 170) == ((), 0)
    assert tranches.cut_at_stake(t, 5, 60) == ((0, 90), (9, 20))  # the tranche of height 9 stays whole
    assert tranches.at_stake(t, 4) == 100 and tranches.at_stake(t, 9) == 170


@pytest.mark.parametrize(("raw", "shares", "message"), [
    ([], 1, "1 to"), ([[0, 5], [0, 5]], 10, "increase"), ([[3, 0]], 0, "positive"), ([[0, 5]], 6, "add up"),
    ([[0, True]], 1, "integers"), ([[-1, 5]], 5, "increase"), ([[i, 1] for i in range(9)], 9, "1 to"),
])
def test_tranches_check_refuses_what_does_not_add_up(raw: list[Any], shares: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tranches.check(raw, shares)


def _history() -> Harness:
    h = Harness()
    d, val = key(6), addr(key(0))
    h.block([h.tx(d, [MsgDelegate(addr(d), val, 2_000_000)])])
    h.block()
    h.block([h.tx(d, [MsgDelegate(addr(d), val, 3_000_000)])])
    h.block([h.tx(d, [MsgUndelegate(addr(d), val, 3_500_000)])])
    return h


def test_genesis_exports_tranches_and_bonded_heights_and_imports_them_as_they_were() -> None:
    h = _history()
    state = h.chain.export_genesis()
    dels = {(d["delegator"], d["validator"]): d for d in state["staking"]["delegations"]}
    assert dels[(addr(key(6)), addr(key(0)))]["tranches"] == [[1, 1_500_000]]
    assert dels[(addr(key(0)), addr(key(0)))]["tranches"] == [[0, SELF_BOND]]
    (entry,) = state["staking"]["unbonding"]
    assert (entry["creation_height"], entry["bonded_height"]) == (4, 1)  # took the shares of height 3, then 1
    b = Chain(CommitStore())
    b.init_chain(CHAIN_ID, copy.deepcopy(state))
    b.finalize_block(1, [])
    b.commit()
    assert b.export_genesis()["staking"] == state["staking"]


def test_genesis_delegation_without_tranches_counts_as_bonded_at_genesis() -> None:
    state = _history().chain.export_genesis()
    for d in state["staking"]["delegations"]:
        del d["tranches"]
    b = Chain(CommitStore())
    b.init_chain(CHAIN_ID, state)
    dels = b.export_genesis()["staking"]["delegations"]
    assert all(d["tranches"] == [[0, d["shares"]]] for d in dels)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: s["delegations"][0].update(tranches=[[0, 1]]), "add up"),
    (lambda s: s["unbonding"][0].update(bonded_height=s["unbonding"][0]["creation_height"] + 1), "bonded at"),
    (lambda s: s["unbonding"].extend(
        {**s["unbonding"][0], "id": s["next_id"] + i} for i in range(7)) or s.update(next_id=s["next_id"] + 8),
     "max_entries"),
])
def test_validate_genesis_refuses_bad_tranches_and_entries(mutate: Any, message: str) -> None:
    state = _history().chain.export_genesis()["staking"]
    mutate(state)
    with pytest.raises(ValueError, match=message):
        validate_genesis(state)
