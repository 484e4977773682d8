"""staking queries: one function per query, answered from committed state as JSON-able dicts.
Lists take ``offset`` and ``limit`` (default 100, at most 1000)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from nesachain.modules.staking.keeper import StakingKeeper
from nesachain.modules.staking.miner_keeper import MinerKeeper
from nesachain.modules.staking.slashing import SlashingKeeper
from nesachain.modules.staking.types import MINER_STATUSES, Validator
from nesachain.store.kv import KVReader
from nesachain.types.address import check_address, encode_address
from nesachain.types.coin import DENOM

__all__ = ["Queries"]

T = TypeVar("T")
MAX_LIMIT = 1000


def _page(items: Iterable[T], params: Mapping[str, Any]) -> tuple[list[T], int]:
    offset = params.get("offset", 0)
    limit = params.get("limit", 100)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError("offset must be a non-negative integer")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer in [1, {MAX_LIMIT}]")
    everything = list(items)
    return everything[offset : offset + limit], len(everything)


def _address(params: Mapping[str, Any], name: str) -> bytes:
    value = params.get(name)
    if not isinstance(value, str):
        raise ValueError(f"this query needs {name!r} (a nesa1… address)")
    return check_address(value, name)


class Queries:
    def __init__(self, staking: StakingKeeper, slashing: SlashingKeeper, miners: MinerKeeper) -> None:
        self._staking = staking
        self._slashing = slashing
        self._miners = miners
        self.holders: dict[str, Callable[[KVReader], int]] = {}

    def _val_json(self, store: KVReader, v: Validator) -> dict[str, Any]:
        reduction = self._staking.params(store).power_reduction
        return v.to_json(reduction, self._staking.last_power(store, v.operator))

    def params(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        p = self._staking.params(store)
        return {**p.to_dict(), "max_missed_blocks": p.max_missed_blocks}

    def validators(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        status = params.get("status")
        rows = [self._val_json(store, v) for v in self._staking.validators(store)]
        if status is not None:
            rows = [r for r in rows if r["status"] == status]
        rows.sort(key=lambda r: (-r["tokens"], r["operator"]))
        page, total = _page(rows, params)
        return {"validators": page, "total": total}

    def validator(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        value = params.get("address")
        if isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdefABCDEF" for c in value):
            val = self._staking.validator_by_cons(store, bytes.fromhex(value))
        else:
            val = self._staking.validator(store, _address(params, "address"))
        if val is None:
            raise LookupError(f"validator {value} not found")
        out = self._val_json(store, val)
        info = self._slashing.signing_info(store, val.cons_address)
        if info is not None:
            out["signing_info"] = {**info.to_state(),
                                   "missed_indices": self._slashing.missed_indices(store, val.cons_address)}
        return out

    def delegations(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        if "delegator" in params:
            delegator = _address(params, "delegator")
            pairs = [(delegator, op, s) for op, s in self._staking.delegations_of(store, delegator)]
        else:
            operator = _address(params, "validator")
            pairs = [(d, operator, s) for d, s in self._staking.delegations_to(store, operator)]
        rows = []
        for d, op, shares in pairs:
            val = self._staking.must_validator(store, op)
            rows.append({"delegator": encode_address(d), "validator": encode_address(op), "shares": shares,
                         "tokens": val.tokens_for(shares)})
        page, total = _page(rows, params)
        return {"delegations": page, "total": total}

    def unbonding(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        if "delegator" in params:
            entries = self._staking.unbonding_of(store, _address(params, "delegator"))
        elif "validator" in params:
            entries = self._staking.unbonding_from(store, _address(params, "validator"))
        else:
            entries = self._staking.unbonding_entries(store)
        page, total = _page([e.to_json() for e in entries], params)
        return {"entries": page, "total": total}

    def pool(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every place tokens live, read from one committed state: the supply invariant."""
        bank = self._staking.bank
        balances = sum(n for _, n in bank.balances(store))
        bonded = self._staking.bonded_total(store)
        unbonding = self._staking.unbonding_total(store)
        miner_bonds = self._miners.bonded_total(store)
        fee_pool = bank.fee_pool(store)
        supply = bank.supply(store)
        others = {name: fn(store) for name, fn in sorted(self.holders.items())}
        total = balances + bonded + unbonding + miner_bonds + fee_pool + sum(others.values())
        return {"balances": balances, "bonded": bonded, "unbonding": unbonding, "miner_bonds": miner_bonds,
                "fee_pool": fee_pool, "other_holders": others, "supply": supply, "sum": total,
                "invariant_holds": total == supply, "denom": DENOM}

    def miners(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        model_id = params.get("model_id")
        status = params.get("status")
        if status is not None and status not in MINER_STATUSES:
            raise ValueError(f"status must be one of {', '.join(MINER_STATUSES)}")
        owner = _address(params, "owner") if "owner" in params else None
        rows = [m.to_json() for m in self._miners.miners(store)
                if (model_id is None or m.model_id == model_id) and (status is None or m.status == status)
                and (owner is None or m.owner == owner)]
        page, total = _page(rows, params)
        return {"miners": page, "total": total}

    def miner(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        m = self._miners.miner(store, _address(params, "address"))
        if m is None:
            raise LookupError(f"miner {params['address']} not found")
        return m.to_json()
