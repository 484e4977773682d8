"""staking state: every prefix in one table.

Addresses inside composite keys are length-prefixed (``lp``) so a scan over one address never runs
into another's; heights are big-endian ``u64`` so queues iterate in height order.
"""

from __future__ import annotations

from nesachain.types.keys import lp, u64

MODULE = "staking"
PREFIX = b"staking/"
PARAMS = PREFIX + b"params"  # -> Params
NEXT_ID = PREFIX + b"next_id"  # -> next unbonding-entry id (int)
VALIDATOR = PREFIX + b"val/"  # VALIDATOR + lp(operator) -> Validator
CONS_INDEX = PREFIX + b"cons/"  # CONS_INDEX + lp(consensus address) -> operator address
LAST_POWER = PREFIX + b"power/"  # LAST_POWER + lp(operator) -> power last sent to CometBFT (int)
DELEGATION = PREFIX + b"del/"  # DELEGATION + lp(delegator) + lp(operator) -> [[height, shares], …] (tranches.py)
DELEGATION_BY_VAL = PREFIX + b"delv/"  # + lp(operator) + lp(delegator) -> b"" (reverse index)
UNBONDING = PREFIX + b"ubd/"  # UNBONDING + u64(completion height) + u64(id) -> UnbondingEntry
UNBONDING_BY_VAL = PREFIX + b"ubdv/"  # + lp(operator) + u64(id) -> u64(completion height)
UNBONDING_BY_DEL = PREFIX + b"ubdd/"  # + lp(delegator) + lp(operator) + u64(id) -> u64(completion height)
SIGNING_INFO = PREFIX + b"sign/"  # SIGNING_INFO + lp(consensus address) -> SigningInfo
MISSED = PREFIX + b"miss/"  # MISSED + lp(consensus address) + u64(window index) -> b"\x01"
MINER = PREFIX + b"miner/"  # MINER + lp(miner address) -> Miner
MINER_KEY_USED = PREFIX + b"mkey/"  # MINER_KEY_USED + lp(owner) + lp(miner) -> b"" (owner's miners)
HEARTBEAT_QUEUE = PREFIX + b"mhb/"  # + u64(deadline height) + lp(miner) -> b""
MINER_UNBONDING = PREFIX + b"mubd/"  # + u64(completion height) + lp(miner) -> b""


def validator_key(operator: bytes) -> bytes:
    return VALIDATOR + lp(operator)


def cons_index_key(cons_address: bytes) -> bytes:
    return CONS_INDEX + lp(cons_address)


def last_power_key(operator: bytes) -> bytes:
    return LAST_POWER + lp(operator)


def delegation_key(delegator: bytes, operator: bytes) -> bytes:
    return DELEGATION + lp(delegator) + lp(operator)


def delegation_by_val_key(operator: bytes, delegator: bytes) -> bytes:
    return DELEGATION_BY_VAL + lp(operator) + lp(delegator)


def unbonding_key(completion: int, entry_id: int) -> bytes:
    return UNBONDING + u64(completion) + u64(entry_id)


def unbonding_by_val_key(operator: bytes, entry_id: int) -> bytes:
    return UNBONDING_BY_VAL + lp(operator) + u64(entry_id)


def unbonding_by_del_key(delegator: bytes, operator: bytes, entry_id: int) -> bytes:
    return unbonding_pair_prefix(delegator, operator) + u64(entry_id)


def unbonding_pair_prefix(delegator: bytes, operator: bytes) -> bytes:
    """Every unbonding entry of one (delegator, validator) pair: at most ``max_entries``."""
    return UNBONDING_BY_DEL + lp(delegator) + lp(operator)


def signing_info_key(cons_address: bytes) -> bytes:
    return SIGNING_INFO + lp(cons_address)


def missed_prefix(cons_address: bytes) -> bytes:
    return MISSED + lp(cons_address)


def missed_key(cons_address: bytes, index: int) -> bytes:
    return missed_prefix(cons_address) + u64(index)


def miner_key(miner: bytes) -> bytes:
    return MINER + lp(miner)


def owner_miner_key(owner: bytes, miner: bytes) -> bytes:
    return MINER_KEY_USED + lp(owner) + lp(miner)


def heartbeat_key(deadline: int, miner: bytes) -> bytes:
    return HEARTBEAT_QUEUE + u64(deadline) + lp(miner)


def miner_unbonding_key(completion: int, miner: bytes) -> bytes:
    return MINER_UNBONDING + u64(completion) + lp(miner)


def split_lp(key: bytes, offset: int) -> tuple[bytes, int]:
    """The length-prefixed part of ``key`` starting at ``offset``, and the offset after it."""
    n = key[offset]
    return key[offset + 1 : offset + 1 + n], offset + 1 + n
