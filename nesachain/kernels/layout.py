"""Sizes in a blockwise8 / mixed8 frame's payload (the layout is in ``frame``'s docstring).

One place for them: the decoder checks a frame's length with ``payload_bytes``, and mixed8's encoder
uses it to decide whether fp32 outlier values still fit its byte budget (``mixed.outlier_value_dtype``)
and ``header_bytes`` to size the Rice codes of coded blocks to that budget.
"""

from __future__ import annotations

__all__ = ["header_bytes", "payload_bytes", "position_width", "varint_bytes"]

FIXED_HEADER_BYTES = 9  # magic, version, scheme, dtype, flags, block log2, map id, ndim


def position_width(numel: int) -> int:
    """Bytes per outlier position in a tensor of ``numel`` values."""
    return 2 if numel <= 1 << 16 else 4 if numel <= 1 << 32 else 8


def varint_bytes(value: int) -> int:
    """Bytes of ``value`` (>= 0) as an unsigned LEB128 varint."""
    return max(1, -(-value.bit_length() // 7))


def header_bytes(shape: tuple[int, ...], *counts: int) -> int:
    """Length of a frame header for ``shape`` followed by the varints ``counts`` (outliers, coded bytes)."""
    return FIXED_HEADER_BYTES + sum(varint_bytes(v) for v in (*shape, *counts))


def payload_bytes(numel: int, block_size: int, scale_bytes: int, centres: bool = False, delta: bool = False,
                  grid: bool = False, outliers: int = 0, outlier_bytes: int = 0, coded_bytes: int | None = None) -> int:
    """Payload length of ``numel`` codes in blocks of ``block_size`` with ``scale_bytes``-byte scales, then
    fp16 centres or bases (``centres`` or ``delta``), delta bits, fp32 grid bases, and ``outliers``
    positions and ``outlier_bytes``-byte values; or, for coded blocks (``coded_bytes`` not None), a
    float32 step and ``coded_bytes`` of Rice codes in place of the codes and scales (Python integers:
    no overflow)."""
    if coded_bytes is not None:
        return 4 + coded_bytes + outliers * (position_width(numel) + outlier_bytes)
    nblocks = -(-numel // block_size)
    size = numel + nblocks * scale_bytes
    if centres or delta:
        size += nblocks * 2
    if delta:
        size += -(-nblocks // 8)
    if grid:
        size += nblocks * 4
    return size + outliers * (position_width(numel) + outlier_bytes)
