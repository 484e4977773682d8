"""Bech32 account addresses: ``nesa1…`` over the first 20 bytes of sha256(ed25519 pubkey)."""

from __future__ import annotations

import functools
import hashlib

import bech32

from nesachain.types.sdk_errors import ErrInvalidAddress

__all__ = ["ADDRESS_LEN", "HRP", "AddressError", "address_from_pubkey", "check_address", "decode_address",
           "encode_address", "is_address"]

HRP = "nesa"
ADDRESS_LEN = 20


class AddressError(ValueError):
    """A string is not a valid nesa1… address."""


def address_from_pubkey(pubkey: bytes) -> bytes:
    if len(pubkey) != 32:
        raise AddressError(f"ed25519 public key must be 32 bytes, got {len(pubkey)}")
    return hashlib.sha256(pubkey).digest()[:ADDRESS_LEN]


@functools.lru_cache(maxsize=65536)  # pure; the reference bech32 code is slow and txs repeat addresses
def encode_address(raw: bytes, hrp: str = HRP) -> str:
    if len(raw) != ADDRESS_LEN:
        raise AddressError(f"address must be {ADDRESS_LEN} bytes, got {len(raw)}")
    data = bech32.convertbits(raw, 8, 5)
    assert data is not None  # 8→5 bit conversion of bytes cannot fail
    return str(bech32.bech32_encode(hrp, data))


def decode_address(text: str, hrp: str = HRP) -> bytes:
    if not isinstance(text, str) or len(text) > 90:
        raise AddressError(f"not a bech32 address: {text!r}")
    return _decode(text, hrp)


@functools.lru_cache(maxsize=65536)  # pure (errors are raised, not cached)
def _decode(text: str, hrp: str) -> bytes:
    got_hrp, data = bech32.bech32_decode(text)
    if got_hrp is None or data is None:
        raise AddressError(f"invalid bech32 address (bad checksum or characters): {text!r}")
    if got_hrp != hrp:
        raise AddressError(f"address {text!r} has prefix {got_hrp!r}, expected {hrp!r}")
    raw = bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) != ADDRESS_LEN:
        raise AddressError(f"address {text!r} does not hold {ADDRESS_LEN} bytes")
    return bytes(raw)


def is_address(text: object, hrp: str = HRP) -> bool:
    try:
        decode_address(text, hrp)  # type: ignore[arg-type]
    except AddressError:
        return False
    return True


def check_address(value: str, what: str) -> bytes:
    """The raw bytes of a bech32 address a Msg or query names, or the registered invalid-address
    error naming the field (``what``): for state-machine code, which answers with codes."""
    try:
        return decode_address(value)
    except AddressError as exc:
        raise ErrInvalidAddress.wrap(f"{what}: {exc}") from None
