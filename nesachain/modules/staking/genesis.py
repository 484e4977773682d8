"""staking genesis. Import and export mirror each other.

Two ways in:
- ``create_validators``: ``[{operator, pubkey (base64 ed25519), moniker, amount}]``, each run as a
  MsgCreateValidator at genesis: the self-bond is locked from the operator's bank balance. This is
  how a new network (and the localnet) gets its first validators; InitChain returns the set they form.
- exported state (``validators``, ``delegations``, ``unbonding``, ``signing_infos``, ``miners``):
  the tokens these hold are not in any bank balance, so import mints them into the supply and locks
  them at once (bank's own ``supply`` field must then be left out).

Models are not staking's: miners register for models of the inference module's registry.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from nesachain.modules.staking import keys
from nesachain.modules.staking.keeper import StakingKeeper
from nesachain.modules.staking.miner_keeper import MinerKeeper
from nesachain.modules.staking.msgs import check_pubkey
from nesachain.modules.staking.params import Params
from nesachain.modules.staking.slashing import SlashingKeeper
from nesachain.modules.staking.types import MINER_STATUSES, Miner, SigningInfo, UnbondingEntry, Validator
from nesachain.store.kv import KVReader, prefix_end
from nesachain.types.address import address_from_pubkey, decode_address, encode_address
from nesachain.types.context import Context
from nesachain.types.encoding import decode_canonical, encode
from nesachain.types.errors import ChainError
from nesachain.types.module import ValidatorUpdate

__all__ = ["default_genesis", "export_genesis", "init_genesis", "validate_genesis"]

FIELDS = {"params", "create_validators", "validators", "delegations", "unbonding", "signing_infos",
          "miners", "next_id"}


def default_genesis() -> dict[str, Any]:
    return {"params": Params().to_dict(), "create_validators": []}


def _list(state: Mapping[str, Any], name: str) -> list[Any]:
    value = state.get(name, [])
    if not isinstance(value, list):
        raise ValueError(f"staking.{name} must be a list")
    return value


def _nonneg(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer")
    return value


def validate_genesis(state: Mapping[str, Any]) -> None:
    """Pure check of a staking genesis; raises ValueError naming the first problem."""
    unknown = set(state) - FIELDS
    if unknown:
        raise ValueError(f"unknown staking genesis fields: {sorted(unknown)}")
    raw_params = state.get("params", {})
    if not isinstance(raw_params, dict):
        raise ValueError("staking.params must be a map")
    params = Params.from_dict(raw_params)
    operators: set[bytes] = set()
    cons: set[bytes] = set()
    shares: dict[bytes, int] = {}
    try:
        for i, c in enumerate(_list(state, "create_validators")):
            what = f"staking.create_validators[{i}]"
            if not isinstance(c, dict) or set(c) != {"operator", "pubkey", "moniker", "amount"}:
                raise ValueError(f"{what} must have exactly operator, pubkey, moniker, amount")
            pubkey = check_pubkey(base64.b64decode(c["pubkey"], validate=True), "pubkey")
            op = decode_address(c["operator"])
            if not isinstance(c["moniker"], str) or not 0 < len(c["moniker"]) <= 64:
                raise ValueError(f"{what}.moniker must be 1-64 characters")
            if _nonneg(c["amount"], f"{what}.amount") < params.power_reduction:
                raise ValueError(f"{what}.amount is below power_reduction {params.power_reduction}")
            if op in operators or address_from_pubkey(pubkey) in cons:
                raise ValueError(f"{what}: duplicate operator or consensus key")
            operators.add(op)
            cons.add(address_from_pubkey(pubkey))
        for i, raw in enumerate(_list(state, "validators")):
            v = Validator.from_json(raw)
            check_pubkey(v.pubkey, f"staking.validators[{i}].pubkey")
            _nonneg(v.tokens, f"staking.validators[{i}].tokens")
            _nonneg(v.shares, f"staking.validators[{i}].shares")
            if v.operator in operators or v.cons_address in cons:
                raise ValueError(f"staking.validators[{i}]: duplicate operator or consensus key")
            operators.add(v.operator)
            cons.add(v.cons_address)
            shares[v.operator] = v.shares
        for i, d in enumerate(_list(state, "delegations")):
            op = decode_address(d["validator"])
            decode_address(d["delegator"])
            if op not in shares:
                raise ValueError(f"staking.delegations[{i}]: unknown validator {d['validator']}")
            shares[op] -= _nonneg(d["shares"], f"staking.delegations[{i}].shares")
        bad = [encode_address(op) for op, left in shares.items() if left != 0]
        if bad:
            raise ValueError(f"staking: delegation shares do not add up to the validator's shares for {bad}")
        for d in _list(state, "unbonding"):
            UnbondingEntry.from_json(d)
        for i, raw in enumerate(_list(state, "miners")):
            m = Miner.from_json(raw)
            if m.status not in MINER_STATUSES:
                raise ValueError(f"staking.miners[{i}].status must be one of {MINER_STATUSES}")
        for s in _list(state, "signing_infos"):
            bytes.fromhex(s["cons_address"])
            SigningInfo(s["start_height"], s["index_offset"], s["missed"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"staking genesis entry is malformed: {exc!r}") from None
    except ChainError as exc:
        raise ValueError(f"staking genesis: {exc.log}") from None
    _nonneg(state.get("next_id", 1), "staking.next_id")


def init_genesis(staking: StakingKeeper, slashing: SlashingKeeper, miners: MinerKeeper, ctx: Context,
                 state: Mapping[str, Any]) -> list[ValidatorUpdate]:
    validate_genesis(state)
    store = ctx.store
    bank = staking.bank
    staking.set_params(store, Params.from_dict(state.get("params", {})))

    def hold(owner: bytes, amount: int) -> None:  # tokens that exist only inside staking
        if amount:
            bank.mint_genesis(store, owner, amount)
            bank.lock(ctx, owner, amount)

    for raw in state.get("validators", []):
        v = Validator.from_json(raw)
        staking.set_validator(store, v)
        store.set(keys.cons_index_key(v.cons_address), v.operator)
        hold(v.operator, v.tokens)
    for d in state.get("delegations", []):
        delegator, op = decode_address(d["delegator"]), decode_address(d["validator"])
        store.set(keys.delegation_key(delegator, op), encode(d["shares"]))
        store.set(keys.delegation_by_val_key(op, delegator), b"")
    for raw in state.get("unbonding", []):
        e = UnbondingEntry.from_json(raw)
        staking.set_unbonding(store, e)
        hold(e.delegator, e.amount)
    for raw in state.get("miners", []):
        m = Miner.from_json(raw)
        miners.import_miner(store, m)
        hold(m.owner, m.bond)
    store.set(keys.NEXT_ID, encode(state.get("next_id", 1)))
    for c in state.get("create_validators", []):
        try:
            staking.create_validator(ctx, decode_address(c["operator"]), base64.b64decode(c["pubkey"]),
                                     c["moniker"], c["amount"])
        except ChainError as exc:
            raise ValueError(f"staking.create_validators: {c['moniker']}: {exc.log}") from None
    updates, joined = staking.apply_validator_set(ctx)
    for v in joined:
        slashing.on_bonded(ctx, v)
    for s in state.get("signing_infos", []):
        cons = bytes.fromhex(s["cons_address"])
        slashing.reset_window(store, cons, s["start_height"])
        slashing.set_signing_info(store, cons, SigningInfo(s["start_height"], s["index_offset"], s["missed"]))
        for index in s.get("missed_indices", []):
            store.set(keys.missed_key(cons, index), b"\x01")
    return updates


def export_genesis(staking: StakingKeeper, slashing: SlashingKeeper, miners: MinerKeeper,
                   store: KVReader) -> dict[str, Any]:
    params = staking.params(store)
    signing = []
    for key, raw in store.iterate(keys.SIGNING_INFO, prefix_end(keys.SIGNING_INFO)):
        cons = keys.split_lp(key, len(keys.SIGNING_INFO))[0]
        info = SigningInfo.from_state(decode_canonical(raw))
        signing.append({"cons_address": cons.hex().upper(), **info.to_state(),
                        "missed_indices": slashing.missed_indices(store, cons)})
    raw_id = store.get(keys.NEXT_ID)
    return {
        "params": params.to_dict(),
        "create_validators": [],
        "validators": [v.to_json(params.power_reduction, staking.last_power(store, v.operator))
                       for v in staking.validators(store)],
        "delegations": [{"delegator": encode_address(d), "validator": encode_address(op), "shares": s}
                        for d, op, s in staking.all_delegations(store)],
        "unbonding": [e.to_json() for e in staking.unbonding_entries(store)],
        "signing_infos": signing,
        "miners": [m.to_json() for m in miners.miners(store)],
        "next_id": 1 if raw_id is None else int(decode_canonical(raw_id)),
    }
