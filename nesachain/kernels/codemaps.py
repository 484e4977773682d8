"""8-bit code maps, referred to on the wire by a one-byte id (the map itself never travels).

A code map is 256 sorted float32 values in [-1, 1]. A value ``x`` of a block with scale ``s`` is
stored as the index of the code nearest to ``x / s``; the decoder returns ``code[index] * s``.

- ``MapId.DYNAMIC``: the signed dynamic (tree) map of Dettmers et al. ("8-bit Optimizers via
  Block-wise Quantization", 2022), identical to ``bitsandbytes.functional.create_dynamic_map()``:
  0, 1.0 and, for each decade 10^-7..10^0 (``i`` = 0..6), 2^i linearly spaced magnitudes of each
  sign. Fine near zero, 0.014 apart in [0.1, 1].
- ``MapId.LINEAR``: k / 127 for k = -127..127 (code 255 repeats 1.0 and is never produced).
  Uniform steps of 1/127: better than the dynamic map where a block's values are all of one size.

Quantizing looks the code up in a 65,536-entry table indexed by the bit pattern of ``x / s``
rounded to fp16, so the code chosen is the one nearest to fp16(x / s). That rounding moves u by at
most 2^-12 |u|, which ``error_factor`` includes.
"""

from __future__ import annotations

import functools
from enum import IntEnum

import torch

from nesachain.kernels.errors import KernelError

__all__ = [
    "MapId",
    "check_map_id",
    "code_map",
    "error_factor",
    "max_half_gap",
    "nearest_code",
    "quantize_table",
]

_EXPONENT_BITS = 7  # decades 10^-7 .. 10^0 in the signed 8-bit dynamic map


class MapId(IntEnum):
    """Wire id of a code map."""

    DYNAMIC = 0
    LINEAR = 1


def _dynamic_values() -> torch.Tensor:
    values: list[float] = [0.0, 1.0]
    for i in range(_EXPONENT_BITS):
        # 2^i codes in decade i: the midpoints of 2^i equal steps of [0.1, 1], times 10^(i-6).
        bounds = torch.linspace(0.1, 1.0, 2**i + 1, dtype=torch.float32)
        means = (bounds[:-1] + bounds[1:]) / 2.0
        magnitude = 10 ** (-(_EXPONENT_BITS - 1) + i)
        values += (magnitude * means).tolist()
        values += (-magnitude * means).tolist()
    values.sort()
    return torch.tensor(values, dtype=torch.float32)


def _linear_values() -> torch.Tensor:
    k = torch.arange(-127, 128, dtype=torch.float64)
    return torch.cat([k / 127.0, torch.ones(1, dtype=torch.float64)]).to(torch.float32)


def check_map_id(map_id: int) -> MapId:
    """``map_id`` as a ``MapId``; ``KernelError`` if no map has that id."""
    try:
        return MapId(map_id)
    except ValueError:
        raise KernelError(f"unknown code map id {map_id}; known: {[m.value for m in MapId]}") from None


@functools.cache
def _cpu_map(map_id: MapId) -> torch.Tensor:
    values = _dynamic_values() if map_id is MapId.DYNAMIC else _linear_values()
    if values.numel() != 256 or not bool((values[1:] >= values[:-1]).all()):
        raise KernelError(f"code map {map_id.name} is not 256 sorted values")  # construction bug
    return values


@functools.cache
def _cached(map_id: MapId, device: torch.device) -> torch.Tensor:
    return _cpu_map(map_id).to(device)


def code_map(map_id: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The 256 float32 codes of ``map_id``, sorted ascending, on ``device`` (default CPU).

    The returned tensor is shared: do not modify it.
    """
    return _cached(check_map_id(map_id), torch.device(device or "cpu"))


def nearest_code(u: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Index of the code nearest to each value of ``u`` (float32, 1-D); ties go to the lower index."""
    u = u.nan_to_num(nan=0.0)  # never produced for finite input; keeps the table defined
    return torch.argmin((u[:, None] - codes[None, :]).abs(), dim=1)  # (N, 256) -> (N,)


@functools.cache
def _cpu_table(map_id: MapId) -> torch.Tensor:
    codes = _cpu_map(map_id)
    patterns = torch.arange(65536, dtype=torch.int32).to(torch.uint16)
    values = patterns.view(torch.float16).float()  # every fp16 value, indexed by its bit pattern
    values = values.clamp(-2.0, 2.0)  # +-inf -> the end codes
    table = torch.empty(65536, dtype=torch.uint8)
    for start in range(0, 65536, 4096):  # (4096, 256) at a time
        table[start : start + 4096] = nearest_code(values[start : start + 4096], codes).to(torch.uint8)
    return table


@functools.cache
def _cached_table(map_id: MapId, device: torch.device) -> torch.Tensor:
    return _cpu_table(map_id).to(device)


def quantize_table(map_id: int, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8[65536]: the code nearest to each fp16 value, indexed by the value's bit pattern."""
    return _cached_table(check_map_id(map_id), torch.device(device or "cpu"))


def max_half_gap(map_id: int) -> float:
    """Largest distance from a value in [-1, 1] to its nearest code."""
    codes = _cpu_map(check_map_id(map_id)).double()
    inner = float((codes[1:] - codes[:-1]).max()) / 2.0
    ends = max(float(codes[0]) + 1.0, 1.0 - float(codes[-1]))  # -1 and 1 may lie past the end codes
    return max(inner, ends)


_OUTPUT_HALF_ULP = {torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


def error_factor(map_id: int, dtype: torch.dtype) -> float:
    """Blockwise promise: ``|decoded - x| <= error_factor * absmax(block of x)`` for every value.

    Sum of the map's largest half gap, the fp16 rounding of x / s (2^-12), the scale's own fp16
    rounding up (2^-10, times the half gap at most; counted in full) and the output dtype's ulp at
    the block's absmax.
    """
    if dtype not in _OUTPUT_HALF_ULP:
        raise KernelError(f"unsupported dtype {dtype}; supported: float32, float16, bfloat16")
    return max_half_gap(map_id) + 2.0**-12 + 2.0**-10 + 2.0 * _OUTPUT_HALF_ULP[dtype]
