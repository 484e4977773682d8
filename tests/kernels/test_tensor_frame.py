from __future__ import annotations

import math
import struct
import subprocess
import sys
import tracemalloc
from typing import Any

import msgpack
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nesachain.kernels import (
    FrameConfig,
    FrameError,
    KernelError,
    MapId,
    Scheme,
    decode_frame,
    encode_frame,
    error_factor,
    read_header,
    requantize,
)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value >> 7 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _frame(
    scheme: int,
    shape: tuple[int, ...],
    payload: bytes = b"",
    dtype: int = 0,
    flags: int = 0,
    block_log2: int = 0,
    map_id: int = 0,
    outliers: int | None = None,
    version: int = 1,
    magic: bytes = b"NT",
) -> bytes:
    """A frame written from the documented layout, independent of the encoder."""
    head = struct.pack("<2sBBBBBBB", magic, version, scheme, dtype, flags, block_log2, map_id, len(shape))
    head += b"".join(_varint(d) for d in shape)
    if outliers is not None:
        head += _varint(outliers)
    return head + payload


# Frames that must be refused; each is small, several announce absurd sizes.
HOSTILE = {
    "2^40 elements, none": _frame(0, (1 << 20, 1 << 20), b"\0" * 64),
    "2^40 elements, blockwise8": _frame(2, (1 << 40,), b"\0" * 64, block_log2=6),
    "2^40 elements, mixed8": _frame(3, (1 << 40,), b"\0" * 64, block_log2=6, outliers=5),
    "1 GiB announced, none": _frame(0, (1 << 28,), b"\0" * 1024),
    "2^63 dimension": _frame(0, (1 << 63, 1 << 63), b""),
    "outliers above numel": _frame(3, (4,), b"\0" * 6 + b"\0" * 30, block_log2=6, outliers=5),
    "truncated header": _frame(0, (3, 4))[:10],
    "empty buffer": b"",
    "bad magic": _frame(0, (1,), b"\0" * 4, magic=b"XX"),
    "unknown version": _frame(0, (1,), b"\0" * 4, version=9),
    "unknown scheme": _frame(7, (1,), b"\0" * 4),
    "unknown dtype": _frame(0, (1,), b"\0" * 4, dtype=10),
    "int64 quantized": _frame(2, (1,), b"\0" * 3, dtype=4, block_log2=6),
    "int32 as fp16": _frame(1, (1,), b"\0" * 2, dtype=5),
    "bool byte 2": _frame(0, (2,), b"\x01\x02", dtype=9),
    "unknown map id": _frame(2, (1,), b"\0" * 3, block_log2=6, map_id=9),
    "block size 2^4": _frame(2, (1,), b"\0" * 3, block_log2=4),
    "block size 2^13": _frame(2, (1,), b"\0" * 3, block_log2=13),
    "block size set for none": _frame(0, (1,), b"\0" * 4, block_log2=6),
    "unused flag bit": _frame(2, (1,), b"\0" * 3, flags=0x80, block_log2=6),
    "rotated flag on blockwise8": _frame(2, (1,), b"\0" * 3, flags=0x08, block_log2=6),
    "centred flag on blockwise8": _frame(2, (1,), b"\0" * 3 + b"\0" * 2, flags=0x10, block_log2=6),
    "rotated and centred": _frame(3, (1,), b"\0" * 3 + b"\0" * 2, flags=0x18, block_log2=6, outliers=0),
    "centred and delta": _frame(3, (1,), b"\0" * 3 + b"\0" * 3, flags=0x30, block_log2=6, map_id=1, outliers=0),
    "delta with the dynamic map": _frame(3, (1,), b"\0" * 3 + b"\0" * 3, flags=0x20, block_log2=6, map_id=0,
                                         outliers=0),
    "delta bit past the last block": _frame(3, (1,), b"\0" * 3 + b"\0" * 2 + b"\x02", flags=0x20, block_log2=6,
                                            map_id=1, outliers=0),
    "2^40 elements, coded": _frame(3, (1 << 40,), _varint(64) + b"\0" * 68, flags=0x81, block_log2=6, map_id=1,
                                   outliers=0),
    "coded with the dynamic map": _frame(3, (1,), _varint(1) + b"\0" * 5, flags=0x81, block_log2=6, outliers=0),
    "coded with fp16 scales": _frame(3, (1,), _varint(1) + b"\0" * 5, flags=0x80, block_log2=6, map_id=1,
                                     outliers=0),
    "coded and rotated": _frame(3, (1,), _varint(1) + b"\0" * 5, flags=0x89, block_log2=6, map_id=1, outliers=0),
    "outlier dtype code 3": _frame(3, (1,), b"\0" * 3, flags=0x06, block_log2=6, outliers=0),
    "nine dimensions": _frame(0, (1,) * 9, b"\0" * 4),
    "varint of 11 bytes": _frame(0, (), b"")[:8] + b"\x01" + b"\xff" * 10 + b"\x01",
    "non-canonical varint": _frame(0, (), b"")[:8] + b"\x01\x81\x00" + b"\0" * 4,
}


