"""Compiled CPU loops (numba) for the blockwise and mixed8 kernels: one pass over the data per step.

torch's CPU ops each make a pass over memory, so a dequantize written as gather + multiply +
dtype cast moves several times the bytes of its result; bitsandbytes' C loop moves each byte once.
The first four compute what the torch path CUDA runs computes, value for value, in one pass; the
outlier selection has no torch twin (every device selects on the host):

    block_absmax   absmax of each block; nan where a block holds nan or ±inf
    quantize       code = table[binary16 bit pattern of float32(x / divisor)]
    dequantize     code_map[code] * scale, as float32 or as fp16 / bf16 bit patterns
    delta_codes    mixed8's closed-loop delta codes (``delta``), block by block
    outliers       mixed8's outlier positions (``outliers.select_outliers``, ``coded_outliers``)

The first two read float32, float16 or bfloat16 input as it is, widening each value exactly.
Rounding to fp16 is LLVM's ``fptrunc`` (the CPU's F16C conversion), to bf16 integer round-to-
nearest-even: what ``torch.Tensor.half()`` and ``.bfloat16()`` do; the tests check both bit for bit.
Where a lookup cannot be vectorised (a gather per value), each block goes through a block-sized
float32 scratch so that the arithmetic around it can be: that doubled the speed of the bf16 output.

Large tensors are split by blocks over ``torch.get_num_threads()`` threads (at least
``PARALLEL_MIN_VALUES`` values each), which run the loops without the GIL. numba's own ``prange``
was measured and rejected: its build of the dequantize loop ran at half the speed of the serial
loop even on one thread (4M values, 2.3 against 5.2 GB/s).

Compiled on first use (nothing at import) and cached beside this file where that is writable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

__all__ = ["PARALLEL_MIN_VALUES", "block_absmax", "delta_codes", "dequantize", "outliers", "quantize"]

PARALLEL_MIN_VALUES = 1 << 17  # per thread: below this, handing work to a thread costs more than it saves
_POOL: ThreadPoolExecutor | None = None  # started on first use, never at import
_POOL_LOCK = threading.Lock()


@intrinsic
def _f16_bits(typingctx: Any, value: Any) -> Any:
    """binary16 bit pattern of a float32, rounded to nearest even (LLVM fptrunc, then a bitcast)."""
    if value != types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(types.float32), codegen


@intrinsic
def _f16_value(typingctx: Any, bits: Any) -> Any:
    """The float32 value of a binary16 bit pattern (exact: LLVM fpext)."""
    if bits != types.uint16:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.uint16), codegen


@intrinsic
def _f32_bits(typingctx: Any, value: Any) -> Any:
    """The bit pattern of a float32 (a bitcast)."""
    if value != types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@intrinsic
def _f32_value(typingctx: Any, bits: Any) -> Any:
    """The float32 with bit pattern ``bits`` (a bitcast)."""
    if bits != types.uint32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


@intrinsic
def _bf16_value(typingctx: Any, bits: Any) -> Any:
    """The float32 value of a bfloat16 bit pattern (its bits, shifted up 16: exact)."""
    if bits != types.uint16:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        wide = builder.shl(builder.zext(args[0], ir.IntType(32)), ir.Constant(ir.IntType(32), 16))
        return builder.bitcast(wide, ir.FloatType())

    return types.float32(types.uint16), codegen


_IN_F32, _IN_F16, _IN_BF16 = 0, 1, 2
_IN_KIND = {torch.float32: _IN_F32, torch.float16: _IN_F16, torch.bfloat16: _IN_BF16}


def _load(x: Any, i: int, kind: int) -> Any:
    """x[i] as float32: ``x`` holds float32 values (kind 0) or fp16 (1) / bf16 (2) bit patterns."""
    raise NotImplementedError("compiled only: called from the loops below")


@overload(_load, inline="always")
def _load_typed(x: Any, i: Any, kind: Any) -> Any:
    def from_f32(x: Any, i: Any, kind: Any) -> Any:
        return x[i]

    def from_bits(x: Any, i: Any, kind: Any) -> Any:
        if kind == 1:
            return _f16_value(x[i])
        return _bf16_value(x[i])

    return from_f32 if x.dtype == types.float32 else from_bits


@numba.njit(cache=True, boundscheck=False, inline="always")
def _bf16_bits(bits: Any) -> Any:
    """bfloat16 bit pattern of the finite float32 with bit pattern ``bits``, rounded to nearest even."""
    return np.uint16((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _absmax(x: Any, kind: int, block: int, out: Any) -> None:
    # On bit patterns: |x| is bits & 0x7FFFFFFF, and for non-negative floats the integer order is
    # the float order, with ±inf and nan above every finite value. An integer max vectorises.
    for b in range(out.size):
        start = b * block
        stop = min(start + block, x.size)
        biggest = np.uint32(0)
        for i in range(start, stop):
            biggest = max(biggest, np.uint32(_f32_bits(_load(x, i, kind)) & np.uint32(0x7FFFFFFF)))
        out[b] = _f32_value(biggest) if biggest < np.uint32(0x7F800000) else np.float32(np.nan)


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _quantize(x: Any, kind: int, divisors: Any, table: Any, block: int, full: int, codes: Any) -> None:
    # ``full`` (= x.size // block) comes from the caller: a ``//`` here halved the loops' speed
    u = np.empty(block, dtype=np.float32)
    for b in range(full):
        divisor = divisors[b]
        base = b * block
        for j in range(block):
            u[j] = _load(x, base + j, kind) / divisor
        for j in range(block):
            codes[base + j] = table[_f16_bits(u[j])]
    if full < divisors.size:
        divisor = divisors[full]
        for i in range(full * block, x.size):
            codes[i] = table[_f16_bits(np.float32(_load(x, i, kind) / divisor))]


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _dequantize_f32(codes: Any, scales: Any, code_map: Any, block: int, full: int, out: Any) -> None:
    for b in range(full):
        scale = scales[b]
        base = b * block
        for j in range(block):
            out[base + j] = code_map[codes[base + j]] * scale
    if full < scales.size:
        scale = scales[full]
        for i in range(full * block, codes.size):
            out[i] = code_map[codes[i]] * scale


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _dequantize_16(codes: Any, scales: Any, code_map: Any, block: int, full: int, bf16: bool, out: Any) -> None:
    values = np.empty(block, dtype=np.float32)
    bits = values.view(np.uint32)
    for b in range(full + (1 if full < scales.size else 0)):
        scale = scales[b]
        base = b * block
        count = min(block, codes.size - base)
        for j in range(count):
            values[j] = code_map[codes[base + j]] * scale
        if bf16:
            for j in range(count):
                out[base + j] = _bf16_bits(bits[j])
        else:
            for j in range(count):
                out[base + j] = _f16_bits(values[j])


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _delta_codes(blocks: Any, is_delta: Any, anchors: Any, divisors: Any, wide: Any, table: Any, codes: Any) -> None:
    # The float64 arithmetic of delta.py's torch loop, in its order, so that the codes are the same.
    # Each block is a chain (a value's code needs the rebuild before it), so 16 blocks step together:
    # their chains overlap in the pipeline, twice the speed of one block at a time.
    group = 16
    rebuilt = np.empty(group)
    for r0 in range(0, blocks.shape[0], group):
        r1 = min(blocks.shape[0], r0 + group)
        for r in range(r0, r1):
            rebuilt[r - r0] = anchors[r]
        for i in range(blocks.shape[1]):
            for r in range(r0, r1):
                k = np.rint((np.float64(blocks[r, i]) - rebuilt[r - r0]) / divisors[r] * 127.0)
                code = np.int64(min(max(k, -127.0), 127.0)) + 127
                codes[r, i] = np.uint8(code)
                if is_delta[r]:
                    rebuilt[r - r0] += np.float64(table[code] * wide[r])


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _outliers(v: Any, threshold: float, ratio: float, budget: int, out: Any) -> Any:
    # Candidates: |v| above the threshold (raised to ratio x the mean finite |v| when ratio > 0), nan and
    # ±inf. Past the budget: every non-finite one, then the largest, ties to the lower position.
    n = v.size
    if ratio > 0.0:
        total = 0.0
        finite = 0
        for i in range(n):
            a = abs(v[i])
            if a < np.inf:
                total += a
                finite += 1
        if finite:
            threshold = max(threshold, ratio * (total / finite))
    limit = np.float32(threshold)
    count = 0
    nonfinite = 0
    for i in range(n):
        a = abs(v[i])
        if not a <= limit:  # above it, or nan
            out[count] = i
            count += 1
            if not a < np.inf:
                nonfinite += 1
    if count <= budget:
        return count
    keep = max(budget, nonfinite)
    magnitude = np.empty(count, dtype=np.float32)
    for j in range(count):
        a = abs(v[out[j]])
        magnitude[j] = a if a == a else np.inf
    order = np.argsort(-magnitude, kind="mergesort")  # stable: ties keep the lower position first
    chosen = np.sort(out[:count][order[:keep]])
    out[:keep] = chosen
    return keep


def _as_loop_input(flat: torch.Tensor) -> tuple[np.ndarray, int]:
    kind = _IN_KIND[flat.dtype]
    if kind == _IN_F32:
        return flat.contiguous().numpy(), kind
    return flat.contiguous().view(torch.int16).numpy().view(np.uint16), kind


def _parts(numel: int, block_size: int) -> list[tuple[int, int]]:
    """Block ranges [b0, b1) for the threads that split a loop over ``numel`` values."""
    nblocks = -(-numel // block_size)
    threads = min(torch.get_num_threads(), nblocks, max(1, numel // PARALLEL_MIN_VALUES))
    if threads <= 1:
        return [(0, nblocks)]
    step = -(-nblocks // threads)
    return [(b0, min(nblocks, b0 + step)) for b0 in range(0, nblocks, step)]


def _run_parts(loop: Callable[[int, int], None], numel: int, block_size: int) -> None:
    """Run ``loop(b0, b1)`` over block ranges, on the pool's threads when there is more than one."""
    global _POOL
    parts = _parts(numel, block_size)
    if len(parts) == 1:
        loop(*parts[0])
        return
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < len(parts) - 1:
            if _POOL is not None:
                _POOL.shutdown(wait=False)  # its idle threads exit; calls already queued still run
            _POOL = ThreadPoolExecutor(max_workers=len(parts) - 1, thread_name_prefix="nesachain-kernels")
        futures = [_POOL.submit(loop, b0, b1) for b0, b1 in parts[1:]]  # under the lock: no shutdown between
    loop(*parts[0])  # the calling thread takes the first part
    for future in futures:
        future.result()


