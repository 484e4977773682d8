"""bank genesis: balances and the fee pool. The supply is recomputed on import (their sum, plus what
other modules mint for the tokens they hold: stake, escrow, deposits). An exported ``supply`` must
equal that sum: the app refuses a genesis whose modules hold more or less than it says
(``Chain.validate_genesis``); here it is checked as a lower bound."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nesachain.modules.bank import keys
from nesachain.modules.bank.keeper import BankKeeper
from nesachain.store.kv import KVReader
from nesachain.types.address import AddressError, decode_address, encode_address
from nesachain.types.coin import MAX_AMOUNT, check_amount
from nesachain.types.context import Context
from nesachain.types.encoding import encode

__all__ = ["default_genesis", "export_genesis", "genesis_supply", "init_genesis", "validate_genesis"]


def default_genesis() -> dict[str, Any]:
    return {"balances": [], "fee_pool": 0}


def validate_genesis(state: Mapping[str, Any]) -> None:
    unknown = set(state) - {"balances", "fee_pool", "supply"}
    if unknown:
        raise ValueError(f"unknown bank genesis fields: {sorted(unknown)}")
    balances = state.get("balances", [])
    if not isinstance(balances, list):
        raise ValueError("bank.balances must be a list")
    seen: set[bytes] = set()
    total = 0
    for i, entry in enumerate(balances):
        if not isinstance(entry, dict) or set(entry) != {"address", "amount"}:
            raise ValueError(f"bank.balances[{i}] must have exactly address and amount")
        try:
            raw = decode_address(entry["address"])
            check_amount(entry["amount"])
        except (AddressError, ValueError) as exc:
            raise ValueError(f"bank.balances[{i}]: {exc}") from None
        if raw in seen:
            raise ValueError(f"bank.balances[{i}]: duplicate address {entry['address']}")
        seen.add(raw)
        total += entry["amount"]
    try:
        fee_pool = check_amount(state.get("fee_pool", 0), allow_zero=True)
    except ValueError as exc:
        raise ValueError(f"bank.fee_pool: {exc}") from None
    total += fee_pool
    if total > MAX_AMOUNT:
        raise ValueError(f"bank genesis supply {total} exceeds {MAX_AMOUNT}")
    # An exported supply also counts what other modules hold (stake, escrow); those modules mint it
    # back on import, so here it can only be checked as a lower bound (the app checks it exactly).
    if "supply" in state:
        supply = state["supply"]
        if isinstance(supply, bool) or not isinstance(supply, int) or not total <= supply <= MAX_AMOUNT:
            raise ValueError(f"bank.supply {supply!r} must be an integer from balances + fee_pool = {total} "
                             f"to {MAX_AMOUNT}")


def genesis_supply(state: Mapping[str, Any]) -> int:
    """The unes a (valid) bank genesis holds: balances and the fee pool."""
    return sum(int(e["amount"]) for e in state.get("balances", [])) + int(state.get("fee_pool", 0))


def init_genesis(keeper: BankKeeper, ctx: Context, state: Mapping[str, Any]) -> None:
    validate_genesis(state)
    for entry in state.get("balances", []):
        keeper.mint_genesis(ctx.store, decode_address(entry["address"]), entry["amount"])
    fee_pool = state.get("fee_pool", 0)
    if fee_pool:
        ctx.store.set(keys.FEE_POOL, encode(fee_pool))
        ctx.store.set(keys.SUPPLY, encode(keeper.supply(ctx.store) + fee_pool))


def export_genesis(keeper: BankKeeper, store: KVReader) -> dict[str, Any]:
    return {
        "balances": [{"address": encode_address(a), "amount": n} for a, n in keeper.balances(store)],
        "fee_pool": keeper.fee_pool(store),
        "supply": keeper.supply(store),
    }
