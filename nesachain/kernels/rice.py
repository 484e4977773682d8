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

import numpy as np
import torch

from nesachain.kernels.errors import FrameError

__all__ = ["MAX_K", "MAX_LEVEL", "choose_step", "decode_levels", "encode_levels", "levels_on"]

MAX_K = 15
MAX_LEVEL = 1 << 24  # |level| at most this: a value's unary part stays below 2^10 bits
_RATE_STEPS = 16  # bounded search for the step
_TINY = float(torch.finfo(torch.float32).tiny)


def _zigzag(q: np.ndarray) -> np.ndarray:
    return (q << 1) ^ (q >> 63)  # 2q for q >= 0, -2q - 1 below (int64)


def _bit_offsets(per_value: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(first byte, bit within it) of each value's low bits, int64 (n,) each, and the low bits' total."""
    widths = per_value.astype(np.int64)
    ends = np.cumsum(widths)
    starts = ends - widths
    return starts >> 3, starts & 7, int(ends[-1]) if ends.size else 0


def _lengths(n: int, block_size: int) -> np.ndarray:
    """int64 (nblocks,): how many values each block holds."""
    nblocks = -(-n // block_size)
    lengths = np.full(nblocks, block_size, dtype=np.int64)
    if nblocks:
        lengths[-1] = n - (nblocks - 1) * block_size
    return lengths


def _parameters(u: np.ndarray, block_size: int) -> tuple[np.ndarray, int]:
    """(each block's k, int64 (nblocks,); the bits of all codes, k nibbles included) of the 1-D int64 ``u``.

    A block's best k is within one of floor(log2(mean u)) (uniform u: exactly that; geometric u: about
    0.5 below); the three are tried and the cheapest kept (ties: the lowest k).
    """
    n = u.size
    lengths = _lengths(n, block_size)
    padded = np.zeros(lengths.size * block_size, dtype=np.int64)
    padded[:n] = u
    blocks = padded.reshape(-1, block_size)  # (nblocks, B), padding 0: 0 >> k adds nothing
    mean = blocks.sum(axis=1) / lengths
    centre = np.floor(np.log2(np.maximum(mean, 1.0))).astype(np.int64)
    best_k = best_bits = None
    for offset in (-1, 0, 1):
        k = np.clip(centre + offset, 0, MAX_K)
        bits = lengths * (k + 1) + (blocks >> k[:, None]).sum(axis=1)
        if best_k is None or best_bits is None:
            best_k, best_bits = k, bits
        else:
            better = bits < best_bits
            best_k, best_bits = np.where(better, k, best_k), np.where(better, bits, best_bits)
    assert best_k is not None and best_bits is not None
    return best_k, int(best_bits.sum()) + 4 * lengths.size


def levels_on(values: torch.Tensor, step: float) -> torch.Tensor:
    """int64 levels of ``values`` on ``step`` (a float32 number): round(value / step), ties to even, in float32.
    The encoder and ``frame.requantize`` both use it, so the same values give the same levels."""
    v = values.detach().reshape(-1).to(torch.float32).cpu().numpy()
    return torch.from_numpy(np.rint(v / np.float32(step)).astype(np.int64)).to(values.device)


def _region_bytes(bits: int, nblocks: int) -> int:
    """An upper bound on the coded region's bytes for ``bits`` code bits (three streams, each padded)."""
    return -(-(bits - 4 * nblocks) // 8) + 2 + -(-nblocks // 2)


def choose_step(rest: torch.Tensor, budget_bytes: int, block_size: int) -> tuple[float, torch.Tensor] | None:
    """(float32 step, int64 levels) for the finite float32 1-D ``rest``: the finest step whose coded region
    fits ``budget_bytes``, found in a bounded search; None when no step fits or the best one is coarser
    than absmax / 127 (an 8-bit quantizer of the whole tensor would do better), or ``rest`` is all 0.
    The search runs on the CPU (numpy: a frame is a few thousand values, where torch's per-op cost
    dominates); the levels come back on ``rest``'s device."""
    v = rest.detach().reshape(-1).to(torch.float32).cpu().numpy()
    n = v.size
    amax = float(np.abs(v).max()) if n else 0.0
    if amax == 0.0 or budget_bytes <= 0:
        return None
    nblocks = -(-n // block_size)
    coarsest, finest = amax / 127.0, amax / MAX_LEVEL * (1 + 2.0**-20)  # |level| <= MAX_LEVEL after rounding
    rms = math.sqrt(float(np.square(v, dtype=np.float64).mean()))
    target_bits = 8 * budget_bytes  # about what the code may spend (the padding is checked exactly below)
    step = min(coarsest, max(finest, rms * 2.0 ** -(target_bits / n - 2.05)))  # a Gaussian's entropy at that step
    best: tuple[float, np.ndarray] | None = None
    for _ in range(_RATE_STEPS):
        step = float(np.float32(step))  # the step the frame carries
        if not _TINY <= step < math.inf:  # subnormal tensors: leave them to the 8-bit treatments
            break
        levels = np.rint(v / np.float32(step)).astype(np.int64)
        bits = _parameters(_zigzag(levels), block_size)[1]
        fits = _region_bytes(bits, nblocks) <= budget_bytes
        if fits and (best is None or step < best[0]):
            best = (step, levels)
        over = (bits - target_bits + 32) / n  # bits a value over an aim just below the budget (padding: < 3 bytes)
        if fits and over > -1 / 64:
            break
        new = min(coarsest, max(finest, step * 2.0 ** (over + (0.002 if over > 0 else 0.0))))
        if new == step:
            break
        step = new
    if best is None:
        return None
    return best[0], torch.from_numpy(best[1]).to(rest.device)


def encode_levels(levels: torch.Tensor, block_size: int) -> bytes:
    """The coded region (module doc) of the 1-D int64 ``levels``, each within ±``MAX_LEVEL``."""
    u_signed = _zigzag(levels.reshape(-1).cpu().numpy().astype(np.int64))
    k = _parameters(u_signed, block_size)[0].astype(np.uint8)
    u = u_signed.astype(np.uint64)
    n = u.size
    nibbles = np.zeros(2 * -(-k.size // 2), dtype=np.uint8)
    nibbles[: k.size] = k
    per_value = np.repeat(k, _lengths(n, block_size))  # (n,) uint8
    first, shift, low_bits = _bit_offsets(per_value)
    width = per_value.astype(np.uint64)
    fields = (u & ((np.uint64(1) << width) - np.uint64(1))) << shift.astype(np.uint64)  # < 2^22: 3 bytes each
    low_len = -(-low_bits // 8)
    low = np.zeros(low_len + 3, dtype=np.int64)  # first <= low_len (a k = 0 value at the end): + 2 more bytes
    for j in range(3):  # fields do not overlap: adding bytes is OR-ing them
        low += np.bincount(first + j, weights=(fields >> np.uint64(8 * j)) & np.uint64(0xFF),
                           minlength=low_len + 3).astype(np.int64)
    high = (u >> width).astype(np.int64)
    unary = np.ones(int(high.sum()) + n, dtype=np.uint8)
    unary[np.cumsum(high + 1) - 1] = 0
    return b"".join([
        (nibbles[0::2] | (nibbles[1::2] << 4)).tobytes(),
        low[:low_len].astype(np.uint8).tobytes(),
        np.packbits(unary, bitorder="little").tobytes(),
    ])


def decode_levels(region: memoryview, n: int, block_size: int) -> torch.Tensor:
    """int64 (n,) levels from a coded region; ``FrameError`` unless it is exactly a canonical region for n values.

    The caller has checked that the region has at least one byte per 8 values; the work arrays here are
    a few int64 values per value (n of them), and the unpacked bits one byte per bit of the region.
    """
    nblocks = -(-n // block_size)
    nibble_bytes = -(-nblocks // 2)
    if len(region) < nibble_bytes:
        raise FrameError("coded frame truncated inside its block parameters")
    packed = np.frombuffer(region[:nibble_bytes], dtype=np.uint8)
    k = np.empty(2 * nibble_bytes, dtype=np.uint8)
    k[0::2], k[1::2] = packed & 0x0F, packed >> 4
    if k[nblocks:].any():
        raise FrameError("coded frame: the nibble after the last block's parameter must be 0")
    per_value = np.repeat(k[:nblocks], _lengths(n, block_size))  # (n,) uint8
    first, shift, low_bits = _bit_offsets(per_value)
    low_end = nibble_bytes + -(-low_bits // 8)
    if len(region) < low_end:
        raise FrameError("coded frame truncated inside its low bits")
    low = np.zeros(low_end - nibble_bytes + 3, dtype=np.int64)  # first <= its length, + 2 bytes read
    low[: low_end - nibble_bytes] = np.frombuffer(region[nibble_bytes:low_end], dtype=np.uint8)
    if low_bits % 8 and int(low[low_end - nibble_bytes - 1]) >> (low_bits % 8):
        raise FrameError("coded frame: padding after the low bits must be 0")
    word = low[first] | (low[first + 1] << 8) | (low[first + 2] << 16)  # (n,): each value's bits and neighbours'
    lo = (word >> shift) & ((1 << per_value.astype(np.int64)) - 1)
    unary = np.unpackbits(np.frombuffer(region[low_end:], dtype=np.uint8), bitorder="little")
    ends = np.flatnonzero(unary == 0)
    if ends.size < n:
        raise FrameError(f"coded frame holds {ends.size} codes for {n} values")
    last = int(ends[n - 1]) if n else -1
    if unary.size - last - 1 >= 8 or unary[last + 1 :].any():
        raise FrameError("coded frame: only fewer than 8 0 bits may follow the last code")
    high = np.diff(ends[:n], prepend=-1) - 1
    u = (high << per_value.astype(np.int64)) | lo
    if n and int(u.max()) > 2 * MAX_LEVEL:
        raise FrameError(f"coded frame: a level beyond ±{MAX_LEVEL}")
    levels = (u >> 1) ^ -(u & 1)
    return torch.from_numpy(levels)