def test_frame_hostile_frames_rejected_with_frame_error_only() -> None:
    for name, frame in HOSTILE.items():
        with pytest.raises(FrameError):
            decode_frame(frame)
            pytest.fail(f"accepted: {name}")


def test_frame_hostile_frames_rejected_without_large_python_allocation() -> None:
    decode_frame(encode_frame(torch.ones(4)))  # warm caches outside the measurement
    tracemalloc.start()
    try:
        for frame in HOSTILE.values():
            with pytest.raises(FrameError):
                decode_frame(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


_RSS_PROBE = r"""
import resource, struct, torch
from nesachain.kernels import FrameError, decode_frame, encode_frame
def frame(scheme, shape, payload, block_log2=0, outliers=None):
    head = struct.pack("<2sBBBBBBB", b"NT", 1, scheme, 0, 0, block_log2, 0, len(shape))
    for d in shape:
        while True:
            head += bytes([(d & 0x7F) | (0x80 if d >> 7 else 0)]); d >>= 7
            if not d: break
    if outliers is not None: head += bytes([outliers])
    return head + payload
decode_frame(encode_frame(torch.ones(1000)))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for f in [frame(0, (1 << 28,), b"\0" * 4096), frame(2, (1 << 30,), b"\0" * 4096, 6),
          frame(3, (1 << 29,), b"\0" * 4096, 6, 100), frame(0, (1 << 20, 1 << 20), b"\0" * 64)]:
    try:
        decode_frame(f)
    except FrameError:
        pass
    else:
        raise SystemExit("accepted a hostile frame")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_frame_absurd_shapes_rejected_without_peak_rss_growth() -> None:
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) < 16 * 1024  # KiB: the frames announce 1-4 GiB


def test_frame_every_truncation_of_valid_frame_rejected() -> None:
    x = torch.randn(3, 100, generator=torch.Generator().manual_seed(0)) * 10
    x[0, 0] = 3000.0
    for scheme in Scheme:
        frame = encode_frame(x, FrameConfig(scheme=scheme))
        for cut in range(len(frame)):
            with pytest.raises(FrameError):
                decode_frame(frame[:cut])
        with pytest.raises(FrameError, match="do not add up"):
            decode_frame(frame + b"\0")


def test_frame_not_bytes_rejected_with_frame_error() -> None:
    frame = encode_frame(torch.ones(3))
    for bad in (frame.decode("latin-1"), None, 7, memoryview(frame * 2)[::2]):
        with pytest.raises(FrameError):
            decode_frame(bad)  # type: ignore[arg-type]
    assert decode_frame(memoryview(bytearray(frame))).shape == (3,)


def test_frame_over_size_limit_rejected() -> None:
    frame = encode_frame(torch.zeros(1000), FrameConfig(scheme=Scheme.NONE))
    assert decode_frame(frame, max_bytes=len(frame)).shape == (1000,)
    with pytest.raises(FrameError, match="exceeds the limit"):
        decode_frame(frame, max_bytes=len(frame) - 1)


def test_frame_bad_payload_values_rejected() -> None:
    x = torch.randn(300, generator=torch.Generator().manual_seed(1))
    x[7], x[200] = 50.0, -70.0
    frame = bytearray(encode_frame(x, FrameConfig(scheme=Scheme.MIXED8, coded=False)))
    header = read_header(frame)
    assert header.outliers == 2  # only 50 and -70 pass the threshold; the cap is floor(300 / 80) = 3
    positions_at = header.header_bytes + 300 + 5 * 2  # codes, 5 fp16 scales
    swapped = bytearray(frame)
    swapped[positions_at : positions_at + 4] = (
        frame[positions_at + 2 : positions_at + 4] + frame[positions_at : positions_at + 2]
    )
    with pytest.raises(FrameError, match="ascending"):
        decode_frame(swapped)
    outside = bytearray(frame)
    outside[positions_at + 2 : positions_at + 4] = struct.pack("<H", 300)
    with pytest.raises(FrameError, match="outside"):
        decode_frame(outside)
    nan_scale = bytearray(frame)
    nan_scale[header.header_bytes + 300 : header.header_bytes + 302] = struct.pack("<e", float("nan"))
    with pytest.raises(FrameError, match="scales"):
        decode_frame(nan_scale)
    offset = 3.0 + torch.arange(300) / 300  # blocks far from 0: sent centred (a ramp is on a grid: ruled out)
    centred = bytearray(encode_frame(offset, FrameConfig(scheme=Scheme.MIXED8, delta=False, grid=False)))
    h = read_header(centred)
    assert h.centered
    centres_at = h.header_bytes + 300 + 5 * 2  # codes, 5 fp16 scales, then 5 fp16 centres
    assert torch.allclose(decode_frame(centred), offset, atol=1e-3)
    centred[centres_at + 4 : centres_at + 6] = struct.pack("<e", float("inf"))
    with pytest.raises(FrameError, match="centres"):
        decode_frame(centred)
    delta = bytearray(encode_frame(offset, FrameConfig(scheme=Scheme.MIXED8, grid=False)))  # a ramp: delta-coded
    assert read_header(delta).delta
    assert torch.allclose(decode_frame(delta), offset, atol=1e-4)
    delta[centres_at : centres_at + 2] = struct.pack("<e", float("nan"))
    with pytest.raises(FrameError, match="bases"):
        decode_frame(delta)


def _coded_frame(region: bytes, n: int = 64, step: float = 0.5) -> bytes:
    """A coded-blocks mixed8 frame of ``n`` float32 values in blocks of 64, written from the documented layout."""
    return _frame(3, (n,), _varint(len(region)) + struct.pack("<f", step) + region, flags=0x81, block_log2=6,
                  map_id=1, outliers=0)


def test_frame_coded_blocks_layout_and_bad_regions_rejected() -> None:
    # 64 values, k = 2: nibble 0x02; low bits 2 per value; unary: value i has high part i % 3
    levels = [(-1) ** i * (i % 12) for i in range(64)]
    u = [2 * q if q >= 0 else -2 * q - 1 for q in levels]
    low = "".join(format(v & 3, "02b")[::-1] for v in u)  # LSB first
    unary = "".join("1" * (v >> 2) + "0" for v in u)

    def pack(bits: str) -> bytes:
        bits += "0" * (-len(bits) % 8)
        return bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))

    region = b"\x02" + pack(low) + pack(unary)
    assert torch.equal(decode_frame(_coded_frame(region)), torch.tensor(levels, dtype=torch.float32) * 0.5)
    bad = {
        "step": [_coded_frame(region, step=s) for s in (0.0, -0.5, math.nan, math.inf)],
        "nibble after the last block": [_coded_frame(b"\x12" + region[1:])],
        "padding after the low bits": [_coded_frame(region[:16] + b"\x80" + region[17:])]
        if len(low) % 8 else [],
        "codes for 64 values": [_coded_frame(b"\x02" + pack(low) + pack(unary[: unary.rindex("0")] + "1"))],
        "fewer than 8": [_coded_frame(region + b"\0")],
        "beyond": [_coded_frame(b"\x0f" + b"\0" * 120 + pack("1" * 2048 + "0" * 64))],  # u >= 2^26
        "inside its low bits": [_coded_frame(b"\x0f" + b"\0" * 8)],  # k = 15: 120 bytes of low bits
        "beyond float32": [_coded_frame(region, step=1e38)],  # level 11 x 1e38
    }
    for message, frames in bad.items():
        for frame in frames:
            with pytest.raises(FrameError, match=message):
                decode_frame(frame)
    assert decode_frame(_coded_frame(b"", n=0)).shape == (0,)  # nothing to code: an empty region


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(list(Scheme)),
    position=st.integers(0, 10_000),
    byte=st.integers(0, 255),
    cut=st.integers(0, 3),
)
def test_frame_random_corruption_decodes_or_raises_frame_error(
    scheme: Scheme, position: int, byte: int, cut: int
) -> None:
    x = torch.randn(2, 150, generator=torch.Generator().manual_seed(2)) * 5
    frame = bytearray(encode_frame(x, FrameConfig(scheme=scheme)))
    frame[position % len(frame)] = byte
    try:
        y = decode_frame(bytes(frame[: len(frame) - cut]))
    except FrameError:
        return
    assert y.numel() <= 2 * 150 * 4  # a corrupted frame can only be as big as its bytes allow


@settings(max_examples=60, deadline=None)
@given(data=st.data(), scheme=st.sampled_from(list(Scheme)), block_size=st.sampled_from([32, 64, 4096]))
def test_frame_roundtrip_inside_msgpack_shape_dtype_and_error_bound(
    tensor_strategy: Any, data: st.DataObject, scheme: Scheme, block_size: int
) -> None:
    x = data.draw(tensor_strategy(max_numel=3000, nonfinite=scheme is not Scheme.BLOCKWISE8))
    if scheme is Scheme.FP16:
        x = x.clamp(-60000, 60000)
    config = FrameConfig(scheme=scheme, block_size=block_size)
    message = msgpack.packb({"step": 3, "hidden": encode_frame(x, config)})
    y = decode_frame(msgpack.unpackb(message)["hidden"])
    assert y.shape == x.shape and y.dtype == x.dtype
    xd, yd = x.double(), y.double()
    assert torch.equal(torch.isnan(xd), torch.isnan(yd))
    if scheme is Scheme.NONE:
        assert (
            torch.equal(x.view(-1).view(torch.uint8), y.view(-1).view(torch.uint8))
            or not x.numel()
            or bool(torch.isnan(xd).any())
        )
    elif scheme is Scheme.FP16:
        finite = torch.isfinite(xd)
        assert torch.allclose(yd[finite], xd[finite], rtol=2**-8 if x.dtype == torch.bfloat16 else 2**-11, atol=1e-7)
    elif scheme is Scheme.BLOCKWISE8:
        absmax = float(xd.abs().max()) if x.numel() else 0.0
        assert (
            float((yd - xd).abs().max() if x.numel() else 0.0) <= error_factor(MapId.DYNAMIC, x.dtype) * absmax + 1e-30
        )


def test_frame_decode_step_576_header_and_ratios() -> None:
    x = torch.randn(1, 1, 576, generator=torch.Generator().manual_seed(3))
    x[0, 0, ::50] = 100.0  # 12 large values: the cap keeps 7
    fp16 = encode_frame(x, FrameConfig(scheme=Scheme.FP16))
    blockwise = encode_frame(x, FrameConfig(scheme=Scheme.BLOCKWISE8))
    mixed = encode_frame(x, FrameConfig(scheme=Scheme.MIXED8, coded=False))
    assert read_header(fp16).header_bytes == 13
    assert len(fp16) == 13 + 1152
    assert len(blockwise) == 13 + 576 + 9 * 2
    assert len(mixed) == 14 + 576 + 9 * 2 + 7 * (2 + 2)  # 7 = floor(576 / 80) outliers
    assert len(blockwise) <= 0.53 * len(fp16) and len(mixed) <= 0.56 * len(fp16)
    coded = encode_frame(x, FrameConfig(scheme=Scheme.MIXED8))  # the default here: coded blocks, the whole budget
    h = read_header(coded)
    assert h.coded and h.outliers == 0 and h.header_bytes == 16  # + varints: 0 outliers, the region's bytes
    assert len(coded) == 16 + 4 + h.coded_bytes and 0.55 * len(fp16) <= len(coded) <= 0.56 * len(fp16)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8,
                                   torch.bool])
def test_frame_exact_dtypes_roundtrip_bit_for_bit_with_scheme_none(dtype: torch.dtype) -> None:
    x = (torch.arange(-6, 6).reshape(3, 4) * 37).to(dtype)
    y = decode_frame(encode_frame(x, FrameConfig(scheme=Scheme.NONE)))
    assert y.dtype == dtype and torch.equal(y, x)
    assert read_header(encode_frame(x[:0], FrameConfig(scheme=Scheme.NONE))).numel == 0


def test_frame_float64_travels_as_fp16_values_and_other_exact_dtypes_refuse_compression() -> None:
    x = torch.tensor([1.5, -2.25, 1e-3], dtype=torch.float64)
    y = decode_frame(encode_frame(x, FrameConfig(scheme=Scheme.FP16)))
    assert y.dtype == torch.float64 and torch.allclose(y, x, rtol=1e-3)
    for scheme in (Scheme.FP16, Scheme.BLOCKWISE8, Scheme.MIXED8):
        with pytest.raises(KernelError, match="dtype"):
            encode_frame(torch.ones(3, dtype=torch.int64), FrameConfig(scheme=scheme))


def test_frame_encode_refusals_raise_kernel_error() -> None:
    with pytest.raises(KernelError, match="65504"):
        encode_frame(torch.tensor([1e5]), FrameConfig(scheme=Scheme.FP16))
    with pytest.raises(KernelError, match="nan or inf"):
        encode_frame(torch.tensor([1.0, float("nan")]), FrameConfig(scheme=Scheme.BLOCKWISE8))
    with pytest.raises(KernelError, match="dtype"):
        encode_frame(torch.ones(3, dtype=torch.float64))
    with pytest.raises(KernelError, match="dimensions"):
        encode_frame(torch.ones([1] * 9))
    with pytest.raises(KernelError, match="map id"):
        encode_frame(torch.ones(3), FrameConfig(map_id=5))  # type: ignore[arg-type]
    with pytest.raises(KernelError, match="scheme"):
        encode_frame(torch.ones(3), FrameConfig(scheme=9))  # type: ignore[arg-type]


def test_frame_nonfinite_fp16_and_none_carried_exactly() -> None:
    x = torch.tensor([1.0, float("inf"), float("-inf"), float("nan")])
    for scheme in (Scheme.NONE, Scheme.FP16, Scheme.MIXED8):
        y = decode_frame(encode_frame(x, FrameConfig(scheme=scheme)))
        assert y[1] == float("inf") and y[2] == float("-inf") and bool(torch.isnan(y[3]))


def test_frame_decode_onto_device_argument_honoured() -> None:
    y = decode_frame(encode_frame(torch.ones(70)), device="cpu")
    assert y.device.type == "cpu" and torch.allclose(y, torch.ones(70), atol=0.01)


def test_requantize_puts_a_recomputation_on_the_frame_s_own_step() -> None:
    gen = torch.Generator().manual_seed(21)
    x = torch.randn(64, 576, generator=gen) * torch.rand(64, 576, generator=gen).pow(3) * 4
    x[0, 9] = 5000.0  # an outlier, sent apart
    frame = encode_frame(x)
    h = read_header(frame)
    assert h.coded and h.outliers == 1
    assert torch.equal(requantize(frame, x), decode_frame(frame))
    # a replay on other hardware: a float rounding away
    replay = x * (1 + 2**-22 * torch.randn(64, 576, generator=gen))
    same_grid = requantize(frame, replay)
    assert float((same_grid != decode_frame(frame)).float().mean()) < 1e-3  # only values at a rounding boundary
    assert float(same_grid[0, 9]) == float(replay[0, 9])
    huge = replay.clone()
    huge[1, 3], huge[2, 4] = 1e30, -1e30  # beyond int64 on that step: saturates, keeps its sign
    (step,) = struct.unpack_from("<f", frame, h.header_bytes)
    big = requantize(frame, huge)
    assert float(big[1, 3]) == -float(big[2, 4]) == float(torch.tensor(2.0**24 * step, dtype=torch.float32))
    plain = encode_frame(x, FrameConfig(coded=False))
    assert torch.equal(requantize(plain, x), decode_frame(plain))
    with pytest.raises(FrameError, match="shape"):
        requantize(frame, x[:3])


def test_coded_region_with_zero_width_blocks_at_the_end_round_trips_and_corruption_is_a_frame_error() -> None:
    from nesachain.kernels.rice import decode_levels, encode_levels

    # a last block of zeros has k = 0: its values' low bits start at the end of the low-bit stream
    for n, block in ((128, 64), (1000, 32), (64, 64)):
        levels = (torch.randn(n, generator=torch.Generator().manual_seed(n)) * 50).round().long()
        levels[-(n % block or block):] = 0
        for case in (levels, torch.zeros(n, dtype=torch.int64)):
            assert torch.equal(decode_levels(memoryview(encode_levels(case, block)), n, block), case)
    x = torch.randn(2, 150, generator=torch.Generator().manual_seed(2)) * 5
    frame = bytearray(encode_frame(x))
    assert read_header(frame).coded
    frame[21] = 0  # found by the random-corruption test: a block's k zeroed, the next one's bits read past the end
    try:
        decode_frame(bytes(frame))
    except FrameError:
        pass
