"""Mixed decomposition (after LLM.int8()): the few values that would wreck an 8-bit block travel
apart in fp16 with their positions; the rest is rotated and quantized blockwise, or, where that is
predicted to do better (on activations, nearly always), put on one fine step and Rice-coded.

Coded blocks (``rice``; why, and what they measured, in that module's doc), the treatment most
activations take: every value on one uniform step, the integer levels Rice-coded, the step the finest
whose frame fits 0.56 x fp16. What travels apart: every nan and ±inf, and the values above 64 x the
tensor's mean |x| (at most 1/256 of them, largest first, never more than ``threshold`` /
``max_fraction`` allow), exact, in the input's dtype. The encoder takes coded blocks where their
predicted error, numel x step^2 / 12, is below the best 8-bit treatment's ((absmax / 127)^2 / 12 a
value, below); delta coding must then beat it too, and grid blocks, exact, still come first. They
need a step no coarser than the tensor's absmax / 127 and a budget for it, so a frame of a few dozen
values stays 8-bit. The rest of this doc is about the 8-bit treatments.

The rule (defaults): outliers are every nan and ±inf, then the finite values with |x| > 6.0,
largest first (ties: lower position first), at most floor(numel / 80) of them. What is left (outliers
set to 0) is rotated block by block with the normalised 64×64 Hadamard matrix (``rotation``) where
that is predicted to help (``rotation_helps``, below), and quantized blockwise-64 with the linear
map. The frame records whether it was rotated; the decoder undoes the rotation and puts the
outliers back.

Rotation is chosen per tensor. It spreads a block's few large values over the block, which is what
a residual stream with outlier channels needs; but on a smooth block, such as 64 neighbouring
pixels of one channel of a convolutional feature map, it works like a transform code: it gathers
the block's energy into one coefficient, which then sets a coarse step for all the others.
Measured on the 19 tensors crossing EfficientNet-Lite0's 18 stage boundaries (16 photo crops;
relative L2 error): rotated 0.62–1.51e-2, not rotated 0.37–0.73e-2, against 0.66–1.09e-2 for
dynamic blockwise-64. The prediction compares the sum over blocks of absmax^2 (an absmax-scaled
uniform quantizer's noise is (absmax / 127)^2 / 12 per value) with and without rotation; it picked
the lower real error for 17 of those 19 tensors (the other two, the pooled features: 8.6e-3 for
7.3e-3), and keeps the rotation on every SmolLM2 boundary (KL at 3 shards unchanged, 1.59e-4).

A third choice, also per tensor: centred blocks. Each block sends its midpoint ((max + min) / 2 of its
non-outlier values, fp16) and the codes cover only the values' spread around it, so the step falls
from absmax / 127 to (max - min) / 254. That is what a smooth block needs: 64 neighbouring pixels
of an image sit in a narrow range far from 0, and a block of ReLU outputs is one-sided. Centres
cost 2 bytes a block; a centred frame pays for them with half the outlier cap (at B = 64 at most
1.1 bytes per value with fp16 outlier values, 1.1125 with fp32 ones, against 1.106 uncentred).
Measured on EfficientNet-Lite0 (256 photo crops, ``bench/accuracy.py``): compressing only the
client's input image costs KL 2.9e-4 uncentred and 8.8e-5 centred. The prediction is the same
sum over blocks of the squared step-setting magnitude: absmax uncentred, max |x - centre| centred.

A fourth, for tensors with no outliers at all (linear map only): delta coding, chosen block by block
against centring. A delta-coded block sends its first value (fp16) as its base and codes each
value's difference from what the decoder will have rebuilt before it (closed loop: errors do not
add up along the block), so the step is set by the largest step between neighbours rather than by
the block's spread. A smooth ramp, such as a small image blown up to 224 × 224, then gets a step
many times finer; a block that one jump dominates (across an image's row end) stays centred, and
one bit per block says which. Measured on EfficientNet-Lite0 fed scikit-learn's 8 × 8 digits blown
up to 224 × 224 (256 images): compressing only the input moves the 1000 logits by 8.1 % (relative
L2) centred and by 0.21 % delta-coded (input error 1.7e-3 and 1.6e-4). Photo crops gain less: KL
from compressing the input 8.8e-5 centred, 7.2e-5 with delta blocks.

First of all, for float32 tensors that are 8-bit data already, such as a normalised 8-bit image:
grid blocks (``grid``), every value sent as its index on its block's grid of at most 256 evenly
spaced levels, exact to step / 1024 (in practice float32 rounding), at 0.516 x fp16. A tensor takes
them only if every block fits; activations fail on the first block. Measured on EfficientNet-Lite0
(``bench/accuracy.py``, 512 crops resized as 8-bit pixels): see the README's table.

Why this rule, measured: ``bench/kernel_errors.py``'s doc (``--part rules`` and ``--part caps``).

Which outliers, how they travel (positions, value dtype): ``outliers``.

Promise (tested): a coded frame's value comes back within half its step (plus float32 rounding and
the output dtype's), its outliers exact, and its step is at most absmax / 127 of the values that are
not outliers. Otherwise an outlier comes back exact (fp16/bf16 input, or sent in fp32) or within 2^-11
relative (fp32 input sent in fp16); any other value x of block b comes back within
sqrt(B) · error_factor(map, dtype) · ‖b‖₂ (the L2 norm of the block without its outliers),
error_factor · absmax(b) without rotation, error_factor · max |b - centre| centred, or
error_factor · 127/126 · the largest step between neighbours (at most 2 absmax(b)) delta-coded; a
grid block's value within step / 1024 of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from nesachain.kernels.blockwise import (
    DEFAULT_BLOCK_SIZE,
    QuantizedBlocks,
    check_block_size,
    check_dtype,
    dequantize_blockwise,
    quantize_blockwise,
)
from nesachain.kernels.codemaps import MapId
from nesachain.kernels.delta import block_centres, delta_code, padded_blocks, undelta
from nesachain.kernels.errors import KernelError
from nesachain.kernels.grid import grid_code, ungrid
from nesachain.kernels.layout import header_bytes, payload_bytes, position_width
from nesachain.kernels.outliers import (
    DEFAULT_MAX_FRACTION,
    DEFAULT_THRESHOLD,
    MAX_FRAME_BYTES_PER_VALUE,
    check_outlier_rule,
    coded_positions,
    host_float32,
    outlier_value_dtype,
    select_outliers,
)
from nesachain.kernels.rice import choose_step
from nesachain.kernels.rotation import hadamard, rotate_blocks

__all__ = [
    "DEFAULT_MAX_FRACTION",
    "DEFAULT_MIXED_MAP",
    "DEFAULT_THRESHOLD",
    "MixedQuantized",
    "dequantize_mixed",
    "quantize_mixed",
    "rotation_helps",
]

DEFAULT_MIXED_MAP = MapId.LINEAR


@dataclass(frozen=True)
class MixedQuantized:
    """A tensor as blockwise codes plus outliers.

    blocks:    the tensor with outliers set to 0, each full block rotated (if ``rotated``),
               quantized blockwise; ``blocks.shape`` and ``blocks.dtype`` are the original's.
    positions: int64, (k,), ascending flat positions of the outliers.
    values:    (k,), the outliers, in ``outlier_value_dtype``.
    centers:   float16, (ceil(numel / B),), each block's centre when the blocks are centred (the codes
               then hold value - centre), or its centre or base when ``delta`` is set, else None.
               Never with ``rotated``.
    delta:     bool, (ceil(numel / B),), or None: which blocks are delta-coded (closed-loop differences,
               linear map: value i of such a block is its base plus the sum of its first i + 1
               dequantized codes); the other blocks are centred. Only with ``centers``.
    bases:     float32, (ceil(numel / B),), or None: grid blocks (``grid``), float32 tensors only: the
               codes are grid indices, ``blocks.scales`` the float32 steps, value = base + code * step.
               Nothing else is set with it: no outliers, no rotation, centres or delta bits.
    levels:    int64, (numel,), or None: coded blocks (``rice``): value = level * step, ``blocks.scales``
               the float32 step, (1,), ``blocks.codes`` empty, the linear map; the outliers are
               ``coded_outliers``' (values in the input's dtype). Nothing else is set with it.
    """

    blocks: QuantizedBlocks
    positions: torch.Tensor
    values: torch.Tensor
    rotated: bool
    centers: torch.Tensor | None = None
    delta: torch.Tensor | None = None
    bases: torch.Tensor | None = None
    levels: torch.Tensor | None = None


def rotation_helps(rest: torch.Tensor, block_size: int) -> bool:
    """Whether rotating the float32 1-D ``rest`` lowers its predicted quantization error.

    An absmax-scaled 8-bit block of B values has noise of about (absmax / 127)^2 / 12 per value,
    so the predicted squared error of a tensor is proportional to the sum over blocks of absmax^2.
    Compare that sum with and without the rotation (one matmul and two reductions: no trial encode).
    """
    return _rotated_if_better(rest, block_size)[0] is not None


def _rotated_if_better(rest: torch.Tensor, block_size: int) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(the full blocks of ``rest`` rotated, (R, B), if that helps, else None; the predicted cost of the
    choice over the whole of ``rest``, as ``_absmax_cost``)."""
    full = rest.numel() // block_size
    partial = _absmax_cost(rest[full * block_size :], block_size)
    if full == 0:
        return None, partial
    blocks = rest[: full * block_size].view(full, block_size)  # (R, B)
    rotated = blocks @ hadamard(block_size, rest.device)  # (R, B): what rotate_blocks computes
    plain_cost = blocks.abs().amax(dim=1).double().square().sum()
    rotated_cost = rotated.abs().amax(dim=1).double().square().sum()
    if bool(rotated_cost < plain_cost):
        return rotated, rotated_cost + partial
    return None, plain_cost + partial


