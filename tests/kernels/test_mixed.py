from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_inputs import residual_stream, upscaled

from nesachain.kernels import (
    FrameConfig,
    KernelError,
    MapId,
    Scheme,
    decode_frame,
    dequantize_mixed,
    encode_frame,
    error_factor,
    quantize_mixed,
    read_header,
)
from nesachain.kernels.mixed import DEFAULT_MAX_FRACTION, rotation_helps
from nesachain.kernels.outliers import coded_outliers, max_outliers, select_outliers
from nesachain.kernels.reference import select_outliers_reference
from nesachain.kernels.rotation import hadamard, rotate_blocks


def _block_norm(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """float64 (numel,): the L2 norm of each value's block."""
    flat = x.reshape(-1).double()
    n = flat.numel()
    padded = torch.nn.functional.pad(flat, (0, -n % block_size)).view(-1, block_size)  # (nblocks, B)
    return padded.norm(dim=1).repeat_interleave(block_size)[:n]


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    block_size=st.sampled_from([32, 64, 128, 1024, 4096]),
    map_id=st.sampled_from(list(MapId)),
    rotate=st.sampled_from([True, False, None]),
    treatment=st.sampled_from(["auto", "rotate", "center", "delta", "coded", "none"]),
    threshold=st.sampled_from([0.0, 6.0, 20.0]),
    max_fraction=st.sampled_from([0.0, 1 / 80, 1 / 8]),
)
def test_mixed_roundtrip_any_input_shape_dtype_and_error_bound(
    tensor_strategy: Any,
    data: st.DataObject,
    block_size: int,
    map_id: MapId,
    rotate: bool | None,
    treatment: str,
    threshold: float,
    max_fraction: float,
) -> None:
    x = data.draw(tensor_strategy(nonfinite=True))
    # "auto": rotate decides alone; "none": centring, delta and coded blocks ruled out; else that one is forced too
    center = {"auto": None, "none": False}.get(treatment, treatment == "center")
    delta = {"auto": None, "none": False}.get(treatment, treatment == "delta")
    coded = {"auto": None, "none": False}.get(treatment, treatment == "coded")
    if treatment == "rotate":
        rotate = True
    args = (x, block_size, map_id, threshold, max_fraction, rotate, center, delta, None, coded)
    if sum(bool(f) for f in (rotate, center, delta, coded)) > 1:
        with pytest.raises(KernelError):
            quantize_mixed(*args)
        return
    try:
        m = quantize_mixed(*args)
    except KernelError:  # centring / delta / coded blocks forced where they cannot be (module doc)
        assert center or delta or coded
        return
    y = dequantize_mixed(m)
    assert y.shape == x.shape and y.dtype == x.dtype
    flat_x, flat_y = x.reshape(-1).double(), y.reshape(-1).double()
    nonfinite = ~torch.isfinite(flat_x)
    assert m.positions.numel() <= max_outliers(x.numel(), max_fraction) + int(nonfinite.sum())
    assert torch.equal(torch.isnan(flat_y), torch.isnan(flat_x))  # nan exactly where it was
    infinite = torch.isinf(flat_x)
    assert torch.equal(flat_y[infinite], flat_x[infinite])  # same signed infinities
    flat_x = flat_x.nan_to_num(0.0, 0.0, 0.0)  # compared above; the bound below is for finite values
    flat_y = flat_y.nan_to_num(0.0, 0.0, 0.0)
    assert coded is None or (m.levels is not None) is coded
    if m.levels is not None:  # coded blocks: outliers exact; the rest half a step, float32 and the dtype's rounding
        assert torch.equal(m.positions, coded_outliers(x.reshape(-1), threshold, max_fraction))
        assert map_id == MapId.LINEAR and m.values.dtype == x.dtype
        assert torch.equal(flat_y[m.positions], flat_x[m.positions])
        flat_x[m.positions] = flat_y[m.positions] = 0.0
        step = float(m.blocks.scales[0])
        assert 0 < step <= float(flat_x.abs().max()) / 127 * (1 + 2**-20)  # no coarser than 8 bits over the tensor
        rel = {torch.float32: 2.0**-23, torch.float16: 2.0**-11 + 2.0**-23, torch.bfloat16: 2.0**-8 + 2.0**-23}[x.dtype]
        bound = 0.5 * step * (1 + 2**-20) + rel * (flat_x.abs() + step) + 6e-8
        assert bool(((flat_y - flat_x).abs() <= bound).all())
        return
    is_outlier = torch.zeros(x.numel(), dtype=torch.bool)
    is_outlier[m.positions] = True
    # outliers: exact in the input's 16-bit dtype, fp16-rounded (2^-11 relative) from fp32
    rel = 0.0 if x.dtype != torch.float32 else 2.0**-11
    out_err = (flat_y - flat_x).abs()[is_outlier]
    assert bool((out_err <= rel * flat_x.abs()[is_outlier]).all())
    # the rest: a rotated block's L2 error is its rotated max error times sqrt(B) at most
    rest = flat_x.clone()
    rest[is_outlier] = 0
    assert rotate is None or m.rotated is rotate
    assert center is None or (m.centers is not None and m.delta is None) is center
    assert delta is None or (m.delta is not None) is delta
    assert not (m.rotated and m.centers is not None) and (m.delta is None or m.centers is not None)
    # delta codes: a step between neighbours is at most 2 absmax (127/126 of it sets the scale)
    spread = math.sqrt(block_size) if m.rotated else 2.05 if m.delta is not None else 1.0
    factor = error_factor(map_id, x.dtype) * spread
    bound = factor * _block_norm(rest, block_size) * (1 + 1e-5)
    err = (flat_y - flat_x).abs()[~is_outlier]
    assert bool((err <= bound[~is_outlier] + 1e-30).all())


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-30, 30), min_size=0, max_size=300),
    threshold=st.sampled_from([0.0, 6.0, 20.0]),
    max_fraction=st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]),
)
def test_select_outliers_ties_and_caps_matches_reference(
    values: list[int], threshold: float, max_fraction: float
) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    fast = select_outliers(x, threshold, max_fraction).tolist()
    assert fast == select_outliers_reference(x, threshold, max_fraction)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_mixed_nan_and_inf_reproduced_exactly_even_past_the_cap(dtype: torch.dtype) -> None:
    x = torch.randn(4, 300, generator=torch.Generator().manual_seed(5)).to(dtype)
    x[0, :10] = float("nan")
    x[1, 3] = float("inf")
    x[2, 299] = float("-inf")
    y = dequantize_mixed(quantize_mixed(x, max_fraction=0.0))
    assert bool(torch.isnan(y[0, :10]).all())
    assert float(y[1, 3]) == math.inf and float(y[2, 299]) == -math.inf
    finite = torch.isfinite(x)
    assert bool(torch.isfinite(y[finite]).all())
    assert float((y[finite].float() - x[finite].float()).abs().max()) < 0.1


