"""mixed8's grid blocks: 8-bit data (a normalised 8-bit image) travels exactly; anything else does not take the path."""

from __future__ import annotations

import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nesachain.kernels import (
    FrameConfig,
    FrameError,
    KernelError,
    Scheme,
    decode_frame,
    dequantize_mixed,
    encode_frame,
    quantize_mixed,
    read_header,
)
from nesachain.kernels.grid import GRID_TOLERANCE, grid_code
from nesachain.models import IMAGENET_MEAN, IMAGENET_STD

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def _normalised(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 as an ImageNet model takes it: (p / 255 - mean) / std."""
    return (pixels.float() / 255.0 - MEAN) / STD


def _smooth_image(seed: int) -> torch.Tensor:
    """A photo-like uint8 image: a few bright blobs on gradients, so blocks use narrow, gappy ranges."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    img = 40 + 0.3 * yy + 0.2 * xx
    for _ in range(4):
        cy, cx, r = (torch.rand(3, generator=gen) * torch.tensor([224.0, 224.0, 60.0])).tolist()
        img = img + 80 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (r + 5) ** 2))
    return torch.stack([img, img * 0.8 + 10, img * 0.6 + 30]).clamp(0, 255).round().to(torch.uint8).unsqueeze(0)


@pytest.mark.parametrize("kind", ["noise", "smooth"])
def test_normalised_8bit_images_travel_exactly_in_grid_frames(kind: str) -> None:
    if kind == "noise":
        pixels = torch.randint(0, 256, (2, 3, 224, 224), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    else:
        pixels = _smooth_image(1)
    x = _normalised(pixels)
    frame = encode_frame(x, FrameConfig(scheme=Scheme.MIXED8))
    header = read_header(frame)
    assert header.grid and header.block_size == 256 and header.outliers == 0
    assert len(frame) <= 0.52 * x.numel() * 2  # 1 + 8/256 bytes per value, against fp16's 2
    y = decode_frame(frame)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float((y - x).abs().max()) <= 2e-6  # float32 rounding of base + code * step, nothing more
    # the pixels come back: the grid index is the pixel level (or a fixed offset from it) in every block
    assert torch.equal(((y * STD + MEAN) * 255).round().to(torch.uint8), pixels)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 1100),
    base_in_steps=st.floats(-300.0, 300.0),
    step=st.floats(1e-3, 10.0),
    levels=st.integers(2, 256),
    seed=st.integers(0, 2**16),
)
def test_any_tensor_on_a_grid_takes_the_grid_path_within_its_promise(
    n: int, base_in_steps: float, step: float, levels: int, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    k = torch.randint(0, levels, (n,), generator=gen)
    k[::128], k[1::128] = 0, 1  # every block shows two neighbouring levels, so its smallest gap is the step
    x = ((base_in_steps + k.double()) * step).float()  # step above 2^-12 of the magnitudes: float32 can hold it
    m = quantize_mixed(x)
    assert m.bases is not None
    y = dequantize_mixed(m)
    block = m.blocks.block_size
    steps = m.blocks.scales.repeat_interleave(block)[:n]
    assert bool(((y - x).abs() <= steps * GRID_TOLERANCE).all())


def test_activations_and_near_grids_take_the_other_treatments() -> None:
    gen = torch.Generator().manual_seed(3)
    assert quantize_mixed(torch.randn(16, 576, generator=gen)).bases is None
    pixels = torch.randint(0, 256, (1, 3, 32, 32), generator=gen, dtype=torch.uint8)
    x = _normalised(pixels)
    assert quantize_mixed(x).bases is not None
    off = x.clone()
    off.view(-1)[1000] += 0.3 * float(1 / 255 / STD[0, 0, 0, 0])  # one value a third of a level off its grid
    assert grid_code(off.view(-1)) is None
    m = quantize_mixed(off)
    assert m.bases is None and float((dequantize_mixed(m) - off).abs().max()) < 0.05  # still coded, 8-bit error
    assert quantize_mixed(x.half()).bases is None  # float32 only
    inf = x.clone()
    inf.view(-1)[5] = float("inf")
    assert quantize_mixed(inf).bases is None  # nan and inf travel as outliers, not on a grid
    assert quantize_mixed(x, grid=False).bases is None


def test_forcing_grid_blocks_on_a_tensor_off_grid_raises() -> None:
    with pytest.raises(KernelError, match="grid"):
        quantize_mixed(torch.randn(1000), grid=True)
    with pytest.raises(KernelError, match="one at most"):
        quantize_mixed(torch.zeros(1000), grid=True, center=True)
    assert quantize_mixed(torch.zeros(1000), grid=True).bases is not None  # constant blocks: step 0


def _grid_frame() -> tuple[bytearray, int]:
    gen = torch.Generator().manual_seed(4)
    x = _normalised(torch.randint(0, 256, (1, 3, 16, 16), generator=gen, dtype=torch.uint8))
    frame = bytearray(encode_frame(x))
    header = read_header(frame)
    assert header.grid and header.block_size == 256
    return frame, header.header_bytes


def test_grid_frames_with_bad_headers_or_values_are_refused() -> None:
    frame, start = _grid_frame()
    nblocks = 3
    bases_at = start + 768 + nblocks * 4
    flags_at = 5
    assert frame[flags_at] == 0x41  # grid, float32 scales
    for flags in (0x40, 0x49, 0x51, 0x61, 0x43):  # float16 scales; + rotated; + centred; + delta; an outlier dtype
        bad = bytearray(frame)
        bad[flags_at] = flags
        with pytest.raises(FrameError, match="flags"):
            decode_frame(bad)
    half = bytearray(frame)
    half[4] = 1  # dtype float16: grid frames are float32
    with pytest.raises(FrameError, match="flags"):
        decode_frame(half)
    nan_base = bytearray(frame)
    nan_base[bases_at : bases_at + 4] = struct.pack("<f", float("nan"))
    with pytest.raises(FrameError, match="bases"):
        decode_frame(nan_base)
    huge = bytearray(frame)
    huge[bases_at : bases_at + 4] = struct.pack("<f", 3.4e38)
    huge[start + 768 : start + 772] = struct.pack("<f", 1e37)
    with pytest.raises(FrameError, match="within float32"):
        decode_frame(huge)
    with pytest.raises(FrameError, match="add up"):
        decode_frame(frame[:-1])
    outliers = bytearray(frame)
    outliers[start - 1] = 1  # the outlier count, the header's last varint
    outliers += b"\x00" * 6  # one position (uint16) and one float32 value, so the sizes add up
    with pytest.raises(FrameError, match="grid frame"):
        decode_frame(outliers)
    assert torch.isfinite(decode_frame(frame)).all()
