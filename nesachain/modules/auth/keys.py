"""auth state: every prefix in one table."""

from __future__ import annotations

from nesachain.types.keys import lp

MODULE = "auth"
PREFIX = b"auth/"
SEQUENCE = PREFIX + b"seq/"  # SEQUENCE + lp(address) -> next sequence (int)
PARAMS = PREFIX + b"params"  # -> Params


def sequence_key(address: bytes) -> bytes:
    return SEQUENCE + lp(address)


def address_from_sequence_key(key: bytes) -> bytes:
    return key[len(SEQUENCE) + 1 :]
