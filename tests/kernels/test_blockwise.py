from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nesachain.kernels import KernelError, MapId, code_map, dequantize_blockwise, error_factor, quantize_blockwise
from nesachain.kernels.reference import dequantize_blockwise_reference, quantize_blockwise_reference

BLOCK_SIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096]


def _block_absmax(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """float64 (numel,): the absmax of each value's block."""
    flat = x.reshape(-1).double().abs()
    n = flat.numel()
    padded = torch.nn.functional.pad(flat, (0, -n % block_size)).view(-1, block_size)  # (nblocks, B)
    return padded.amax(dim=1).repeat_interleave(block_size)[:n]


@settings(max_examples=80, deadline=None)
@given(data=st.data(), block_size=st.sampled_from(BLOCK_SIZES), map_id=st.sampled_from(list(MapId)))
def test_blockwise_roundtrip_any_input_shape_dtype_and_error_bound(
    tensor_strategy: Any, data: st.DataObject, block_size: int, map_id: MapId
) -> None:
    x = data.draw(tensor_strategy())
    y = dequantize_blockwise(quantize_blockwise(x, block_size, map_id))
    assert y.shape == x.shape and y.dtype == x.dtype
    bound = error_factor(map_id, x.dtype) * _block_absmax(x, block_size)
    err = (y.double() - x.double()).abs().reshape(-1)
    assert bool((err <= bound * (1 + 1e-6) + 1e-30).all()), float((err - bound).max())


@settings(max_examples=40, deadline=None)
@given(data=st.data(), block_size=st.sampled_from([32, 64, 256]), map_id=st.sampled_from(list(MapId)))
def test_blockwise_fast_path_any_input_matches_reference(
    tensor_strategy: Any, data: st.DataObject, block_size: int, map_id: MapId
) -> None:
    x = data.draw(tensor_strategy(max_numel=1500))
    fast = quantize_blockwise(x, block_size, map_id)
    ref = quantize_blockwise_reference(x, block_size, map_id)
    assert torch.equal(fast.codes, ref.codes)
    assert torch.equal(fast.scales, ref.scales)
    assert torch.equal(dequantize_blockwise(fast), dequantize_blockwise_reference(fast))


def test_blockwise_dynamic_map_equals_bitsandbytes_map() -> None:
    import bitsandbytes.functional as functional  # a dev dependency: the reference map

    assert torch.equal(code_map(MapId.DYNAMIC), functional.create_dynamic_map(signed=True))


def test_blockwise_linear_map_uniform_steps_of_1_over_127() -> None:
    codes = code_map(MapId.LINEAR)
    assert torch.allclose(codes[:255], torch.arange(-127, 128) / 127.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_blockwise_nonfinite_input_raises_kernel_error(bad: float) -> None:
    x = torch.ones(100)
    x[70] = bad
    with pytest.raises(KernelError, match="nan or inf"):
        quantize_blockwise(x)


@pytest.mark.parametrize("block_size", [0, 16, 48, 100, 8192])
def test_blockwise_bad_block_size_raises_kernel_error(block_size: int) -> None:
    with pytest.raises(KernelError, match="block size"):
        quantize_blockwise(torch.ones(10), block_size)


def test_blockwise_unknown_map_or_dtype_raises_kernel_error() -> None:
    with pytest.raises(KernelError, match="map id"):
        quantize_blockwise(torch.ones(10), 64, 7)
    with pytest.raises(KernelError, match="dtype"):
        quantize_blockwise(torch.ones(10, dtype=torch.float64))


@pytest.mark.parametrize("magnitude", [1e-7, 1e6])
def test_blockwise_scales_outside_fp16_range_travel_as_fp32(magnitude: float) -> None:
    x = torch.randn(256, generator=torch.Generator().manual_seed(1)) * magnitude
    q = quantize_blockwise(x)
    assert q.scales.dtype == torch.float32
    err = (dequantize_blockwise(q) - x).abs()
    assert bool((err <= error_factor(MapId.DYNAMIC, torch.float32) * _block_absmax(x, 64)).all())


def test_blockwise_ordinary_values_use_fp16_scales_and_zero_blocks_decode_to_zero() -> None:
    x = torch.zeros(200)
    x[:64] = torch.linspace(-3, 3, 64)
    q = quantize_blockwise(x)
    assert q.scales.dtype == torch.float16
    y = dequantize_blockwise(q)
    assert bool((y[64:] == 0).all())
    assert math.isclose(float(y[63]), 3.0, rel_tol=2**-10)


def test_blockwise_non_contiguous_input_same_as_contiguous() -> None:
    x = torch.randn(64, 96, generator=torch.Generator().manual_seed(2)).t()  # (96, 64), non-contiguous
    assert torch.equal(quantize_blockwise(x).codes, quantize_blockwise(x.contiguous()).codes)
