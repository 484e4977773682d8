"""Block helpers behind mixed8's centred and delta-coded blocks (the choice among treatments, and why,
is in ``mixed``): padding a flat tensor into blocks, each block's centre and half-spread, and the
closed-loop delta coder with its inverse.
"""

from __future__ import annotations

import math

import torch

from nesachain.kernels import cpu_loops
from nesachain.kernels.blockwise import QuantizedBlocks, make_scales
from nesachain.kernels.codemaps import MapId, code_map

__all__ = ["block_centres", "delta_code", "delta_codes_torch", "padded_blocks", "undelta"]


def padded_blocks(flat: torch.Tensor, block_size: int, fill: float) -> torch.Tensor:
    """The 1-D ``flat`` as (ceil(N / B), B) blocks, the partial last block padded with ``fill``."""
    return torch.nn.functional.pad(flat, (0, -flat.numel() % block_size), value=fill).view(-1, block_size)


def block_centres(rest: torch.Tensor, is_outlier: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp16 centres, float64 half-spreads), both (nblocks,), of the finite 1-D ``rest``.

    A block's centre is the fp16-rounded midpoint of its non-outlier values (0 for a block of
    outliers only), its half-spread max |x - centre| over those values; a centre beyond fp16 is inf.
    """
    high = padded_blocks(rest.masked_fill(is_outlier, -math.inf), block_size, -math.inf).amax(dim=1)
    low = padded_blocks(rest.masked_fill(is_outlier, math.inf), block_size, math.inf).amin(dim=1)
    empty = high < low  # only outliers (and padding) in the block
    high, low = high.masked_fill(empty, 0.0), low.masked_fill(empty, 0.0)
    centres = ((high + low) * 0.5).to(torch.float16)
    wide = centres.float()
    return centres, torch.maximum(high - wide, wide - low).double()


def delta_code(
    flat: torch.Tensor, block_size: int, beat: torch.Tensor | None = None
) -> tuple[QuantizedBlocks, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(linear codes, fp16 centres or bases, delta blocks, float64 predicted cost) for the finite 1-D ``flat``.

    Each block is delta-coded where its largest step between neighbours (the first from its fp16
    base) is below its half-spread around the centre, and centred otherwise: a smooth ramp is
    delta-coded, a block across an image's row end (one big jump) is centred. Delta codes are closed
    loop: each value is coded as its difference from the value the decoder will have rebuilt before
    it, so errors do not add up along a block; the scale is 127/126 of the largest step, which keeps
    every difference within the codes. None when no block gains, when the predicted cost does not
    beat ``beat`` (checked before the loop along the blocks), or when a centre, base or step is not
    finite.
    """
    if flat.numel() == 0:
        return None
    n = flat.numel()
    blocks = padded_blocks(flat, block_size, float(flat[-1]))  # (R, B): padding repeats the last value
    centres, spread = block_centres(flat, torch.zeros_like(flat, dtype=torch.bool), block_size)  # (R,) each
    bases = blocks[:, 0].to(torch.float16)
    steps = torch.cat([blocks[:, :1].double() - bases.double()[:, None], blocks.double().diff(dim=1)], dim=1)
    reach = steps.abs().amax(dim=1) * (127 / 126)  # (R,) float64
    if not bool(torch.isfinite(centres).all() & torch.isfinite(bases).all() & torch.isfinite(reach).all()):
        return None
    is_delta = reach < spread
    if not bool(is_delta.any()):
        return None
    anchors = torch.where(is_delta, bases, centres)
    magnitude = torch.where(is_delta, reach, spread)
    cost = magnitude.square().sum()
    if beat is not None and not bool(cost < beat):
        return None
    scales = make_scales(magnitude.float())
    table = code_map(MapId.LINEAR, flat.device)
    wide = scales.float()  # what the decoder multiplies by
    divisors = torch.where(wide == 0, 1.0, wide).double()
    if flat.device.type == "cpu":
        codes = cpu_loops.delta_codes(blocks, is_delta, anchors.double(), divisors, wide, table)
    else:
        codes = delta_codes_torch(blocks, is_delta, anchors.double(), divisors, wide, table)
    q = QuantizedBlocks(codes.view(-1)[:n].clone(), scales, torch.Size([n]), torch.float32, block_size, MapId.LINEAR)
    return q, anchors, is_delta, cost


def delta_codes_torch(
    blocks: torch.Tensor, is_delta: torch.Tensor, anchors: torch.Tensor, divisors: torch.Tensor,
    wide: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """``cpu_loops.delta_codes`` in torch ops on any device: one step per position, all blocks at once."""
    codes = torch.empty(blocks.shape, dtype=torch.uint8, device=blocks.device)
    rebuilt = anchors.clone()  # (R,): the decoder's value before position i of a delta block
    for i in range(blocks.shape[1]):
        predicted = torch.where(is_delta, rebuilt, anchors)
        k = torch.round((blocks[:, i].double() - predicted) / divisors * 127).clamp_(-127, 127).to(torch.int64)
        codes[:, i] = (k + 127).to(torch.uint8)
        rebuilt += torch.where(is_delta, (table[k + 127] * wide).double(), 0.0)
    return codes


def undelta(flat: torch.Tensor, anchors: torch.Tensor, is_delta: torch.Tensor, block_size: int) -> torch.Tensor:
    """Dequantized codes (1-D float32) -> values: anchor plus the running sum (delta blocks) or the code."""
    n = flat.numel()
    codes = padded_blocks(flat, block_size, 0.0).double()  # (R, B)
    rebuilt = torch.where(is_delta[:, None], codes.cumsum(dim=1), codes) + anchors.double()[:, None]
    return rebuilt.view(-1)[:n].float()
