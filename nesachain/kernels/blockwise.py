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

On CPU the fast path is ``cpu_loops``: compiled loops that read and write each byte once. On CUDA it
is ``cuda_triton``'s kernels, one launch per step; elsewhere (or without Triton) vectorised torch ops
over the whole tensor. All produce the same codes, scales and values (tested); ``reference`` holds
the plain per-block loop they must agree with code for code.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from types import ModuleType

import torch

from nesachain.kernels import cpu_loops
from nesachain.kernels.codemaps import MapId, code_map, quantize_table
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


def _absmax_stats(absmax: torch.Tensor) -> tuple[bool, float, float]:
    """(all finite, smallest nonzero, largest) of ``absmax``, read back in one device sync."""
    if absmax.numel() == 0:
        return True, math.inf, 0.0
    finite = torch.isfinite(absmax).all().float()
    smallest_nonzero = torch.where(absmax > 0, absmax, torch.inf).min()
    stats = torch.stack([finite, smallest_nonzero, absmax.max()]).tolist()
    return bool(stats[0]), float(stats[1]), float(stats[2])


def _scale_dtype(smallest_nonzero: float, largest: float) -> torch.dtype:
    return torch.float32 if smallest_nonzero < FP16_MIN_NORMAL or largest > FP16_MAX else torch.float16


def choose_scale_dtype(absmax: torch.Tensor) -> torch.dtype:
    """fp16 when every value is 0 or a normal fp16 number, else fp32 (``absmax`` is float32, >= 0)."""
    _, smallest_nonzero, largest = _absmax_stats(absmax)
    return _scale_dtype(smallest_nonzero, largest)


