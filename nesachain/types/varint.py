"""Unsigned LEB128 varints (protobuf's), the one encoder for ABCI framing and tensor frame headers."""

from __future__ import annotations

__all__ = ["encode_uvarint"]


def encode_uvarint(n: int) -> bytes:
    """``n`` in 7-bit groups, least significant first, the high bit set on all but the last byte."""
    if n < 0:
        raise ValueError("uvarint must be non-negative")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
