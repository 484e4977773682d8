"""Triton kernels for the blockwise codec on CUDA: one launch per step instead of a dozen torch ops.

    block_absmax   absmax of each block; nan where a block holds nan or ±inf
    quantize       code = table[binary16 bit pattern of float32(x / divisor)]
    dequantize     code_map[code] * scale, rounded once to the output dtype

They compute what ``blockwise``'s torch path computes, bit for bit (``tests/kernels/test_cuda.py``
checks codes, scales and outputs against the CPU path): the division is IEEE round-to-nearest
(``tl.div_rn``, not the fast approximate one) and every narrowing conversion rounds to nearest even
(bf16 by hand: Triton's CPU interpreter, which the CPU-only tests use, truncates instead).

Kernel parameters carry no annotations but ``tl.constexpr``: Triton refuses any other global name
there. Each program handles ``ROWS`` blocks of ``B`` values, ``ROWS * B`` = 2048. Used only where Triton
imports and the tensor is on a CUDA device; compiled on first use.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["available", "block_absmax", "dequantize", "quantize"]

_VALUES_PER_PROGRAM = 2048


def available(device: torch.device) -> bool:
    """Whether these kernels serve tensors on ``device``."""
    return device.type == "cuda"


def _rows(block_size: int) -> int:
    return max(1, _VALUES_PER_PROGRAM // block_size)


@triton.jit
def _absmax_kernel(x_ptr, out_ptr, n, nblocks, BLOCK: tl.constexpr, ROWS: tl.constexpr):  # type: ignore[no-untyped-def]
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)  # (ROWS,)
    index = rows[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :]  # (ROWS, BLOCK)
    x = tl.load(x_ptr + index, mask=index < n, other=0.0).to(tl.float32)
    magnitude = tl.abs(x)
    bad = tl.sum(((magnitude != magnitude) | (magnitude == float("inf"))).to(tl.int32), axis=1)  # nan, ±inf
    biggest = tl.max(tl.where(magnitude == magnitude, magnitude, 0.0), axis=1)
    tl.store(out_ptr + rows, tl.where(bad > 0, float("nan"), biggest), mask=rows < nblocks)


@triton.jit
def _quantize_kernel(  # type: ignore[no-untyped-def]
    x_ptr, div_ptr, table_ptr, codes_ptr, n, nblocks, BLOCK: tl.constexpr, ROWS: tl.constexpr
):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    index = rows[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :]
    mask = index < n
    x = tl.load(x_ptr + index, mask=mask, other=0.0).to(tl.float32)
    divisor = tl.load(div_ptr + rows, mask=rows < nblocks, other=1.0)
    u = tl.div_rn(x, divisor[:, None])  # IEEE division, as torch's and the CPU loops'
    pattern = u.to(tl.float16).to(tl.uint16, bitcast=True).to(tl.int32)  # 0..65535
    tl.store(codes_ptr + index, tl.load(table_ptr + pattern, mask=mask, other=0), mask=mask)


@triton.jit
def _dequantize_kernel(  # type: ignore[no-untyped-def]
    codes_ptr, scales_ptr, map_ptr, out_ptr, n, nblocks,
    BLOCK: tl.constexpr, ROWS: tl.constexpr, BF16_BITS: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    index = rows[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :]
    mask = index < n
    code = tl.load(codes_ptr + index, mask=mask, other=0).to(tl.int32)
    scale = tl.load(scales_ptr + rows, mask=rows < nblocks, other=0.0).to(tl.float32)
    value = tl.load(map_ptr + code, mask=mask, other=0.0) * scale[:, None]
    if BF16_BITS:  # round to bf16 by hand (nearest even; the values are finite): the same on every backend
        bits = value.to(tl.uint32, bitcast=True)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        tl.store(out_ptr + index, rounded.to(tl.uint16).to(tl.int16, bitcast=True), mask=mask)
    else:
        tl.store(out_ptr + index, value.to(out_ptr.dtype.element_ty), mask=mask)


def _grid(numel: int, block_size: int) -> tuple[int]:
    return (triton.cdiv(triton.cdiv(numel, block_size), _rows(block_size)),)


def block_absmax(flat: torch.Tensor, block_size: int) -> torch.Tensor:
    """float32 (ceil(N / B),): the absmax of each block of the 1-D CUDA ``flat``."""
    flat = flat.contiguous()
    nblocks = triton.cdiv(flat.numel(), block_size)
    out = torch.empty(nblocks, dtype=torch.float32, device=flat.device)
    if nblocks:
        _absmax_kernel[_grid(flat.numel(), block_size)](
            flat, out, flat.numel(), nblocks, BLOCK=block_size, ROWS=_rows(block_size)
        )
    return out


def quantize(flat: torch.Tensor, divisors: torch.Tensor, table: torch.Tensor, block_size: int) -> torch.Tensor:
    """uint8 codes of the 1-D CUDA ``flat``, one float32 divisor (> 0) per block."""
    flat = flat.contiguous()
    codes = torch.empty(flat.numel(), dtype=torch.uint8, device=flat.device)
    if codes.numel():
        _quantize_kernel[_grid(flat.numel(), block_size)](
            flat, divisors.contiguous(), table, codes, flat.numel(), divisors.numel(),
            BLOCK=block_size, ROWS=_rows(block_size),
        )  # fmt: skip
    return codes


def dequantize(
    codes: torch.Tensor, scales: torch.Tensor, code_map: torch.Tensor, block_size: int, dtype: torch.dtype
) -> torch.Tensor:
    """``code_map[codes] * scales[block]`` as a 1-D CUDA tensor of ``dtype``."""
    bf16 = dtype == torch.bfloat16
    out = torch.empty(codes.numel(), dtype=torch.int16 if bf16 else dtype, device=codes.device)
    if out.numel():
        _dequantize_kernel[_grid(codes.numel(), block_size)](
            codes.contiguous(), scales.contiguous(), code_map, out, codes.numel(), scales.numel(),
            BLOCK=block_size, ROWS=_rows(block_size), BF16_BITS=bf16,
        )  # fmt: skip
    return out.view(dtype)
