"""Canonical msgpack: maps with sorted keys, no floats, no extension types.

State values, tx bodies and sign bytes all use it, so the same data always has the same bytes.
``decode_canonical`` refuses any input that does not re-encode to itself (non-canonical integer
widths, unsorted maps, duplicate keys), which closes the door to malleable txs.
"""

from __future__ import annotations

from typing import Any

import msgpack

__all__ = ["CanonicalError", "decode_canonical", "encode"]

_MAX_DEPTH = 16
_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1  # what msgpack can carry


class CanonicalError(ValueError):
    """Bytes that are not canonical msgpack of the allowed types."""


def _canon(obj: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise CanonicalError("value nested too deeply")
    if isinstance(obj, int) and not isinstance(obj, bool) and not _MIN_INT <= obj <= _MAX_INT:
        raise CanonicalError(f"integer {obj} does not fit 64 bits")
    if obj is None or isinstance(obj, bool | int | str | bytes):
        return obj
    if isinstance(obj, list | tuple):
        return [_canon(v, depth + 1) for v in obj]
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise CanonicalError(f"map keys must be strings, got {type(k).__name__}")
        return {k: _canon(obj[k], depth + 1) for k in sorted(obj)}
    raise CanonicalError(f"type {type(obj).__name__} is not allowed in canonical encoding")


def encode(obj: Any) -> bytes:
    out: bytes = msgpack.packb(_canon(obj), use_bin_type=True)
    return out


def decode_canonical(data: bytes, *, max_len: int = 1 << 20) -> Any:
    if len(data) > max_len:
        raise CanonicalError(f"encoding of {len(data)} bytes exceeds {max_len}")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=max_len,
            max_bin_len=max_len,
            max_array_len=4096,
            max_map_len=4096,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CanonicalError(f"not valid msgpack: {exc}") from None
    except Exception as exc:  # msgpack raises a few other kinds on hostile input
        raise CanonicalError(f"not valid msgpack: {type(exc).__name__}") from None
    if encode(obj) != data:
        raise CanonicalError("encoding is not canonical (sorted keys, shortest integers, no floats)")
    return obj