def _centers(rest: torch.Tensor, is_outlier: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(fp16 centres, (nblocks,); float64 predicted cost) of centring the finite 1-D ``rest``.

    The cost is the sum over blocks of the squared half-spread (``block_centres``). None when a
    centre is not a finite fp16 number.
    """
    if rest.numel() == 0:
        return torch.empty(0, dtype=torch.float16, device=rest.device), torch.zeros((), dtype=torch.float64)
    centres, spread = block_centres(rest, is_outlier, block_size)
    if not bool(torch.isfinite(centres).all()):
        return None
    return centres, spread.square().sum()


def _center_blocks(flat: torch.Tensor, centers: torch.Tensor, block_size: int, sign: float) -> torch.Tensor:
    """``flat`` (float32, 1-D) plus ``sign`` times each block's centre, in place."""
    n = flat.numel()
    flat.add_(centers.float().repeat_interleave(block_size)[:n], alpha=sign)
    return flat


def _absmax_cost(flat: torch.Tensor, block_size: int) -> torch.Tensor:
    """float64 sum over the blocks of the 1-D ``flat`` of absmax^2: the predicted error, up to a factor."""
    if flat.numel() == 0:
        return torch.zeros((), dtype=torch.float64)
    return padded_blocks(flat, block_size, 0.0).abs().amax(dim=1).double().square().sum()


def quantize_mixed(
    x: torch.Tensor,
    block_size: int = DEFAULT_BLOCK_SIZE,
    map_id: int = DEFAULT_MIXED_MAP,
    threshold: float = DEFAULT_THRESHOLD,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    rotate: bool | None = None,
    center: bool | None = None,
    delta: bool | None = None,
    grid: bool | None = None,
    coded: bool | None = None,
) -> MixedQuantized:
    """Split ``x`` into outliers and blockwise 8-bit codes for the rest. Accepts nan and inf.

    ``rotate`` / ``center`` / ``delta`` / ``grid`` / ``coded``: True forces that treatment of the blocks
    (one at most), False rules it out, None (default) lets the encoder take, of the treatments not ruled
    out and plain blocks, the one with the lowest predicted error (module doc); grid blocks, exact, come
    first wherever they fit (``grid``: their own block size). A centred tensor keeps half the outlier
    cap; delta coding is for tensors with no outliers at all (it uses the linear map); coded blocks
    (``rice``) spend the frame's whole byte budget and send apart only nan, ±inf and the few values far
    above the rest (``coded_outliers``).
    """
    check_dtype(x.dtype)
    check_block_size(block_size)
    check_outlier_rule(threshold, max_fraction)
    if sum(bool(flag) for flag in (rotate, center, delta, grid, coded)) > 1:
        raise KernelError("mixed8 blocks are rotated, centred, delta-coded, grid or coded blocks: force one at most")
    if coded and map_id != MapId.LINEAR:
        raise KernelError("mixed8 coded blocks use the linear map")
    flat = x.detach().reshape(-1)  # (N,)
    if grid or (grid is None and not (rotate or center or delta or coded)):
        on_grid = grid_code(flat)
        if grid and on_grid is None:
            raise KernelError("mixed8 grid blocks need a finite float32 tensor whose every block is on a grid "
                              "of at most 256 evenly spaced levels")
        if on_grid is not None:
            codes, steps, bases, grid_block = on_grid
            q = QuantizedBlocks(codes, steps, x.shape, x.dtype, grid_block, MapId.LINEAR)
            none = torch.empty(0, dtype=torch.int64, device=flat.device)
            return MixedQuantized(q, none, flat[:0], False, bases=bases)
    rice: tuple[MixedQuantized, torch.Tensor] | None = None
    if coded or (coded is None and map_id == MapId.LINEAR and not (rotate or center or delta)):
        rice = _coded(x, flat, block_size, threshold, max_fraction)
        if coded:
            if rice is None:
                raise KernelError("mixed8 coded blocks need a finite nonzero value and a byte budget a step "
                                  "of absmax / 127 fits (a few hundred values)")
            return rice[0]
    positions = select_outliers(flat, threshold, max_fraction)
    rest = _without(flat, positions)  # non-finite values are always outliers: rest is finite
    full = rest.numel() // block_size * block_size
    rotated: torch.Tensor | None = None  # (R, B): the full blocks, rotated
    if rotate is None and not (center or delta):  # decide, and reuse the rotation and cost the decision computed
        rotated, cost = _rotated_if_better(rest, block_size)
    else:  # the plain blocks' cost (a forced rotation is compared with nothing)
        if rotate:
            rotated = rotate_blocks(rest.clone(), block_size)[:full].view(-1, block_size)
        cost = _absmax_cost(rest, block_size)
    centered: tuple[torch.Tensor, torch.Tensor] | None = None
    if center or (center is None and not (rotate or delta)):
        half = select_outliers(flat, threshold, max_fraction / 2)
        is_outlier = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
        is_outlier[half] = True
        finite = flat.float().nan_to_num(0.0, 0.0, 0.0)  # a copy: centring below may work in place
        centered = _centers(finite, is_outlier, block_size)
        if center and centered is None:
            raise KernelError("mixed8 cannot centre this tensor: a block's midpoint is beyond fp16")
        if centered is not None and (center or centered[1] < cost):
            cost = centered[1]
        else:
            centered = None
    if rice is not None and rice[1] < cost:  # coded blocks beat the 8-bit ones; delta may still beat both
        cost, centered, rotated = rice[1], None, None
    else:
        rice = None
    if delta and map_id != MapId.LINEAR:
        raise KernelError("mixed8 delta codes use the linear map")
    if delta or (delta is None and map_id == MapId.LINEAR and not (rotate or center)):
        deltas = delta_code(rest, block_size, None if delta else cost) if positions.numel() == 0 else None
        if delta and deltas is None:
            raise KernelError("mixed8 delta-codes only tensors with no outliers and smooth, finite blocks")
        if deltas is not None:
            q = dataclasses.replace(deltas[0], shape=x.shape, dtype=x.dtype)
            values = flat[positions]  # empty
            return MixedQuantized(q, positions, values.to(outlier_value_dtype(values)), False, deltas[1], deltas[2])
    if rice is not None:
        return rice[0]
    if centered is not None:
        rest = _center_blocks(finite, centered[0], block_size, -1.0)
        rest[half] = 0  # the outliers travel apart: their residuals are 0
        return _mixed(x, rest, block_size, map_id, half, False, centered[0])
    if rotated is not None:
        rest[:full] = rotated.reshape(-1)
    return _mixed(x, rest, block_size, map_id, positions, rotated is not None, None)


def _without(flat: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """A float32 copy of the 1-D ``flat`` with the values at ``positions`` (its outliers) set to 0."""
    rest = flat.float()  # a copy unless flat is float32
    if rest.data_ptr() == flat.data_ptr():
        rest = rest.clone()
    rest[positions] = 0
    return rest


def _coded(x: torch.Tensor, flat: torch.Tensor, block_size: int, threshold: float,
           max_fraction: float) -> tuple[MixedQuantized, torch.Tensor] | None:
    """``x`` as coded blocks (``rice``) that fill 0.56 x fp16, and their predicted cost in ``_absmax_cost``'s
    units (an absmax-scaled block's noise is (absmax / 127)^2 / 12 a value, a step's step^2 / 12); None
    where no step fits (``choose_step``). Worked out on the host whatever the device (numpy and compiled
    loops); the result comes back on ``x``'s device."""
    n = flat.numel()
    v = host_float32(flat)
    positions = coded_positions(v, threshold, max_fraction)
    rest = v.copy()
    rest[positions] = 0  # every nan and inf is among them: rest is finite
    on_device = torch.from_numpy(positions).to(flat.device)
    values = flat[on_device]  # exact, in the input's dtype
    frame_bytes = int(MAX_FRAME_BYTES_PER_VALUE * n)
    budget = (frame_bytes - header_bytes(tuple(x.shape), n, frame_bytes) - 4
              - positions.size * (position_width(n) + values.element_size()))
    chosen = choose_step(rest, budget, block_size)
    if chosen is None:
        return None
    step, levels = chosen
    empty = torch.empty(0, dtype=torch.uint8, device=flat.device)
    blocks = QuantizedBlocks(empty, torch.tensor([step], dtype=torch.float32, device=flat.device), x.shape, x.dtype,
                             block_size, MapId.LINEAR)
    cost = torch.tensor(n * (127 * step) ** 2 / block_size, dtype=torch.float64)
    return MixedQuantized(blocks, on_device, values, False,
                          levels=torch.from_numpy(levels).to(flat.device)), cost


def _mixed(x: torch.Tensor, rest: torch.Tensor, block_size: int, map_id: int, positions: torch.Tensor,
           rotated: bool, centers: torch.Tensor | None) -> MixedQuantized:
    """Quantize the prepared float32 1-D ``rest`` blockwise; the outliers of ``x`` at ``positions`` travel apart."""
    values = x.detach().reshape(-1)[positions]
    blocks = quantize_blockwise(rest, block_size, map_id)
    blocks = dataclasses.replace(blocks, shape=x.shape, dtype=x.dtype)
    n = x.numel()
    fp32_payload = payload_bytes(n, block_size, blocks.scales.element_size(), centres=centers is not None,
                                 outliers=positions.numel(), outlier_bytes=4)
    return MixedQuantized(blocks, positions, values.to(outlier_value_dtype(values, n, fp32_payload)), rotated, centers)


def dequantize_mixed(m: MixedQuantized) -> torch.Tensor:
    """Rebuild the tensor: blockwise values everywhere, outliers put back at their positions."""
    check_dtype(m.blocks.dtype)
    if m.levels is not None:
        out = m.levels.to(torch.float32) * m.blocks.scales.to(torch.float32)  # exact levels: |level| <= 2^24
        out = out if m.blocks.dtype == torch.float32 else out.to(m.blocks.dtype)
        out[m.positions] = m.values.to(out.dtype)
        return out.view(m.blocks.shape)
    if m.bases is not None:
        return ungrid(m.blocks.codes, m.blocks.scales, m.bases, m.blocks.block_size).view(m.blocks.shape)
    flat = dequantize_blockwise(
        dataclasses.replace(m.blocks, shape=torch.Size([m.blocks.numel]), dtype=torch.float32)
    )  # (N,) float32
    if m.rotated:
        rotate_blocks(flat, m.blocks.block_size)
    if m.delta is not None and m.centers is not None:
        flat = undelta(flat, m.centers, m.delta, m.blocks.block_size)
    elif m.centers is not None:
        _center_blocks(flat, m.centers, m.blocks.block_size, 1.0)
    out = flat if m.blocks.dtype == torch.float32 else flat.to(m.blocks.dtype)
    out[m.positions] = m.values.to(out.dtype)  # outlier dtype -> output dtype is exact
    return out.view(m.blocks.shape)
