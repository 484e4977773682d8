"""A tensor frame's byte layout (``frame`` encodes and decodes it) and the sizes it implies.

Layout (little-endian; varint = unsigned LEB128, at most 10 bytes)::

    offset  size  field
    0       2     magic b"NT"
    2       1     format version (1)
    3       1     scheme: 0 none, 1 fp16, 2 blockwise8, 3 mixed8
    4       1     dtype of the tensor: 0 float32, 1 float16, 2 bfloat16; and, for scheme none only
                  (float64: or fp16), 3 float64, 4 int64, 5 int32, 6 int16, 7 int8, 8 uint8, 9 bool
    5       1     flags: bit 0 scales are float32 (else float16); bits 1-2 outlier value dtype
                  (as the dtype byte: 0 float32, 1 float16, 2 bfloat16); bit 3 blocks are
                  Hadamard-rotated; bit 4 blocks are centred; bit 5 blocks are delta-coded or centred,
                  block by block (linear map); bit 6 grid blocks (float32 tensor, float32 scales,
                  linear map id, no outliers, outlier dtype bits 0); bit 7 coded blocks (float32
                  scales, linear map id); at most one of bits 3-7
    6       1     log2 of the block size (5..12); 0 for none and fp16
    7       1     code map id (``MapId``); 0 for none and fp16
    8       1     ndim (0..8)
    9       ..    ndim varints: the shape
    ..      ..    mixed8 only: varint outlier count k
    ..      ..    coded blocks only: varint length of the coded region
    payload:
      none        numel values of dtype
      fp16        numel float16 values
      blockwise8  numel uint8 codes, then ceil(numel / block) scales
      mixed8      as blockwise8, then (bit 4 or 5 only) ceil(numel / block) float16 centres or
                  bases, then (bit 5 only) one bit per block, 1 = delta-coded (LSB first, padding
                  bits 0), then (bit 6 only) ceil(numel / block) float32 bases (the scales are
                  the steps: value = base + code * step), then k
                  ascending positions (uint16 if numel <= 2^16, uint32 if <= 2^32, else uint64), then
                  k outlier values; coded blocks (bit 7) instead: the float32 step, the coded
                  region (``rice``: levels, value = level * step), then k positions and k values
                  in the tensor's dtype (k: the non-finite values and the few far above the rest)

One place for the sizes: the decoder checks a frame's length with ``payload_bytes``, and mixed8's encoder
uses it to decide whether fp32 outlier values still fit its byte budget (``outliers.outlier_value_dtype``)
and ``header_bytes`` to size the Rice codes of coded blocks to that budget.
"""

from __future__ import annotations

import struct

__all__ = ["FIXED_HEADER", "header_bytes", "payload_bytes", "position_width", "varint_bytes"]

FIXED_HEADER = struct.Struct("<2sBBBBBBB")  # magic, version, scheme, dtype, flags, block log2, map id, ndim


def position_width(numel: int) -> int:
    """Bytes per outlier position in a tensor of ``numel`` values."""
    return 2 if numel <= 1 << 16 else 4 if numel <= 1 << 32 else 8


def varint_bytes(value: int) -> int:
    """Bytes of ``value`` (>= 0) as an unsigned LEB128 varint."""
    return max(1, -(-value.bit_length() // 7))


def header_bytes(shape: tuple[int, ...], *counts: int) -> int:
    """Length of a frame header for ``shape`` followed by the varints ``counts`` (outliers, coded bytes)."""
    return FIXED_HEADER.size + sum(varint_bytes(v) for v in (*shape, *counts))


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
