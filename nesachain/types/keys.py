"""Helpers for composite state keys: length-prefixed parts so one account's keys never run into
another's (a scan over ``prefix + lp(addr)`` sees exactly that address)."""

from __future__ import annotations

import struct

__all__ = ["lp", "u64"]


def lp(part: bytes) -> bytes:
    if len(part) > 255:
        raise ValueError("key part longer than 255 bytes")
    return bytes([len(part)]) + part


def u64(n: int) -> bytes:
    """Big-endian so integer keys sort numerically."""
    return struct.pack(">Q", n)
