"""auth keeper: account sequences and tx params."""

from __future__ import annotations

import pytest

from nesachain.modules.auth import keys
from nesachain.modules.auth.keeper import AuthKeeper
from nesachain.modules.auth.params import Params
from nesachain.store import CacheStore, CommitStore

ALICE, BOB = b"\x01" * 20, b"\x02" * 20


def test_sequence_unknown_account_is_zero_and_increments_by_one() -> None:
    k, store = AuthKeeper(), CacheStore(CommitStore())
    assert k.sequence(store, ALICE) == 0
    assert [k.increment_sequence(store, ALICE) for _ in range(3)] == [1, 2, 3]
    assert k.sequence(store, ALICE) == 3 and k.sequence(store, BOB) == 0


def test_sequences_lists_accounts_in_address_order_and_zero_is_not_stored() -> None:
    k, store = AuthKeeper(), CacheStore(CommitStore())
    k.set_sequence(store, BOB, 5)
    k.increment_sequence(store, ALICE)
    assert list(k.sequences(store)) == [(ALICE, 1), (BOB, 5)]
    k.set_sequence(store, BOB, 0)
    assert store.get(keys.sequence_key(BOB)) is None and list(k.sequences(store)) == [(ALICE, 1)]


def test_params_default_then_set_and_invalid_ones_refused() -> None:
    k, store = AuthKeeper(), CacheStore(CommitStore())
    assert k.params(store) == Params()
    k.set_params(store, Params(min_fee=5, max_tx_bytes=1024))
    assert k.params(store) == Params(5, 1024)
    with pytest.raises(ValueError):
        k.set_params(store, Params(min_fee=-1))
    assert k.params(store) == Params(5, 1024)
