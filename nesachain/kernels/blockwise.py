"""Blockwise 8-bit quantization: per block of B values one absmax scale and 8-bit codes.

The flattened tensor is cut into blocks of ``block_size`` values (a power of two, 32..4096); the
last block is padded in the computation only (the codes of the padding are never produced or
sent). Each block keeps its absmax ``s`` as the scale and each value the index of the code nearest
to ``x / s`` in a code map (``codemaps``).

Scales are fp16 (rounded up, so that |x / s| <= 1) when every block's absmax is 0 or a normal fp16
number (2^-14..65504), fp32 otherwise; ``QuantizedBlocks.scales`` carries whichever was chosen.

Promise (tested): ``|decoded - x| <= error_factor(map_id, dtype) * absmax(block)`` for every value;
for the dynamic map the factor is 0.0078, for the linear map 0.0047 (fp32 output).

Non-finite input: a block holding nan or +-inf has no absmax to scale by, so quantizing raises
``KernelError``. ``mixed`` carries such values exactly, as outliers.

The fast path is vectorised torch working through the tensor in chunks that stay in cache; it runs
on whatever device the input is on (CUDA included, one chunk there). ``reference`` holds the plain
per-block loop it must agree with code for code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nesachain.kernels.codemaps import MapId, code_map, pair_table, quantize_table
from nesachain.kernels.errors import KernelError

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "SUPPORTED_DTYPES",
    "QuantizedBlocks",
    "check_block_size",
    "choose_scale_dtype",
    "dequantize_blockwise",
    "make_scales",
    "quantize_blockwise",
]

DEFAULT_BLOCK_SIZE = 64
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FP16_MIN_NORMAL = 2.0**-14
FP16_MAX = 65504.0
_CHUNK_VALUES = 1 << 16  # values per CPU chunk: intermediates stay in L2


@dataclass(frozen=True)
class QuantizedBlocks:
    """A tensor in blockwise 8-bit form.

    codes:  uint8, (numel,): one code per value, no padding.
    scales: float16 or float32, (ceil(numel / block_size),): each block's absmax.
    """

    codes: torch.Tensor
    scales: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype
    block_size: int
    map_id: MapId

    @property
    def numel(self) -> int:
        return self.codes.numel()


def check_block_size(block_size: int) -> int:
    """Return ``block_size`` if it is a power of two in 32..4096, else raise ``KernelError``."""
    if not isinstance(block_size, int) or block_size < 32 or block_size > 4096:
        raise KernelError(f"block size must be a power of two in 32..4096, got {block_size!r}")
    if block_size & (block_size - 1):
        raise KernelError(f"block size must be a power of two in 32..4096, got {block_size}")
    return block_size


def check_dtype(dtype: torch.dtype) -> None:
    if dtype not in SUPPORTED_DTYPES:
        raise KernelError(f"unsupported dtype {dtype}; supported: float32, float16, bfloat16")


def choose_scale_dtype(absmax: torch.Tensor) -> torch.dtype:
    """fp16 when every value is 0 or a normal fp16 number, else fp32 (``absmax`` is float32, >= 0)."""
    if absmax.numel() == 0:
        return torch.float16
    smallest_nonzero = torch.where(absmax > 0, absmax, torch.inf).min()
    if float(smallest_nonzero) < FP16_MIN_NORMAL or float(absmax.max()) > FP16_MAX:
        return torch.float32
    return torch.float16


def make_scales(absmax: torch.Tensor) -> torch.Tensor:
    """The scales the wire carries: ``absmax`` in ``choose_scale_dtype``, fp16 rounded up.

    Rounding up keeps every x / s within [-1, 1], so the end codes never cost more than half a gap.
    """
    dtype = choose_scale_dtype(absmax)
    if dtype == torch.float32:
        return absmax.clone()
    nearest = absmax.to(torch.float16)
    above = torch.nextafter(nearest, torch.full_like(nearest, torch.inf))
    return torch.where(nearest.float() < absmax, above, nearest)


def block_absmax(flat: torch.Tensor, block_size: int) -> torch.Tensor:
    """float32 (nblocks,): the absmax of each block of the 1-D ``flat``; nan if a block holds nan."""
    n = flat.numel()
    full = n // block_size
    nblocks = -(-n // block_size)
    absmax = torch.empty(nblocks, dtype=torch.float32, device=flat.device)
    if full:
        rows = flat[: full * block_size].view(full, block_size)  # (full, B)
        # max(amax, -amin): two vectorised reductions, no |x| copy of the whole tensor
        absmax[:full] = torch.maximum(rows.amax(dim=1), rows.amin(dim=1).neg_())
    if nblocks > full:
        absmax[full] = flat[full * block_size :].abs().amax().float()
    return absmax


def quantize_blockwise(
    x: torch.Tensor, block_size: int = DEFAULT_BLOCK_SIZE, map_id: int = MapId.DYNAMIC
) -> QuantizedBlocks:
    """Quantize ``x`` (fp32, fp16 or bf16, any shape) blockwise to 8-bit codes.

    Raises ``KernelError`` for an unsupported dtype or block size, an unknown map, or nan/inf in ``x``.
    """
    check_dtype(x.dtype)
    check_block_size(block_size)
    table = quantize_table(map_id, x.device)
    flat = x.detach().reshape(-1)  # (N,)
    n = flat.numel()
    absmax = block_absmax(flat, block_size)
    if not bool(torch.isfinite(absmax).all()):
        raise KernelError("blockwise8 cannot encode nan or inf; use mixed8, which keeps them exactly")
    scales = make_scales(absmax)
    divisors = scales.float()
    divisors = torch.where(divisors == 0, 1.0, divisors)  # an all-zero block: 0 / 1 = 0 -> code for 0
    codes = torch.empty(n, dtype=torch.uint8, device=x.device)
    full = n // block_size
    rows_per_chunk = max(1, full if x.device.type != "cpu" else _CHUNK_VALUES // block_size)
    blocks = flat[: full * block_size].view(full, block_size)  # (full, B)
    for r0 in range(0, full, rows_per_chunk):
        r1 = min(full, r0 + rows_per_chunk)
        u = blocks[r0:r1].float() / divisors[r0:r1, None]  # (R, B) in [-1, 1]: scales round up
        pattern = u.half().view(torch.uint16).to(torch.int64)  # (R, B) fp16 bit patterns
        out = codes[r0 * block_size : r1 * block_size].view(r1 - r0, block_size)
        torch.gather(table.view(1, -1).expand(r1 - r0, -1), 1, pattern, out=out)  # (R, B) uint8
    if n > full * block_size:
        u = flat[full * block_size :].float() / divisors[full]  # (n % B,)
        codes[full * block_size :] = table[u.half().view(torch.uint16).to(torch.int64)]
    return QuantizedBlocks(codes, scales, x.shape, x.dtype, block_size, MapId(map_id))


def dequantize_blockwise(q: QuantizedBlocks) -> torch.Tensor:
    """Rebuild a tensor of ``q.shape`` and ``q.dtype`` from its codes and scales."""
    check_dtype(q.dtype)
    n, b = q.numel, q.block_size
    device = q.codes.device
    codes_f32 = code_map(q.map_id, device)
    pairs = pair_table(q.map_id, device).view(1, -1)  # (1, 65536) int64 = two float32 codes
    scales = q.scales.float()
    full = n // b
    out = torch.empty(n, dtype=q.dtype, device=device)
    rows_per_chunk = max(1, full if device.type != "cpu" else _CHUNK_VALUES // b)
    in_place = q.dtype == torch.float32
    scratch = out if in_place else torch.empty(min(full, rows_per_chunk) * b, device=device)
    for r0 in range(0, full, rows_per_chunk):
        r1 = min(full, r0 + rows_per_chunk)
        chunk = out[r0 * b : r1 * b] if in_place else scratch[: (r1 - r0) * b]  # (R*B,) float32
        two_codes = q.codes[r0 * b : r1 * b].view(torch.uint16).to(torch.int64).view(r1 - r0, b // 2)
        torch.gather(pairs.expand(r1 - r0, -1), 1, two_codes, out=chunk.view(torch.int64).view(r1 - r0, -1))
        chunk.view(r1 - r0, b).mul_(scales[r0:r1, None])  # (R, B) * (R, 1)
        if not in_place:
            out[r0 * b : r1 * b] = chunk
    if n > full * b:
        tail = codes_f32[q.codes[full * b :].to(torch.int64)]  # (n % B,)
        out[full * b :] = tail * scales[full]
    return out.view(q.shape)
