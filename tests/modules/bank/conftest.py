"""A bank keeper over an in-memory store, with funded accounts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from nesachain.modules.bank.keeper import BankKeeper
from nesachain.store import CacheStore, CommitStore
from nesachain.types.context import Context

ALICE, BOB, CAROL = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20
FUNDS = 1_000_000


@dataclass
class Bank:
    keeper: BankKeeper
    store: CacheStore

    def ctx(self) -> Context:
        return Context(self.store, "bank-test", 1)

    def branch(self) -> Context:
        """A tx-like branch: merged only when the call succeeds (as the chain does)."""
        return Context(CacheStore(self.store), "bank-test", 1)

    def balance(self, who: bytes) -> int:
        return self.keeper.balance(self.store, who)


@pytest.fixture
def bank() -> Bank:
    b = Bank(BankKeeper(), CacheStore(CommitStore()))
    for who in (ALICE, BOB):
        b.keeper.mint_genesis(b.store, who, FUNDS)
    return b