def test_mixed_massive_activation_kept_exactly_and_rest_accurate() -> None:
    x = torch.randn(8, 576, generator=torch.Generator().manual_seed(6))
    x[0, 100] = 25000.0  # an attention-sink token's channel
    y = dequantize_mixed(quantize_mixed(x))
    assert abs(float(y[0, 100]) - 25000.0) <= 25000.0 * 2**-11  # fp16 on the wire: 24992
    rest = torch.ones_like(x, dtype=torch.bool)
    rest[0, 100] = False
    assert float((y - x).abs()[rest].max()) < 0.05


def test_mixed_fp32_outliers_outside_fp16_range_travel_as_fp32() -> None:
    x = torch.zeros(1000)
    x[3] = 1e9
    m = quantize_mixed(x, threshold=1.0)
    assert m.values.dtype == torch.float32
    assert float(dequantize_mixed(m)[3]) == 1e9


def test_mixed_bad_arguments_raise_kernel_error() -> None:
    with pytest.raises(KernelError):
        quantize_mixed(torch.ones(10), max_fraction=1.5)
    with pytest.raises(KernelError):
        quantize_mixed(torch.ones(10), threshold=-1.0)
    with pytest.raises(KernelError):
        quantize_mixed(torch.ones(10), block_size=24)


def test_rotation_orthonormal_and_self_inverse_partial_block_untouched() -> None:
    h = hadamard(64)
    assert torch.allclose(h @ h, torch.eye(64), atol=1e-6)
    x = torch.randn(64 * 3 + 5, generator=torch.Generator().manual_seed(7))
    y = rotate_blocks(x.clone(), 64)
    assert torch.equal(y[-5:], x[-5:])
    assert torch.allclose(rotate_blocks(y, 64), x, atol=1e-5)