def make_scales(absmax: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The scales the wire carries: ``absmax`` in ``dtype`` (default ``choose_scale_dtype``), fp16 rounded up.

    Rounding up keeps every x / s within [-1, 1], so the end codes never cost more than half a gap.
    """
    dtype = dtype or choose_scale_dtype(absmax)
    if dtype == torch.float32:
        return absmax.clone()
    nearest = absmax.to(torch.float16)
    above = torch.nextafter(nearest, torch.full_like(nearest, torch.inf))
    return torch.where(nearest.float() < absmax, above, nearest)


@functools.cache
def _triton_kernels() -> ModuleType | None:
    """``cuda_triton`` where Triton imports (it ships with torch's CUDA builds), else None."""
    try:
        from nesachain.kernels import cuda_triton
    except ImportError:
        return None
    return cuda_triton


_TRITON_MIN_CAPABILITY = (7, 5)  # Triton's floor; older cards (e.g. Pascal) keep the torch ops
_triton_failed: list[str] = []  # the first failure's message, once Triton has failed in this process


@functools.cache
def _triton_supports(device: torch.device) -> bool:
    return torch.cuda.get_device_capability(device) >= _TRITON_MIN_CAPABILITY


def _on_triton(t: torch.Tensor) -> ModuleType | None:
    """The Triton kernels if they serve ``t`` (a CUDA tensor with int32 offsets), else None."""
    if t.device.type != "cuda" or t.numel() >= 2**31 or _triton_failed or not _triton_supports(t.device):
        return None
    return _triton_kernels()


def _run_triton(step: str, t: torch.Tensor, *args: object) -> torch.Tensor | None:
    """``cuda_triton.<step>(*args)`` where the kernels serve ``t``; None where they do not or fail.

    A failure (a compiler or driver that cannot build the kernel) turns Triton off for the process,
    with one warning: the torch ops compute the same bytes, only slower.
    """
    kernels = _on_triton(t)
    if kernels is None:
        return None
    try:
        result: torch.Tensor = getattr(kernels, step)(*args)
    except Exception as exc:  # any failure of the optional fast path falls back to the torch ops
        _triton_failed.append(f"{type(exc).__name__}: {exc}")
        warnings.warn(f"Triton kernels disabled, using torch ops: {_triton_failed[0]}", RuntimeWarning, stacklevel=3)
        return None
    return result


def block_absmax(flat: torch.Tensor, block_size: int) -> torch.Tensor:
    """float32 (nblocks,): the absmax of each block of the 1-D ``flat``; nan if a block holds nan or inf."""
    if flat.device.type == "cpu":
        return cpu_loops.block_absmax(flat, block_size)
    if (absmax := _run_triton("block_absmax", flat, flat, block_size)) is not None:
        return absmax
    n = flat.numel()
    full = n // block_size
    nblocks = -(-n // block_size)
    absmax = torch.empty(nblocks, dtype=torch.float32, device=flat.device)
    if full:
        rows = flat[: full * block_size].view(full, block_size)  # (full, B)
        absmax[:full] = torch.maximum(rows.amax(dim=1), rows.amin(dim=1).neg_()).float()
    if nblocks > full:
        absmax[full] = flat[full * block_size :].abs().amax().float()
    return torch.where(torch.isinf(absmax), torch.nan, absmax)


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
    absmax = block_absmax(flat, block_size)
    finite, smallest_nonzero, largest = _absmax_stats(absmax)  # the one host sync of a CUDA call
    if not finite:
        raise KernelError("blockwise8 cannot encode nan or inf; use mixed8, which keeps them exactly")
    scales = make_scales(absmax, _scale_dtype(smallest_nonzero, largest))
    divisors = scales.float()
    divisors = torch.where(divisors == 0, 1.0, divisors)  # an all-zero block: 0 / 1 = 0 -> code for 0
    if flat.device.type == "cpu":
        codes = cpu_loops.quantize(flat, divisors.contiguous(), table, block_size)
    elif (fast := _run_triton("quantize", flat, flat, divisors, table, block_size)) is not None:
        codes = fast
    else:
        codes = _quantize_torch(flat, divisors, table, block_size)
    return QuantizedBlocks(codes, scales, x.shape, x.dtype, block_size, MapId(map_id))


def _quantize_torch(flat: torch.Tensor, divisors: torch.Tensor, table: torch.Tensor, block_size: int) -> torch.Tensor:
    """The codes of ``quantize_blockwise`` in vectorised torch ops (any device)."""
    n = flat.numel()
    full = n // block_size
    codes = torch.empty(n, dtype=torch.uint8, device=flat.device)
    if full:
        u = flat[: full * block_size].view(full, block_size).float() / divisors[:full, None]  # (R, B) in [-1, 1]
        codes[: full * block_size] = table[u.half().view(torch.uint16).to(torch.int64)].view(-1)
    if n > full * block_size:
        u = flat[full * block_size :].float() / divisors[full]  # (n % B,)
        codes[full * block_size :] = table[u.half().view(torch.uint16).to(torch.int64)]
    return codes


def dequantize_blockwise(q: QuantizedBlocks) -> torch.Tensor:
    """Rebuild a tensor of ``q.shape`` and ``q.dtype`` from its codes and scales."""
    check_dtype(q.dtype)
    if q.codes.device.type == "cpu":
        codes_f32 = code_map(q.map_id)
        scales = q.scales.float().contiguous()
        return cpu_loops.dequantize(q.codes.contiguous(), scales, codes_f32, q.block_size, q.dtype).view(q.shape)
    codes_f32 = code_map(q.map_id, q.codes.device)
    if (out := _run_triton("dequantize", q.codes, q.codes, q.scales, codes_f32, q.block_size, q.dtype)) is not None:
        return out.view(q.shape)
    return _dequantize_torch(q)


def _dequantize_torch(q: QuantizedBlocks) -> torch.Tensor:
    """``dequantize_blockwise`` in vectorised torch ops (any device)."""
    n, b = q.numel, q.block_size
    codes_f32 = code_map(q.map_id, q.codes.device)
    scales = q.scales.float()
    full = n // b
    out = torch.empty(n, dtype=torch.float32, device=q.codes.device)
    if full:
        values = codes_f32[q.codes[: full * b].to(torch.int64)].view(full, b)  # (R, B)
        out[: full * b] = (values * scales[:full, None]).view(-1)
    if n > full * b:
        out[full * b :] = codes_f32[q.codes[full * b :].to(torch.int64)] * scales[full]
    return out.to(q.dtype).view(q.shape)