def block_absmax(flat: torch.Tensor, block_size: int) -> torch.Tensor:
    """float32 (ceil(N / B),): the absmax of each block of the 1-D float32/float16/bfloat16 CPU ``flat``."""
    out = torch.empty(-(-flat.numel() // block_size), dtype=torch.float32)
    array, kind = _as_loop_input(flat)
    result = out.numpy()

    def loop(b0: int, b1: int) -> None:
        _absmax(array[b0 * block_size : b1 * block_size], kind, block_size, result[b0:b1])

    if out.numel():
        _run_parts(loop, flat.numel(), block_size)
    return out


def quantize(flat: torch.Tensor, divisors: torch.Tensor, table: torch.Tensor, block_size: int) -> torch.Tensor:
    """uint8 codes of the 1-D float32/float16/bfloat16 CPU ``flat``, one float32 divisor (> 0) per block."""
    codes = torch.empty(flat.numel(), dtype=torch.uint8)
    array, kind = _as_loop_input(flat)
    result, divisor_array, table_array = codes.numpy(), divisors.numpy(), table.numpy()

    def loop(b0: int, b1: int) -> None:
        part = array[b0 * block_size : b1 * block_size]
        full = part.size // block_size  # computed here: a ``//`` inside the loop halves its speed
        _quantize(part, kind, divisor_array[b0:b1], table_array, block_size, full, result[b0 * block_size :])

    if codes.numel():
        _run_parts(loop, flat.numel(), block_size)
    return codes


def dequantize(
    codes: torch.Tensor, scales: torch.Tensor, code_map: torch.Tensor, block_size: int, dtype: torch.dtype
) -> torch.Tensor:
    """``code_map[codes] * scales[block]`` as a 1-D CPU tensor of ``dtype`` (float32, float16, bfloat16).

    ``codes`` uint8, ``scales`` and ``code_map`` float32, all contiguous CPU tensors.
    """
    wide = dtype == torch.float32
    out = torch.empty(codes.numel(), dtype=torch.float32 if wide else torch.int16)
    result = out.numpy() if wide else out.numpy().view(np.uint16)
    code_array, scale_array, map_array = codes.numpy(), scales.numpy(), code_map.numpy()
    bf16 = dtype == torch.bfloat16

    def loop(b0: int, b1: int) -> None:
        part = code_array[b0 * block_size : b1 * block_size]
        full = part.size // block_size
        target = result[b0 * block_size : b1 * block_size]
        if wide:
            _dequantize_f32(part, scale_array[b0:b1], map_array, block_size, full, target)
        else:
            _dequantize_16(part, scale_array[b0:b1], map_array, block_size, full, bf16, target)

    if out.numel():
        _run_parts(loop, codes.numel(), block_size)
    return out if wide else out.view(dtype)


def delta_codes(
    blocks: torch.Tensor, is_delta: torch.Tensor, anchors: torch.Tensor, divisors: torch.Tensor,
    wide: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """uint8 (R, B) codes of float32 CPU ``blocks`` (R, B): what ``delta``'s torch loop computes.

    A delta block codes each value's difference from the decoder's running rebuild (its float64
    ``anchor`` plus ``table[code] * wide`` so far, each product rounded to float32 as the decoder
    rounds it), a centred block the value's difference from its anchor; the difference over the
    float64 divisor, times 127, rounded half to even and clamped to ±127, plus 127 is the code.
    """
    codes = torch.empty(blocks.shape, dtype=torch.uint8)
    if codes.numel():
        _delta_codes(blocks.contiguous().numpy(), is_delta.contiguous().numpy(), anchors.contiguous().numpy(),
                     divisors.contiguous().numpy(), wide.contiguous().numpy(), table.contiguous().numpy(),
                     codes.numpy())
    return codes


def outliers(v: np.ndarray, threshold: float, budget: int, ratio: float = 0.0) -> np.ndarray:
    """int64 ascending positions of the outliers of the float32 1-D host array ``v`` (``_outliers``)."""
    out = np.empty(v.size, dtype=np.int64)
    count = int(_outliers(np.ascontiguousarray(v, dtype=np.float32), float(threshold), float(ratio), budget, out))
    return out[:count]
