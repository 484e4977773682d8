"""Sizes in a blockwise8 / mixed8 frame's payload (the layout is in ``frame``'s docstring).

One place for them: the decoder checks a frame's length with ``payload_bytes``, and mixed8's encoder
uses it to decide whether fp32 outlier values still fit its byte budget (``mixed.outlier_value_dtype``).
"""

from __future__ import annotations

__all__ = ["payload_bytes", "position_width"]


def position_width(numel: int) -> int:
    """Bytes per outlier position in a tensor of ``numel`` values."""
    return 2 if numel <= 1 << 16 else 4 if numel <= 1 << 32 else 8


def payload_bytes(numel: int, block_size: int, scale_bytes: int, centres: bool = False, delta: bool = False,
                  grid: bool = False, outliers: int = 0, outlier_bytes: int = 0) -> int:
    """Payload length of ``numel`` codes in blocks of ``block_size`` with ``scale_bytes``-byte scales, then
    fp16 centres or bases (``centres`` or ``delta``), delta bits, fp32 grid bases, and ``outliers``
    positions and ``outlier_bytes``-byte values (Python integers: no overflow)."""
    nblocks = -(-numel // block_size)
    size = numel + nblocks * scale_bytes
    if centres or delta:
        size += nblocks * 2
    if delta:
        size += -(-nblocks // 8)
    if grid:
        size += nblocks * 4
    return size + outliers * (position_width(numel) + outlier_bytes)
