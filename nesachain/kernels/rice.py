"""Coded blocks for mixed8: every value on one uniform step, the levels Rice-coded, one parameter a block.

Why. An absmax-scaled 8-bit block spends 8 bits on every value whatever the block holds, and one
large value sets a coarse step for the whole block; that is what mixed8's outliers and rotation fight.
A uniform quantizer with an entropy code has neither problem: a value costs about as many bits as its
size needs, so a large value costs a few bits more instead of coarsening its neighbours, and the step
can be as fine as the byte budget allows. Rice codes (Golomb codes with a power-of-two parameter, as
in lossless audio) come within about 0.2 bits of a value's entropy here and need no tables.

Measured on SmolLM2-135M with one-off scripts (3 shards, all four transfers of a route compressed,
8 × 128 tokens of ``pydoc_data.topics``, 8.96 bits a value, no outliers apart): KL 3.9e-5 with coded
blocks of 32 or 64 against 1.6e-4 for rotated 8-bit blocks with fp16 outliers at 8.70 bits; rotation
before the Rice code 6.2e-5 (it makes a heavy-tailed block Gaussian, which costs more bits for the
same step); order-0 entropy (no real code reaches it) 2.8e-5. As mixed8 encodes them (outliers apart),
on 64 × 128 tokens (``bench/headroom.py --windows 64``): KL 3.8e-5 and 99.55 % top-1 agreement, every
frame coded, against 1.6e-4 and 99.24 % with mixed8's 8-bit treatments only (8.70 bits a value).

The code. A level q (an integer, |q| <= ``MAX_LEVEL``) becomes u = 2q for q >= 0 and -2q - 1 below
(zigzag); a block of B values with parameter k sends each u as its low k bits and then u >> k in
unary (that many 1 bits and a 0). k (0..15) is chosen per block for the fewest bits. The coded region
is three bit streams, each packed LSB first and padded with 0 bits to a byte:

    ceil(nblocks / 2) bytes   each block's k, a nibble, low nibble first (a last odd nibble 0)
    ceil(sum k / 8) bytes     the values' low bits, value by value, k bits each
    the rest                  the values' unary parts; after the last value's 0 bit, fewer than 8 0 bits
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import torch

from nesachain.kernels.errors import FrameError

__all__ = ["MAX_K", "MAX_LEVEL", "choose_step", "decode_levels", "decode_values", "encode_levels", "levels_on"]

MAX_K = 15
MAX_LEVEL = 1 << 24  # |level| at most this: a value's unary part stays below 2^10 bits
_RATE_STEPS = 16  # bounded search for the step
_TINY = float(torch.finfo(torch.float32).tiny)
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)

# decode_levels' refusals, by the code ``_decode`` returns
_DECODE_ERRORS = {
    1: "coded frame truncated inside its block parameters",
    2: "coded frame: the nibble after the last block's parameter must be 0",
    3: "coded frame truncated inside its low bits",
    4: "coded frame: padding after the low bits must be 0",
    5: "coded frame holds too few codes for {n} values",
    6: f"coded frame: a level beyond ±{MAX_LEVEL}",
    7: "coded frame: only fewer than 8 0 bits may follow the last code",
}


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _parameters(levels: Any, block: int, ks: Any) -> Any:
    """Each block's Rice parameter into ``ks`` (uint8, (nblocks,)); returns the bits of all codes, k nibbles
    included. A block's best k is within one of c = floor(log2(mean u)) (0 when the mean is below 2): c - 1,
    c and c + 1, clipped to 0..MAX_K, are tried and the cheapest kept (ties: the lowest k)."""
    n = levels.size
    total = 0
    for b in range(ks.size):
        lo = b * block
        hi = min(n, lo + block)
        length = hi - lo
        s = 0
        for i in range(lo, hi):
            q = levels[i]
            s += (q << 1) ^ (q >> 63)
        c = 0
        while c < 40 and (length << (c + 1)) <= s:  # the largest c with length * 2^c <= s
            c += 1
        best_k = -1
        best_bits = 0
        for offset in range(-1, 2):
            k = min(max(c + offset, 0), MAX_K)
            bits = length * (k + 1)
            for i in range(lo, hi):
                q = levels[i]
                bits += ((q << 1) ^ (q >> 63)) >> k
            if best_k < 0 or bits < best_bits:
                best_k, best_bits = k, bits
        ks[b] = best_k
        total += best_bits + 4
    return total


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _levels_on(v: Any, step: Any, out: Any) -> None:
    """out[i] = round(v[i] / step), ties to even, the division in float32 (as ``levels_on``), saturating at
    ±2^62 (a recomputation a verifier puts on a miner's step can be any size)."""
    bound = np.float32(2.0**62)
    for i in range(v.size):
        out[i] = np.int64(min(max(np.rint(v[i] / step), -bound), bound))


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _encode(levels: Any, ks: Any, block: int, out: Any) -> Any:
    """The coded region (module doc) of ``levels`` with parameters ``ks`` into ``out`` (zeroed, large enough);
    returns its length in bytes."""
    n = levels.size
    nblocks = ks.size
    for b in range(nblocks):
        out[b >> 1] |= ks[b] << (4 * (b & 1))
    pos = (nblocks + 1) >> 1
    acc = 0  # bits not yet written, LSB first; fewer than 8 between values
    nacc = 0
    for b in range(nblocks):  # the low bits
        k = int(ks[b])
        mask = (1 << k) - 1
        for i in range(b * block, min(n, (b + 1) * block)):
            q = levels[i]
            acc |= (((q << 1) ^ (q >> 63)) & mask) << nacc
            nacc += k
            while nacc >= 8:
                out[pos] = acc & 0xFF
                pos += 1
                acc >>= 8
                nacc -= 8
    if nacc:
        out[pos] = acc
        pos += 1
        acc = 0
        nacc = 0
    for b in range(nblocks):  # the unary parts: u >> k 1 bits, then a 0 bit
        k = int(ks[b])
        for i in range(b * block, min(n, (b + 1) * block)):
            q = levels[i]
            high = ((q << 1) ^ (q >> 63)) >> k
            while high:
                m = min(high, 32)
                acc |= ((1 << m) - 1) << nacc
                nacc += m
                high -= m
                while nacc >= 8:
                    out[pos] = acc & 0xFF
                    pos += 1
                    acc >>= 8
                    nacc -= 8
            nacc += 1
            if nacc == 8:
                out[pos] = acc & 0xFF
                pos += 1
                acc = 0
                nacc = 0
    if nacc:
        out[pos] = acc
        pos += 1
    return pos


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _decode(region: Any, n: int, block: int, levels: Any) -> Any:
    """``levels`` (int64, (n,)) from a coded region; 0, or the code of the first rule the region breaks
    (``_DECODE_ERRORS``). Reads only within ``region``."""
    size = region.size
    nblocks = (n + block - 1) // block
    nibble_bytes = (nblocks + 1) >> 1
    if size < nibble_bytes:
        return 1
    if nblocks & 1 and region[nibble_bytes - 1] >> 4:
        return 2
    low_bits = 0
    for b in range(nblocks):
        low_bits += (min(n, (b + 1) * block) - b * block) * int((region[b >> 1] >> (4 * (b & 1))) & 0x0F)
    low_end = nibble_bytes + (low_bits + 7) // 8
    if size < low_end:
        return 3
    if low_bits & 7 and int(region[low_end - 1]) >> (low_bits & 7):
        return 4
    pos = nibble_bytes
    acc = 0
    nacc = 0
    for b in range(nblocks):  # the low bits, kept in levels for now
        k = int((region[b >> 1] >> (4 * (b & 1))) & 0x0F)
        for i in range(b * block, min(n, (b + 1) * block)):
            while nacc < k:
                acc |= int(region[pos]) << nacc
                pos += 1
                nacc += 8
            levels[i] = acc & ((1 << k) - 1)
            acc >>= k
            nacc -= k
    pos = low_end
    acc = 0
    nacc = 0
    limit = 2 * MAX_LEVEL
    for b in range(nblocks):
        k = int((region[b >> 1] >> (4 * (b & 1))) & 0x0F)
        most = limit >> k  # a longer unary part is a level beyond MAX_LEVEL
        for i in range(b * block, min(n, (b + 1) * block)):
            high = 0
            while True:
                if nacc == 0:
                    if pos >= size:
                        return 5
                    acc = int(region[pos])
                    pos += 1
                    nacc = 8
                if acc == (1 << nacc) - 1:  # only 1 bits left in this byte
                    high += nacc
                    nacc = 0
                    if high > most:
                        return 6
                    continue
                while acc & 1:
                    acc >>= 1
                    nacc -= 1
                    high += 1
                acc >>= 1  # the 0 bit
                nacc -= 1
                break
            if high > most:
                return 6
            u = (high << k) | levels[i]
            if u > limit:
                return 6
            levels[i] = (u >> 1) ^ -(u & 1)
    if pos != size or acc:
        return 7
    return 0


@numba.njit(cache=True, boundscheck=False, nogil=True)
def _scaled(levels: Any, step: Any, out: Any) -> Any:
    """out[i] = float32(levels[i]) * step in float32 (exact levels: |level| <= 2^24); returns max |level|."""
    biggest = 0
    for i in range(levels.size):
        q = levels[i]
        biggest = max(biggest, abs(q))
        out[i] = np.float32(q) * step
    return biggest


def levels_on(values: torch.Tensor, step: float) -> torch.Tensor:
    """int64 levels of the finite ``values`` on ``step`` (a float32 number): round(value / step), ties to even,
    in float32, saturating at ±2^62. The encoder and ``frame.requantize`` both use it, so the same values
    give the same levels."""
    v = np.ascontiguousarray(values.detach().reshape(-1).to(torch.float32).cpu().numpy())
    out = np.empty(v.size, dtype=np.int64)
    _levels_on(v, np.float32(step), out)
    return torch.from_numpy(out).to(values.device)


def _region_bytes(bits: int, nblocks: int) -> int:
    """An upper bound on the coded region's bytes for ``bits`` code bits (three streams, each padded)."""
    return -(-(bits - 4 * nblocks) // 8) + 2 + -(-nblocks // 2)


def choose_step(rest: np.ndarray, budget_bytes: int, block_size: int) -> tuple[float, np.ndarray] | None:
    """(float32 step, int64 levels) for the finite float32 1-D host array ``rest``: the finest step whose
    coded region fits ``budget_bytes``, found in a bounded search; None when no step fits or the best one
    is coarser than absmax / 127 (an 8-bit quantizer of the whole tensor would do better), or ``rest`` is
    all 0. Compiled loops: a frame is a few thousand values, where torch's per-op cost dominates."""
    v = np.ascontiguousarray(rest, dtype=np.float32)
    n = v.size
    amax = float(np.abs(v).max()) if n else 0.0
    if amax == 0.0 or budget_bytes <= 0:
        return None
    nblocks = -(-n // block_size)
    ks = np.empty(nblocks, dtype=np.uint8)
    coarsest, finest = amax / 127.0, amax / MAX_LEVEL * (1 + 2.0**-20)  # |level| <= MAX_LEVEL after rounding
    rms = math.sqrt(float(np.square(v, dtype=np.float64).mean()))
    target_bits = 8 * budget_bytes  # about what the code may spend (the padding is checked exactly below)
    step = min(coarsest, max(finest, rms * 2.0 ** -(target_bits / n - 2.05)))  # a Gaussian's entropy at that step
    best: tuple[float, np.ndarray] | None = None
    levels = np.empty(n, dtype=np.int64)
    for _ in range(_RATE_STEPS):
        step = float(np.float32(step))  # the step the frame carries
        if not _TINY <= step < math.inf:  # subnormal tensors: leave them to the 8-bit treatments
            break
        _levels_on(v, np.float32(step), levels)
        bits = int(_parameters(levels, block_size, ks))
        fits = _region_bytes(bits, nblocks) <= budget_bytes
        if fits and (best is None or step < best[0]):
            best = (step, levels)
            levels = np.empty(n, dtype=np.int64)
        over = (bits - target_bits + 32) / n  # bits a value over an aim just below the budget (padding: < 3 bytes)
        if fits and over > -1 / 64:
            break
        new = min(coarsest, max(finest, step * 2.0 ** (over + (0.002 if over > 0 else 0.0))))
        if new == step:
            break
        step = new
    return best


def encode_levels(levels: torch.Tensor, block_size: int) -> bytes:
    """The coded region (module doc) of the 1-D int64 ``levels``, each within ±``MAX_LEVEL``."""
    q = np.ascontiguousarray(levels.reshape(-1).cpu().numpy().astype(np.int64, copy=False))
    nblocks = -(-q.size // block_size)
    ks = np.empty(nblocks, dtype=np.uint8)
    bits = int(_parameters(q, block_size, ks))
    out = np.zeros(_region_bytes(bits, nblocks), dtype=np.uint8)
    return out[: int(_encode(q, ks, block_size, out))].tobytes()


def decode_levels(region: memoryview, n: int, block_size: int) -> torch.Tensor:
    """int64 (n,) levels from a coded region; ``FrameError`` unless it is exactly a canonical region for n values.

    The caller has checked that the region has at least one byte per 8 values; the work array here is
    the n int64 levels."""
    return torch.from_numpy(_levels_of(region, n, block_size))


def _levels_of(region: memoryview, n: int, block_size: int) -> np.ndarray:
    levels = np.empty(n, dtype=np.int64)
    error = int(_decode(np.frombuffer(region, dtype=np.uint8), n, block_size, levels))
    if error:
        raise FrameError(_DECODE_ERRORS[error].format(n=n))
    return levels


def decode_values(region: memoryview, n: int, block_size: int, step: float) -> torch.Tensor:
    """float32 (n,): the levels of a coded region (``decode_levels``) times the float32 ``step``, as
    ``mixed.dequantize_mixed`` computes them; ``FrameError`` also where a value would be beyond float32."""
    out = np.empty(n, dtype=np.float32)
    biggest = int(_scaled(_levels_of(region, n, block_size), np.float32(step), out))
    if step * biggest > _FLOAT32_MAX:
        raise FrameError("coded frame values beyond float32")
    return torch.from_numpy(out)
