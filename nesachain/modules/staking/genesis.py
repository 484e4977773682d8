"""staking genesis. Import and export mirror each other.

Two ways in:
- ``create_validators``: ``[{operator, pubkey (base64 ed25519), moniker, amount}]``, each run as a
  MsgCreateValidator at genesis: the self-bond is locked from the operator's bank balance. This is
  how a new network (and the localnet) gets its first validators; InitChain returns the set they form.
- exported state (``validators``, ``delegations`` with the heights their shares were bonded at (``tranches``;
  an entry without them counts as bonded at genesis), ``unbonding``, ``signing_infos`` with their missed
  blocks, ``miners`` with bonds, reputation, heartbeat deadlines and unbonding, ``next_id``): the
  tokens these hold are not in any bank balance, so import mints them into the supply and locks them
  at once. The indexes (consensus keys, delegations by validator, unbonding queues, miners by owner,
  heartbeat and miner-unbonding queues) are rebuilt from the records, as the keepers keep them, and
  the validator set from the validators (as end_block last left it), so an export imported gives
  back the same state.

Models are not staking's: miners register for models of the inference module's registry.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from nesachain.modules.staking import keys, tranches
from nesachain.modules.staking.keeper import StakingKeeper
from nesachain.modules.staking.miner_keeper import MinerKeeper
from nesachain.modules.staking.msgs import check_pubkey
from nesachain.modules.staking.params import Params
from nesachain.modules.staking.reputation import MAX_REPUTATION, MIN_REPUTATION
from nesachain.modules.staking.slashing import SlashingKeeper
from nesachain.modules.staking.types import (
    MINER_STATUSES,
    MINER_UNBONDING,
    Miner,
    SigningInfo,
    UnbondingEntry,
    Validator,
)
from nesachain.store.kv import KVReader, prefix_end
from nesachain.types.address import address_from_pubkey, decode_address, encode_address
from nesachain.types.coin import MAX_AMOUNT
from nesachain.types.context import Context
from nesachain.types.encoding import decode_canonical, encode
from nesachain.types.errors import ChainError
from nesachain.types.module import ValidatorUpdate

__all__ = ["default_genesis", "export_genesis", "genesis_supply", "init_genesis", "validate_genesis"]

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
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        raise ValueError(f"{what} must be an integer in [0, 2^64-1]")
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
            if c["amount"] < params.min_self_delegation:
                raise ValueError(f"{what}.amount is below min_self_delegation {params.min_self_delegation}")
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
        pairs: set[tuple[bytes, bytes]] = set()
        for i, d in enumerate(_list(state, "delegations")):
            op = decode_address(d["validator"])
            delegator = decode_address(d["delegator"])
            if op not in shares:
                raise ValueError(f"staking.delegations[{i}]: unknown validator {d['validator']}")
            if (delegator, op) in pairs:
                raise ValueError(f"staking.delegations[{i}]: {d['delegator']} delegates to {d['validator']} twice")
            pairs.add((delegator, op))
            if _nonneg(d["shares"], f"staking.delegations[{i}].shares") == 0:
                raise ValueError(f"staking.delegations[{i}]: a delegation holds shares (none is left out)")
            if "tranches" in d:
                try:
                    tranches.check(d["tranches"], d["shares"])
                except ValueError as exc:
                    raise ValueError(f"staking.delegations[{i}]: {exc}") from None
            shares[op] -= d["shares"]
        bad = [encode_address(op) for op, left in shares.items() if left != 0]
        if bad:
            raise ValueError(f"staking: delegation shares do not add up to the validator's shares for {bad}")
        next_id = _nonneg(state.get("next_id", 1), "staking.next_id")
        if next_id < 1:
            raise ValueError("staking.next_id must be at least 1")
        _check_unbonding(_list(state, "unbonding"), operators, next_id, params.max_entries)
        _check_miners(_list(state, "miners"))
        _check_signing_infos(_list(state, "signing_infos"), cons, params.signed_blocks_window)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"staking genesis entry is malformed: {exc!r}") from None
    except ChainError as exc:
        raise ValueError(f"staking genesis: {exc.log}") from None


def _check_unbonding(entries: list[Any], operators: set[bytes], next_id: int, max_entries: int) -> None:
    ids: set[int] = set()
    per_pair: dict[tuple[bytes, bytes], int] = {}
    for i, raw in enumerate(entries):
        what = f"staking.unbonding[{i}]"
        e = UnbondingEntry.from_json(raw)
        for name in ("id", "amount", "creation_height", "completion_height"):
            _nonneg(getattr(e, name), f"{what}.{name}")
        if e.validator not in operators:
            raise ValueError(f"{what}: unknown validator {encode_address(e.validator)}")
        if e.id in ids or not 1 <= e.id < next_id:
            raise ValueError(f"{what}: id {e.id} is a duplicate or not in [1, staking.next_id {next_id})")
        if e.completion_height < e.creation_height:
            raise ValueError(f"{what}: completes at {e.completion_height}, before its creation {e.creation_height}")
        if not 0 <= _nonneg(e.bonded_height, f"{what}.bonded_height") <= e.creation_height:
            raise ValueError(f"{what}: bonded at {e.bonded_height}, after its creation {e.creation_height}")
        pair = (e.delegator, e.validator)
        per_pair[pair] = per_pair.get(pair, 0) + 1
        if per_pair[pair] > max_entries:
            raise ValueError(f"{what}: more than max_entries {max_entries} entries of one delegator and validator")
        ids.add(e.id)


def _check_miners(entries: list[Any]) -> None:
    seen: set[bytes] = set()
    for i, raw in enumerate(entries):
        what = f"staking.miners[{i}]"
        m = Miner.from_json(raw)
        if m.status not in MINER_STATUSES:
            raise ValueError(f"{what}.status must be one of {MINER_STATUSES}")
        check_pubkey(m.pubkey, f"{what}.pubkey")
        if address_from_pubkey(m.pubkey) != m.miner or m.miner == m.owner:
            raise ValueError(f"{what}: the miner address must be its own key's, not its owner's")
        if m.miner in seen:
            raise ValueError(f"{what}: duplicate miner {encode_address(m.miner)}")
        seen.add(m.miner)
        for name in ("bond", "block_start", "block_end", "memory_mb", "throughput", "last_heartbeat",
                     "heartbeat_deadline", "registered_height", "unbond_height"):
            _nonneg(getattr(m, name), f"{what}.{name}")
        if not m.block_start < m.block_end:
            raise ValueError(f"{what}: block range [{m.block_start}, {m.block_end}) is empty")
        if not MIN_REPUTATION <= _nonneg(m.reputation, f"{what}.reputation") <= MAX_REPUTATION:
            raise ValueError(f"{what}.reputation {m.reputation} is outside [{MIN_REPUTATION}, {MAX_REPUTATION}]")
        if (m.status == MINER_UNBONDING) != (m.unbond_height > 0):
            raise ValueError(f"{what}: an unbonding miner (and only one) has an unbond_height")
        if not isinstance(m.endpoint, str) or not isinstance(m.model_id, str):
            raise ValueError(f"{what}: endpoint and model_id must be strings")


def _check_signing_infos(entries: list[Any], cons: set[bytes], window: int) -> None:
    seen: set[bytes] = set()
    for i, s in enumerate(entries):
        what = f"staking.signing_infos[{i}]"
        address = bytes.fromhex(s["cons_address"])
        if address not in cons or address in seen:
            raise ValueError(f"{what}: {s['cons_address']} is no validator's consensus address, or twice")
        seen.add(address)
        info = SigningInfo(_nonneg(s["start_height"], f"{what}.start_height"),
                           _nonneg(s["index_offset"], f"{what}.index_offset"), _nonneg(s["missed"], f"{what}.missed"))
        missed = s.get("missed_indices", [])
        if (not isinstance(missed, list) or len(set(missed)) != len(missed)
                or any(_nonneg(x, f"{what}.missed_indices") >= window for x in missed)):
            raise ValueError(f"{what}.missed_indices must be distinct indices below signed_blocks_window {window}")
        if len(missed) != info.missed:
            raise ValueError(f"{what}: missed {info.missed} is not the number of missed_indices {len(missed)}")


def genesis_supply(state: Mapping[str, Any]) -> int:
    """The unes a (valid) staking genesis holds, all minted at import: validator tokens, unbonding
    entries and miner bonds (``create_validators`` lock tokens bank lists already: none)."""
    return (sum(int(v["tokens"]) for v in state.get("validators", []))
            + sum(int(e["amount"]) for e in state.get("unbonding", []))
            + sum(int(m["bond"]) for m in state.get("miners", [])))


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
        held = tranches.check(d["tranches"], d["shares"]) if "tranches" in d else ((0, d["shares"]),)
        staking.set_delegation(store, decode_address(d["delegator"]), decode_address(d["validator"]), held)
    for raw in state.get("unbonding", []):
        e = UnbondingEntry.from_json(raw)
        staking.set_unbonding(store, e)
        hold(e.delegator, e.amount)
    for raw in state.get("miners", []):
        m = Miner.from_json(raw)
        miners.import_miner(store, m)
        hold(m.owner, m.bond)
    if state.get("next_id", 1) > 1:  # a chain stores it from its first unbonding on
        store.set(keys.NEXT_ID, encode(state["next_id"]))
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
        "delegations": [{"delegator": encode_address(d), "validator": encode_address(op),
                         "shares": tranches.total(held), "tranches": [[h, n] for h, n in held]}
                        for d, op, held in staking.all_delegations(store)],
        "unbonding": [e.to_json() for e in staking.unbonding_entries(store)],
        "signing_infos": signing,
        "miners": [m.to_json() for m in miners.miners(store)],
        "next_id": 1 if raw_id is None else int(decode_canonical(raw_id)),
    }
