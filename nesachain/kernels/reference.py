"""Plain, readable reference implementations: one block or one value at a time.

Slow on purpose. Each function states in a few lines what its fast twin computes; the tests
check that the fast paths produce the same codes, scales and outliers.
"""

from __future__ import annotations

import torch

from nesachain.kernels.blockwise import QuantizedBlocks, check_block_size, check_dtype, make_scales
from nesachain.kernels.codemaps import MapId, code_map, nearest_code
from nesachain.kernels.errors import KernelError

__all__ = ["dequantize_blockwise_reference", "quantize_blockwise_reference", "select_outliers_reference"]


def quantize_blockwise_reference(x: torch.Tensor, block_size: int = 64, map_id: int = MapId.DYNAMIC) -> QuantizedBlocks:
    check_dtype(x.dtype)
    check_block_size(block_size)
    codes_of_map = code_map(map_id)
    flat = x.detach().reshape(-1).float().cpu()
    blocks = [flat[start : start + block_size] for start in range(0, flat.numel(), block_size)]
    absmax = torch.tensor([float(block.abs().max()) for block in blocks], dtype=torch.float32)
    if not bool(torch.isfinite(absmax).all()):
        raise KernelError("blockwise8 cannot encode nan or inf")
    scales = make_scales(absmax)  # what the wire carries: fp16 rounded up, or fp32
    codes = []
    for block, scale in zip(blocks, scales.float().tolist(), strict=True):
        u = block / scale if scale > 0 else torch.zeros_like(block)
        u = u.half().float()  # codes are chosen for x / s rounded to fp16 (see codemaps)
        codes.append(nearest_code(u, codes_of_map).to(torch.uint8))
    all_codes = torch.cat(codes) if codes else torch.empty(0, dtype=torch.uint8)
    return QuantizedBlocks(all_codes, scales, x.shape, x.dtype, block_size, MapId(map_id))


def dequantize_blockwise_reference(q: QuantizedBlocks) -> torch.Tensor:
    codes_of_map = code_map(q.map_id)
    values = []
    for index, code in enumerate(q.codes.cpu().tolist()):
        scale = float(q.scales[index // q.block_size])
        values.append(float(codes_of_map[code]) * scale)
    return torch.tensor(values, dtype=torch.float32).to(q.dtype).view(q.shape)


def select_outliers_reference(x: torch.Tensor, threshold: float, max_fraction: float) -> list[int]:
    """Flat positions of the outliers ``outliers.select_outliers`` picks, in ascending order.

    Every nan and inf; then the finite values with |x| > threshold, largest first (ties: lower
    position first), until ``max_outliers(numel, max_fraction)`` positions are taken.
    """
    from nesachain.kernels.outliers import max_outliers

    flat = x.detach().reshape(-1).float().cpu().tolist()
    chosen = [i for i, v in enumerate(flat) if v != v or abs(v) == float("inf")]
    budget = max(0, max_outliers(len(flat), max_fraction) - len(chosen))
    big = [(abs(v), i) for i, v in enumerate(flat) if abs(v) != float("inf") and abs(v) > threshold]
    big.sort(key=lambda item: (-item[0], item[1]))
    chosen += [i for _, i in big[:budget]]
    return sorted(chosen)
