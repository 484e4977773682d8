"""bank state: every prefix in one table."""

from __future__ import annotations

from nesachain.types.keys import lp

MODULE = "bank"
PREFIX = b"bank/"
BALANCE = PREFIX + b"bal/"  # BALANCE + lp(address) -> amount (int, unes)
SUPPLY = PREFIX + b"supply"  # -> total supply (int): balances + fee pool + what other modules hold
FEE_POOL = PREFIX + b"fee_pool"  # -> fees collected, held by the chain (int)


def balance_key(address: bytes) -> bytes:
    return BALANCE + lp(address)


def address_from_balance_key(key: bytes) -> bytes:
    return key[len(BALANCE) + 1 :]
