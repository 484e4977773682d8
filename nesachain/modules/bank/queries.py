"""bank queries: one function per query, answered from committed state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nesachain.modules.bank.keeper import BankKeeper
from nesachain.store.kv import KVReader
from nesachain.types.address import check_address
from nesachain.types.coin import DENOM

__all__ = ["Queries"]


class Queries:
    def __init__(self, keeper: BankKeeper) -> None:
        self._keeper = keeper

    def balance(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        address = params.get("address")
        if not isinstance(address, str):
            raise ValueError("query bank/balance needs an 'address'")
        raw = check_address(address, "address")
        return {"address": address, "amount": self._keeper.balance(store, raw), "denom": DENOM}

    def supply(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "supply": self._keeper.supply(store),
            "fee_pool": self._keeper.fee_pool(store),
            "denom": DENOM,
        }
