"""auth genesis: tx params and every account's next sequence. Import and export mirror each other,
so a chain exported and imported keeps refusing replays of the txs it already ran."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nesachain.modules.auth.keeper import AuthKeeper
from nesachain.modules.auth.params import Params
from nesachain.store.kv import KVReader
from nesachain.types.address import AddressError, decode_address, encode_address
from nesachain.types.context import Context

__all__ = ["default_genesis", "export_genesis", "init_genesis", "validate_genesis"]

FIELDS = {"params", "accounts"}
MAX_SEQUENCE = 2**64 - 1


def default_genesis() -> dict[str, Any]:
    return {"params": Params().to_dict(), "accounts": []}


def validate_genesis(state: Mapping[str, Any]) -> None:
    """Pure check; raises ValueError naming what is wrong."""
    unknown = set(state) - FIELDS
    if unknown:
        raise ValueError(f"unknown auth genesis fields: {sorted(unknown)}")
    params = state.get("params", {})
    if not isinstance(params, dict):
        raise ValueError("auth.params must be a map")
    Params.from_dict(params)
    accounts = state.get("accounts", [])
    if not isinstance(accounts, list):
        raise ValueError("auth.accounts must be a list")
    seen: set[bytes] = set()
    for i, entry in enumerate(accounts):
        if not isinstance(entry, dict) or set(entry) != {"address", "sequence"}:
            raise ValueError(f"auth.accounts[{i}] must have exactly address and sequence")
        try:
            raw = decode_address(entry["address"])
        except AddressError as exc:
            raise ValueError(f"auth.accounts[{i}]: {exc}") from None
        seq = entry["sequence"]
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQUENCE:
            raise ValueError(f"auth.accounts[{i}].sequence must be an integer in [1, 2^64-1] "
                             f"(an account that never sent a tx is left out), got {seq!r}")
        if raw in seen:
            raise ValueError(f"auth.accounts[{i}]: duplicate address {entry['address']}")
        seen.add(raw)


def init_genesis(keeper: AuthKeeper, ctx: Context, state: Mapping[str, Any]) -> None:
    validate_genesis(state)
    keeper.set_params(ctx.store, Params.from_dict(dict(state.get("params", {}))))
    for entry in state.get("accounts", []):
        keeper.set_sequence(ctx.store, decode_address(entry["address"]), entry["sequence"])


def export_genesis(keeper: AuthKeeper, store: KVReader) -> dict[str, Any]:
    return {
        "params": keeper.params(store).to_dict(),
        "accounts": [{"address": encode_address(a), "sequence": n} for a, n in keeper.sequences(store)],
    }
