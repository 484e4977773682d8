"""The compiled CPU loops against the vectorised torch path (the one CUDA runs) and torch's rounding."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nesachain.kernels import KernelError, MapId, cpu_loops, dequantize_blockwise, quantize_blockwise
from nesachain.kernels.blockwise import _dequantize_torch, _quantize_torch, make_scales
from nesachain.kernels.codemaps import code_map, quantize_table
from nesachain.kernels.delta import delta_codes_torch

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def torch_path_codes(x: torch.Tensor, block_size: int, map_id: MapId) -> torch.Tensor:
    flat = x.reshape(-1)
    full = flat.numel() // block_size
    absmax = torch.empty(-(-flat.numel() // block_size))
    if full:
        absmax[:full] = flat[: full * block_size].view(full, block_size).abs().amax(dim=1).float()
    if absmax.numel() > full:
        absmax[full] = flat[full * block_size :].abs().amax().float()
    divisors = make_scales(absmax).float()
    divisors = torch.where(divisors == 0, 1.0, divisors)
    return _quantize_torch(flat, divisors, quantize_table(map_id), block_size)


@settings(max_examples=60, deadline=None)
@given(
    numel=st.integers(0, 5000),
    dtype=st.sampled_from(DTYPES),
    block_log2=st.integers(5, 12),
    map_id=st.sampled_from(list(MapId)),
    log_scale=st.floats(-20, 14),
    seed=st.integers(0, 2**16),
)
def test_loops_match_torch_path(
    numel: int, dtype: torch.dtype, block_log2: int, map_id: MapId, log_scale: float, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(numel, generator=gen) * 2.0**log_scale).to(dtype)
    block = 1 << block_log2
    q = quantize_blockwise(x, block, map_id)
    assert torch.equal(q.codes, torch_path_codes(x, block, map_id))
    fast, slow = dequantize_blockwise(q), _dequantize_torch(q)
    assert fast.dtype == slow.dtype == dtype
    assert torch.equal(fast.view(-1).view(torch.uint8), slow.view(-1).view(torch.uint8))  # bit for bit


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_outputs_round_like_torch_across_the_whole_range(dtype: torch.dtype) -> None:
    # every code times scales from fp16-subnormal sizes to the top of the dtype's range
    codes = torch.arange(256, dtype=torch.uint8).repeat(64)  # 64 blocks of 256
    top = 65504.0 if dtype == torch.float16 else 3.0e38
    scales = torch.logspace(math.log10(2.0**-30), math.log10(top), 64, dtype=torch.float64).float()
    for map_id in MapId:
        wide = cpu_loops.dequantize(codes, scales, code_map(map_id), 256, torch.float32)
        narrow = cpu_loops.dequantize(codes, scales, code_map(map_id), 256, dtype)
        assert torch.equal(narrow.view(torch.int16), wide.to(dtype).view(torch.int16))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_absmax_marks_non_finite_blocks(dtype: torch.dtype, bad: float) -> None:
    x = torch.ones(200, dtype=dtype)
    x[70] = bad
    absmax = cpu_loops.block_absmax(x, 64)
    assert absmax[0] == 1.0 and absmax[2] == 1.0 and absmax[3] == 1.0
    assert math.isnan(float(absmax[1]))
    with pytest.raises(KernelError, match="nan or inf"):
        quantize_blockwise(x)


def test_split_over_threads_gives_the_same_bytes_and_is_thread_safe() -> None:
    n = 4 * cpu_loops.PARALLEL_MIN_VALUES + 37  # several parts and a partial last block
    x = torch.randn(n, generator=torch.Generator().manual_seed(5)) * 30
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = quantize_blockwise(x)
        serial_out = dequantize_blockwise(serial)
        torch.set_num_threads(4)
        assert len(cpu_loops._parts(n, 64)) == 4
        with ThreadPoolExecutor(max_workers=3) as pool:  # several callers at once share the pool
            results = list(pool.map(lambda _: quantize_blockwise(x), range(3)))
        for q in results:
            assert torch.equal(q.codes, serial.codes) and torch.equal(q.scales, serial.scales)
            assert torch.equal(dequantize_blockwise(q), serial_out)
    finally:
        torch.set_num_threads(previous)


@settings(max_examples=60, deadline=None)
@given(
    nblocks=st.integers(0, 40),
    block_log2=st.integers(5, 9),
    log_scale=st.floats(-12, 12),
    jump=st.floats(0, 50),
    seed=st.integers(0, 2**16),
)
def test_delta_codes_match_torch_path(nblocks: int, block_log2: int, log_scale: float, jump: float, seed: int) -> None:
    # random walks with occasional jumps (an image's row ends), some blocks delta-coded, some centred,
    # scales both too small (codes clamp at ±127) and large enough
    gen = torch.Generator().manual_seed(seed)
    block = 1 << block_log2
    steps = torch.randn(nblocks, block, generator=gen) * (torch.rand(nblocks, block, generator=gen) < 0.02) * jump
    blocks = ((torch.randn(nblocks, block, generator=gen) * 0.1 + steps).cumsum(dim=1) * 2.0**log_scale).float()
    is_delta = torch.rand(nblocks, generator=gen) < 0.6
    anchors = torch.where(is_delta, blocks[:, 0], blocks.mean(dim=1) if nblocks else blocks[:, 0])
    anchors = anchors.to(torch.float16).double()
    spread = torch.rand(nblocks, generator=gen).double() * 2  # below 1: some differences clamp
    reach = blocks.double().diff(dim=1).abs().amax(dim=1) * (127 / 126) * spread
    wide = make_scales(reach.float() + 2.0**log_scale).float()
    divisors = torch.where(wide == 0, 1.0, wide).double()
    table = code_map(MapId.LINEAR)
    fast = cpu_loops.delta_codes(blocks, is_delta, anchors, divisors, wide, table)
    slow = delta_codes_torch(blocks, is_delta, anchors, divisors, wide, table)
    assert fast.shape == (nblocks, block) and fast.dtype == torch.uint8
    assert torch.equal(fast, slow)
    if nblocks:
        assert int(fast.min()) >= 0 and int(fast.max()) <= 254  # code 255 is never used by ±127