def test_rotation_is_chosen_per_tensor_by_predicted_error() -> None:
    gen = torch.Generator().manual_seed(8)
    # a residual stream: a few channels far above the rest of their block -> rotating spreads them
    spiky = torch.randn(16, 576, generator=gen)
    spiky[:, 3::64] *= 5.0
    # a feature map: each block of 64 neighbouring pixels of one channel is smooth -> rotating
    # concentrates the block's energy in one coefficient, which then sets a coarse step for the rest
    ramp = torch.linspace(0.5, 1.0, 64).repeat(16 * 9).view(16, 576) * (1 + 0.01 * torch.randn(16, 576, generator=gen))
    for x, expected in ((spiky, True), (ramp, False)):
        assert rotation_helps(x.reshape(-1).clone(), 64) is expected
        auto = quantize_mixed(x, center=False, delta=False, coded=False)
        assert auto.rotated is expected and auto.centers is None
        error = {r: float((dequantize_mixed(quantize_mixed(x, rotate=r, center=False, delta=False, coded=False)) - x)
                          .norm())
                 for r in (True, False)}
        assert error[expected] < error[not expected]  # the prediction picked the smaller real error
        frame = encode_frame(x, FrameConfig(scheme=Scheme.MIXED8, center=False, delta=False, coded=False))
        assert read_header(frame).rotated is expected
        assert torch.equal(decode_frame(frame), dequantize_mixed(auto))
    assert rotation_helps(torch.randn(63), 64) is False  # no full block: nothing to rotate


def _errors_by_treatment(x: torch.Tensor, delta: bool = False) -> dict[str, float]:
    forced = {"rotated": (True, False, False), "plain": (False, False, False), "centred": (False, True, False)}
    if delta:
        forced["delta"] = (False, False, True)
    return {k: float((dequantize_mixed(quantize_mixed(x, rotate=r, center=c, delta=d, coded=False)) - x).norm())
            for k, (r, c, d) in forced.items()}


