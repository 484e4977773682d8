"""Grid blocks: mixed8's exact path for tensors that are 8-bit data already.

An image a client sends is usually 8-bit pixels, resized as 8-bit pixels (Pillow does) and
normalised: ``(p / 255 - mean) / std``. Each channel's values then lie on an evenly spaced grid
of 256 points, and any block of one channel on a grid of at most 256 of them. Coding such a block
with an absmax or centred 8-bit step adds noise below the image's own precision that the model still
sees; sending each value's grid index loses nothing.

A block is on a grid when, with ``base`` its minimum and ``step`` its spread over a whole number
of levels K <= 255, every value comes back as ``base + code * step`` (float32, as the decoder
computes it) within step / 1024. The step is the spread over round(spread / (g / j)), where g is
the smallest gap between the block's sorted values and j the first of 1..4 that fits: a grid step
can be a fraction of the smallest gap a block happens to show (levels 0, 2 and 5). A constant
block has step 0.

Grid frames are float32 only, every block on a grid or none (the encoder then takes another
treatment; so is a grid whose step is below about 2^-12 of its values' magnitude, which float32 cannot
rebuild within step / 1024), blocks of 256 values, else 128 (a 224 x 224 channel plane is 196 blocks of 256; a
block across two channels sits on no one grid). Per block a float32 base and step: 1 + 8/256 bytes
per value (0.516 x fp16), 1 + 8/128 (0.531) at 128. A tensor of activations fails on its first block
(one sort of 256 values) and costs nothing more.
"""

from __future__ import annotations

import math

import torch

from nesachain.kernels.delta import padded_blocks

__all__ = ["GRID_BLOCK_SIZES", "GRID_TOLERANCE", "grid_code", "ungrid"]

GRID_BLOCK_SIZES = (256, 128)
GRID_TOLERANCE = 1.0 / 1024.0  # of a step
_MAX_LEVELS = 255
_GAP_DIVISORS = (1, 2, 3, 4)


def grid_code(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None:
    """(uint8 codes (N,), float32 steps (nblocks,), float32 bases (nblocks,), block size) of the
    float32 1-D ``flat``, or None when some block is on no grid (or ``flat`` is empty or not finite)."""
    if flat.dtype != torch.float32 or flat.numel() == 0:
        return None
    for block_size in GRID_BLOCK_SIZES:
        head = flat[:block_size]
        first = head.view(1, -1) if head.numel() == block_size else padded_blocks(head, block_size, float(head[-1]))
        if _fit(first) is None:  # the cheap test, before any pass over the whole tensor: activations fail here
            continue
        if not bool(torch.isfinite(flat).all()):
            return None
        fit = _fit(padded_blocks(flat, block_size, float(flat[-1])))  # (R, B): padding repeats the last value
        if fit is not None:
            codes, steps, bases = fit
            return codes.reshape(-1)[: flat.numel()], steps, bases, block_size
    return None


def _fit(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(uint8 codes (R, B), float32 steps (R,), float32 bases (R,)) if every row of ``blocks`` is on a grid."""
    low = blocks.amin(dim=1)  # (R,)
    spread = (blocks.amax(dim=1) - low).double()  # (R,)
    gaps = blocks.sort(dim=1).values.diff(dim=1)  # (R, B - 1)
    smallest = gaps.masked_fill(gaps <= 0, math.inf).amin(dim=1).double()  # (R,): inf for a constant block
    if bool((torch.round(spread / smallest) > _MAX_LEVELS).any()):  # too many levels at j = 1, so at every j
        return None
    offsets = blocks.double() - low.double()[:, None]  # (R, B)
    done = torch.zeros(blocks.shape[0], dtype=torch.bool, device=blocks.device)
    codes = torch.zeros(blocks.shape, dtype=torch.uint8, device=blocks.device)
    steps = torch.zeros(blocks.shape[0], dtype=torch.float32, device=blocks.device)
    for j in _GAP_DIVISORS:
        levels = torch.round(spread * j / smallest)  # (R,): 0 for a constant block
        step = torch.where(levels > 0, spread / levels.clamp(min=1), 0.0).float()  # (R,)
        k = torch.where(step[:, None] > 0, torch.round(offsets / step.double()[:, None]), 0.0)  # (R, B)
        rebuilt = low[:, None] + k.float() * step[:, None]  # (R, B): what ``ungrid`` computes
        fits = (levels <= _MAX_LEVELS) & ((rebuilt - blocks).abs() <= step[:, None] * GRID_TOLERANCE).all(dim=1)
        new = fits & ~done
        codes[new] = k[new].to(torch.uint8)
        steps[new] = step[new]
        done |= fits
        if bool(done.all()):
            return codes, steps, low
    return None


def ungrid(codes: torch.Tensor, steps: torch.Tensor, bases: torch.Tensor, block_size: int) -> torch.Tensor:
    """float32 (N,): each value's block base plus its code times the block's step."""
    n = codes.numel()
    return bases.repeat_interleave(block_size)[:n] + codes.float() * steps.repeat_interleave(block_size)[:n]
