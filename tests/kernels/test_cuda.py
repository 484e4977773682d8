"""The CUDA path against the CPU path. Skipped where torch sees no GPU (this project's CI);
run on a GPU machine with ``pytest -m gpu tests/kernels``."""

from __future__ import annotations

import pytest
import torch
from kernel_inputs import residual_stream, upscaled

from nesachain.kernels import (
    FrameConfig,
    Int8Linear,
    MapId,
    Scheme,
    decode_frame,
    dequantize_blockwise,
    dequantize_mixed,
    encode_frame,
    quantize_blockwise,
    quantize_mixed,
    read_header,
    requantize,
)
from nesachain.kernels.codemaps import quantize_table
from nesachain.models import IMAGENET_MEAN, IMAGENET_STD

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def activations(dtype: torch.dtype, seed: int = 3) -> torch.Tensor:
    """(3, 333, 576): a residual-stream-like tensor with a few huge channels and a partial last block."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 333, 576, generator=gen)
    x[:, :, 7] *= 300.0
    x[:, 0, :] *= 40.0
    return x.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [32, 64, 4096])
def test_blockwise_cuda_gives_the_cpu_bytes(dtype: torch.dtype, block_size: int) -> None:
    x = activations(dtype)
    for map_id in MapId:
        cpu = quantize_blockwise(x, block_size, map_id)
        gpu = quantize_blockwise(x.cuda(), block_size, map_id)
        assert gpu.codes.is_cuda
        assert torch.equal(cpu.codes, gpu.codes.cpu())
        assert torch.equal(cpu.scales, gpu.scales.cpu())
        out_cpu, out_gpu = dequantize_blockwise(cpu), dequantize_blockwise(gpu)
        assert out_gpu.is_cuda and out_gpu.dtype == dtype and out_gpu.shape == x.shape
        assert torch.equal(out_cpu.view(torch.uint8), out_gpu.cpu().view(torch.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_blockwise_frames_from_cuda_are_the_cpu_frames(dtype: torch.dtype) -> None:
    x = activations(dtype)
    for scheme in (Scheme.NONE, Scheme.FP16, Scheme.BLOCKWISE8):
        config = FrameConfig(scheme=scheme)
        frame = encode_frame(x.cuda(), config)
        assert frame == encode_frame(x, config)
        back = decode_frame(frame, device="cuda")
        assert back.is_cuda and back.dtype == dtype and back.shape == x.shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed8_on_cuda_keeps_outliers_and_error_bound(dtype: torch.dtype) -> None:
    x = activations(dtype)
    x.view(-1)[11] = float("nan")
    x.view(-1)[12] = float("inf")
    cpu = quantize_mixed(x)
    gpu = quantize_mixed(x.cuda())
    assert torch.equal(cpu.positions, gpu.positions.cpu())  # the same outliers, chosen on the GPU
    y_cpu, y_gpu = dequantize_mixed(cpu), dequantize_mixed(gpu).cpu()
    assert y_gpu.dtype == dtype and y_gpu.shape == x.shape
    assert torch.isnan(y_gpu.view(-1)[11]) and y_gpu.view(-1)[12] == float("inf")
    finite = torch.isfinite(x)
    # the rotation's float32 matmul may round differently on the GPU, moving a code by one step
    rel = (y_gpu[finite].double() - x[finite].double()).norm() / x[finite].double().norm()
    rel_cpu = (y_cpu[finite].double() - x[finite].double()).norm() / x[finite].double().norm()
    assert float(rel) <= 1.05 * float(rel_cpu) + 1e-6
    frame = encode_frame(x.cuda(), FrameConfig(scheme=Scheme.MIXED8))
    back = decode_frame(frame, device="cuda")
    assert back.is_cuda and torch.isnan(back.view(-1)[11])


def test_grid_blocks_on_cuda_are_exact_like_the_cpu_path() -> None:
    pixels = torch.randint(0, 256, (2, 3, 224, 224), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (pixels.float() / 255.0 - mean) / std
    frame = encode_frame(x.cuda(), FrameConfig(scheme=Scheme.MIXED8))
    assert frame[5] == 0x41  # grid blocks, float32 steps
    back = decode_frame(frame, device="cuda")
    assert back.is_cuda and float((back.cpu() - x).abs().max()) <= 2e-6
    assert float((decode_frame(encode_frame(x)) - x).abs().max()) <= 2e-6


def test_int8_linear_on_cuda_matches_cpu() -> None:
    gen = torch.Generator().manual_seed(4)
    linear = torch.nn.Linear(576, 1536)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(1536, 576, generator=gen) * 0.05)
    q = Int8Linear.from_linear(linear)
    x = torch.randn(8, 576, generator=gen)
    expected = q(x)
    got = q.cuda()(x.cuda()).cpu()
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_and_torch_cuda_paths_agree(dtype: torch.dtype) -> None:
    from nesachain.kernels.blockwise import _dequantize_torch, _quantize_torch, _triton_kernels

    assert _triton_kernels() is not None  # the GPU machine's torch ships Triton: the fast path is in use
    x = activations(dtype).cuda()
    for map_id in MapId:
        q = quantize_blockwise(x, 64, map_id)
        divisors = torch.where(q.scales.float() == 0, 1.0, q.scales.float())
        table = quantize_table(map_id, x.device)
        assert torch.equal(q.codes, _quantize_torch(x.reshape(-1), divisors, table, 64))
        assert torch.equal(dequantize_blockwise(q).view(torch.uint8), _dequantize_torch(q).view(torch.uint8))


def stream_with_nan(dtype: torch.dtype) -> torch.Tensor:
    """``residual_stream(16)`` with a nan, in ``dtype``: mixed8 sends it as coded blocks."""
    x = residual_stream(16)
    x[3, 5] = float("nan")
    return x.to(dtype)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    bits = [t.cpu().contiguous().view(torch.uint8) for t in (a, b)]
    return a.dtype == b.dtype and torch.equal(*bits)


@pytest.mark.parametrize("dtype", DTYPES)
def test_coded_frames_from_cuda_are_the_cpu_frames(dtype: torch.dtype) -> None:
    x = stream_with_nan(dtype)
    for config in (FrameConfig(scheme=Scheme.MIXED8), FrameConfig(scheme=Scheme.MIXED8, coded=True)):
        frame = encode_frame(x.cuda(), config)
        assert read_header(frame).coded
        assert frame == encode_frame(x, config)  # the same outliers, step and levels, chosen from the GPU
        back = decode_frame(frame, device="cuda")
        assert back.is_cuda and back.shape == x.shape and same_bits(back, decode_frame(frame))
    one_token = x[:1].cuda()
    assert encode_frame(one_token) == encode_frame(x[:1])
    # the verifier's path: a recomputation put on the miner's step, on the GPU as on the CPU
    recomputed = x.float() * (1 + 2.0**-22)
    on_gpu = requantize(frame, recomputed.cuda())
    assert on_gpu.is_cuda and same_bits(on_gpu, requantize(frame, recomputed))


def test_delta_and_centred_frames_from_cuda_match_the_cpu_treatment_and_error() -> None:
    image = upscaled(torch.Generator().manual_seed(12))  # smooth ramps: delta-coded
    shifted = torch.relu(torch.randn(2, 32, 56, 56, generator=torch.Generator().manual_seed(7))) * 3  # one-sided
    cases = [
        (image, FrameConfig(scheme=Scheme.MIXED8), "delta"),
        (image, FrameConfig(scheme=Scheme.MIXED8, delta=False, coded=False), "centered"),
        (shifted, FrameConfig(scheme=Scheme.MIXED8, center=True), "centered"),
    ]
    for x, config, flag in cases:
        cpu, gpu = encode_frame(x, config), encode_frame(x.cuda(), config)
        h_cpu, h_gpu = read_header(cpu), read_header(gpu)
        assert getattr(h_gpu, flag) and h_gpu == h_cpu, (flag, h_gpu, h_cpu)
        back = decode_frame(gpu, device="cuda")
        assert back.is_cuda and back.shape == x.shape
        err_gpu = float((back.cpu() - x).norm())
        err_cpu = float((decode_frame(cpu) - x).norm())
        assert err_gpu <= 1.01 * err_cpu + 1e-6, (flag, err_gpu, err_cpu)
        # the frame each made decodes the same wherever it is decoded
        assert torch.allclose(decode_frame(cpu, device="cuda").cpu(), decode_frame(cpu), rtol=0, atol=1e-6)


def test_small_tensors_on_cuda_are_encoded_from_a_host_copy() -> None:
    from nesachain.kernels.frame import HOST_ENCODE_MAX_NUMEL

    x = stream_with_nan(torch.float32)[:1]  # a decode step: 576 values
    assert x.numel() <= HOST_ENCODE_MAX_NUMEL
    for scheme in Scheme:
        for config in (FrameConfig(scheme=scheme), FrameConfig(scheme=scheme, coded=False)):
            assert encode_frame(x.cuda(), config) == encode_frame(x, config)