def test_centring_is_chosen_for_offset_blocks_and_costs_half_the_outliers() -> None:
    gen = torch.Generator().manual_seed(9)
    # an image: 64 neighbouring pixels sit in a narrow band far from 0 (ImageNet-normalised values)
    image = 1.5 + 0.1 * torch.randn(3, 224, 224, generator=gen).cumsum(-1) / 15
    image[0, 0, :7] = 40.0  # a few values a plain block would want as outliers
    auto = quantize_mixed(image)
    assert auto.centers is not None and not auto.rotated
    assert auto.centers.dtype == torch.float16 and auto.centers.numel() == -(-image.numel() // 64)
    errors = _errors_by_treatment(image)
    assert errors["centred"] < 0.25 * min(errors["plain"], errors["rotated"])
    assert float((dequantize_mixed(auto) - image).norm()) == errors["centred"]
    assert auto.positions.numel() <= max_outliers(image.numel(), DEFAULT_MAX_FRACTION / 2)
    assert bool((dequantize_mixed(auto)[0, 0, :7] == 40.0).all())  # still outliers, still exact
    frame = encode_frame(image, FrameConfig(scheme=Scheme.MIXED8))
    header = read_header(frame)
    assert header.centered and not header.rotated
    assert torch.equal(decode_frame(frame), dequantize_mixed(auto))
    assert auto.values.dtype == torch.float32  # room for fp32 values within 0.56 x fp16
    # the centres are paid for with half the outlier cap: within 0.56 x fp16 at full cap, values in fp32
    assert len(frame) - header.header_bytes == image.numel() * (1 + 2 / 64 + 2 / 64) + 8 * auto.positions.numel()
    most = image.numel() * (1 + 4 / 64) + 8 * max_outliers(image.numel(), DEFAULT_MAX_FRACTION / 2)
    assert most + 32 <= 0.56 * 2 * image.numel()


def test_centring_choice_follows_the_real_error() -> None:
    gen = torch.Generator().manual_seed(10)
    spiky = torch.randn(64, 576, generator=gen)
    spiky[:, 3::64] *= 40.0  # outlier channels well past the cap: rotation spreads them
    relu = torch.relu(torch.randn(64, 576, generator=gen))  # one-sided: centring halves the step
    for x, expected in ((spiky, "rotated"), (relu, "centred")):
        m = quantize_mixed(x, coded=False)  # the 8-bit treatments among themselves; coded blocks: below
        chosen = "rotated" if m.rotated else "centred" if m.centers is not None and m.delta is None else "other"
        errors = _errors_by_treatment(x)
        assert chosen == expected == min(errors, key=lambda k: errors[k])


def test_centring_forced_both_ways_and_refused_with_rotation() -> None:
    x = torch.randn(1000, generator=torch.Generator().manual_seed(11)) + 100.0
    assert quantize_mixed(x, center=True).centers is not None
    assert quantize_mixed(x, center=False).centers is None
    with pytest.raises(KernelError):
        quantize_mixed(x, rotate=True, center=True)
    huge = torch.full((128,), 60000.0)
    huge[64:] = 65504.0 * 1.5  # midpoint beyond fp16: no centres, a clear error when forced
    assert quantize_mixed(huge, threshold=1e9).centers is None
    with pytest.raises(KernelError):
        quantize_mixed(huge, threshold=1e9, center=True)


def test_delta_coding_is_chosen_for_smooth_ramps_and_beats_centring() -> None:
    image = upscaled(torch.Generator().manual_seed(12))
    auto = quantize_mixed(image)
    assert auto.delta is not None and auto.centers is not None and not auto.rotated and auto.positions.numel() == 0
    # rows are 224 wide: one block in 3.5 crosses a row end, a jump that delta codes would pay for
    # all along the block; most of those blocks are centred (a small jump is not worth it), the rest delta-coded
    row_ends = torch.zeros(image.numel(), dtype=torch.bool)
    row_ends[223::224] = True
    crosses = row_ends.view(-1, 64)[:, :-1].any(dim=1)  # a row ends inside the block, not at its end
    assert bool(auto.delta[~crosses].all()) and float(auto.delta[crosses].float().mean()) < 0.5
    errors = _errors_by_treatment(image, delta=True)
    assert errors["delta"] < 0.4 * min(errors["plain"], errors["rotated"], errors["centred"])
    assert float((dequantize_mixed(auto) - image).norm()) == errors["delta"]
    frame = encode_frame(image, FrameConfig(scheme=Scheme.MIXED8))
    header = read_header(frame)
    assert header.delta and not header.centered and not header.rotated and header.outliers == 0
    nblocks = image.numel() // 64
    assert len(frame) - header.header_bytes == image.numel() * (1 + 2 / 64 + 2 / 64) + nblocks // 8
    assert torch.equal(decode_frame(frame), dequantize_mixed(auto))
    # closed loop: no drift along a block, however long
    ramp = torch.linspace(0, 1, 4096 * 4).sin()  # smooth everywhere
    long_blocks = quantize_mixed(ramp, block_size=4096, delta=True)
    assert long_blocks.delta is not None and bool(long_blocks.delta.all())
    step = long_blocks.blocks.scales.float().max() / 127
    assert float((dequantize_mixed(long_blocks) - ramp).abs().max()) <= 0.5 * float(step) + 1e-6


def test_delta_coding_refused_where_it_cannot_apply() -> None:
    ramp = torch.linspace(-1.0, 1.0, 1000)
    spiked = ramp.clone()
    spiked[10] = 50.0  # an outlier: delta coding is only for tensors without any
    assert quantize_mixed(spiked).delta is None
    with pytest.raises(KernelError):
        quantize_mixed(spiked, delta=True)
    with pytest.raises(KernelError):
        quantize_mixed(ramp, map_id=MapId.DYNAMIC, delta=True)
    assert quantize_mixed(ramp, map_id=MapId.DYNAMIC).delta is None
    with pytest.raises(KernelError):
        quantize_mixed(ramp, center=True, delta=True)
    noisy = torch.randn(64, 576, generator=torch.Generator().manual_seed(13))
    m = quantize_mixed(noisy)  # neighbours unrelated: a step is about as wide as the block
    assert m.delta is None or float(m.delta.float().mean()) < 0.01


def test_fp32_outliers_travel_in_fp32_where_the_frame_has_room_within_056_fp16() -> None:
    logits = torch.randn(4, 1000, generator=torch.Generator().manual_seed(12))
    logits[:, :5] = 10.0 + torch.rand(4, 5, generator=torch.Generator().manual_seed(14)) * 1e-3  # near-tied top classes
    m = quantize_mixed(logits, center=False, coded=False)
    assert m.values.dtype == torch.float32 and m.positions.numel() == 20
    assert torch.equal(dequantize_mixed(m)[:, :5], logits[:, :5])  # fp16 steps are 0.0078 there: order kept
    # a prefill-sized residual stream, cap binding, rotated: fp32 values would pass 0.56 x fp16
    stream = torch.randn(128, 576, generator=torch.Generator().manual_seed(13)) * 20
    m = quantize_mixed(stream, center=False, coded=False)
    assert m.positions.numel() == max_outliers(stream.numel(), DEFAULT_MAX_FRACTION)
    assert m.values.dtype == torch.float16
    for x in (logits, stream, torch.randn(1, 576, generator=torch.Generator().manual_seed(15)) * 20):
        for center in (False, True):
            frame = encode_frame(x, FrameConfig(scheme=Scheme.MIXED8, center=center, grid=False))
            assert len(frame) <= 0.56 * 2 * x.numel()


def test_coded_blocks_are_chosen_on_a_residual_stream_and_beat_every_8bit_treatment() -> None:
    x = residual_stream(16)
    auto = quantize_mixed(x)
    assert auto.levels is not None and auto.centers is None and not auto.rotated
    # apart: the values above 64 x the mean |x|, exact, in the input's dtype (here the attention sink only)
    flat = x.reshape(-1)
    outliers = (flat.abs() > 64 * flat.abs().mean()).nonzero().view(-1)
    assert torch.equal(auto.positions, outliers) and 100 in outliers and outliers.numel() <= flat.numel() / 256
    assert auto.values.dtype == torch.float32
    y = dequantize_mixed(auto)
    assert float(y[0, 100]) == 20000.0
    errors = _errors_by_treatment(x)
    assert float((y - x).norm()) < 0.5 * min(errors.values())
    step = float(auto.blocks.scales[0])
    assert float((y - x).abs().max()) <= 0.5 * step * (1 + 2**-20) + 2**-23 * float(x.abs().max())
    frame = encode_frame(x, FrameConfig(scheme=Scheme.MIXED8))
    header = read_header(frame)
    assert header.coded and not (header.rotated or header.centered or header.delta or header.grid)
    assert 0.55 * 2 * x.numel() <= len(frame) <= 0.56 * 2 * x.numel()  # the whole budget, not more
    assert torch.equal(decode_frame(frame), y)
    one_token = encode_frame(x[:1], FrameConfig(scheme=Scheme.MIXED8))  # a decode step fits the budget too
    assert read_header(one_token).coded and len(one_token) <= 0.56 * 2 * 576


def test_coded_blocks_forced_or_refused() -> None:
    x = residual_stream(17)
    x[3, 5], x[4, 6] = float("nan"), float("-inf")
    m = quantize_mixed(x.half(), coded=True)
    assert m.levels is not None and {100, 3 * 576 + 5, 4 * 576 + 6} <= set(m.positions.tolist())  # non-finite: always
    only_nonfinite = quantize_mixed(x, max_fraction=0.0, coded=True)
    assert only_nonfinite.positions.tolist() == [3 * 576 + 5, 4 * 576 + 6]
    y = dequantize_mixed(m)
    assert bool(torch.isnan(y[3, 5])) and float(y[4, 6]) == -math.inf and float(y[0, 100]) == 20000.0
    assert quantize_mixed(x, coded=False).levels is None
    tiny = torch.randn(1000, generator=torch.Generator().manual_seed(3)) * 1e-41  # subnormal: no float32 step
    for bad in (torch.zeros(1000), torch.randn(10), torch.full((1000,), math.nan), tiny):  # no step, or no budget
        with pytest.raises(KernelError, match="coded"):
            quantize_mixed(bad, coded=True)
    with pytest.raises(KernelError, match="linear map"):
        quantize_mixed(x, map_id=MapId.DYNAMIC, coded=True)
    assert quantize_mixed(x, map_id=MapId.DYNAMIC).levels is None
    with pytest.raises(KernelError, match="one at most"):
        quantize_mixed(x, rotate=True, coded=True)
