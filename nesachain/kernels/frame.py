"""Tensor frames: one tensor as self-describing bytes, to carry as a msgpack ``bin`` value.

The byte layout is in ``layout``'s doc, with the sizes it implies; headers are ``frame_header``'s.

Frames are canonical: flags and fields a scheme does not use are 0, positions strictly ascending.
``decode_frame`` computes the exact frame length from the header with Python integers and refuses
the frame (``FrameError``) unless the buffer has exactly that length and is within ``max_bytes``:
nothing is allocated for a frame whose sizes do not add up. A coded frame must also have a byte of
region per 8 values (every value's code ends in a 0 bit); it can still hold 8 values a byte, so its
tensor and the decoder's work arrays (int64 levels and float32 values, 12 bytes a value) can be
about a hundred times the frame: callers that take frames from peers bound numel x itemsize from
the header first (the wire layer does).

nan and inf: ``none``, ``fp16`` and ``mixed8`` reproduce them exactly (mixed8 sends them as
outliers); ``blockwise8`` refuses them at encode time (``KernelError``); ``fp16`` refuses finite
values beyond ±65504 rather than turning them into inf. A decoded ``blockwise8``/``mixed8`` frame
is finite wherever its sender's tensor was: scales must be finite and non-negative, centres and
bases finite.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import torch

from nesachain.kernels.blockwise import (
    DEFAULT_BLOCK_SIZE,
    FP16_MAX,
    QuantizedBlocks,
    check_block_size,
    check_dtype,
    dequantize_blockwise,
    quantize_blockwise,
)
from nesachain.kernels.codemaps import MapId, check_map_id
from nesachain.kernels.errors import FrameError, KernelError
from nesachain.kernels.frame_header import (
    DEFAULT_MAX_FRAME_BYTES,
    DTYPES,
    FLAG_CENTERED,
    FLAG_CODED,
    FLAG_DELTA,
    FLAG_GRID,
    FLAG_ROTATED,
    FLAG_SCALES_FP32,
    FORMAT_VERSION,
    ITEMSIZE,
    OUTLIER_SHIFT,
    POSITION_DTYPE,
    QUANTIZABLE,
    FrameHeader,
    Scheme,
    byte_view,
    pack_header,
    read_header,
)
from nesachain.kernels.layout import position_width
from nesachain.kernels.mixed import (
    DEFAULT_MAX_FRACTION,
    DEFAULT_MIXED_MAP,
    DEFAULT_THRESHOLD,
    MixedQuantized,
    dequantize_mixed,
    quantize_mixed,
)
from nesachain.kernels.rice import MAX_LEVEL, decode_values, encode_levels, levels_on

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "FORMAT_VERSION",
    "FrameConfig",
    "FrameHeader",
    "Scheme",
    "decode_frame",
    "encode_frame",
    "read_header",
    "requantize",
]

# a tensor this small on an accelerator is encoded from a host copy: one copy costs less than the launches
# and syncs of the device path (a decode step's frame: 2.9-3.6 ms from an H200 against about 1 ms on a CPU)
HOST_ENCODE_MAX_NUMEL = 1 << 16


@dataclass(frozen=True)
class FrameConfig:
    """Encoder settings; ``map_id`` None means DYNAMIC for blockwise8 and LINEAR for mixed8."""

    scheme: Scheme = Scheme.MIXED8
    block_size: int = DEFAULT_BLOCK_SIZE
    map_id: MapId | None = None
    threshold: float = DEFAULT_THRESHOLD
    max_fraction: float = DEFAULT_MAX_FRACTION
    rotate: bool | None = None  # mixed8: None rotates where that lowers the predicted error
    center: bool | None = None  # mixed8: None centres blocks where that lowers the predicted error
    delta: bool | None = None  # mixed8: None delta-codes blocks where that lowers the predicted error
    grid: bool | None = None  # mixed8: None sends grid blocks wherever every block is on a grid
    coded: bool | None = None  # mixed8: None sends coded (Rice) blocks where that lowers the predicted error




def _to_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().reshape(-1).contiguous().cpu()
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()


def _from_bytes(buf: memoryview, offset: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    nbytes = count * dtype.itemsize
    if count == 0:
        return torch.empty(0, dtype=dtype)
    raw = torch.frombuffer(bytearray(buf[offset : offset + nbytes]), dtype=torch.uint8)  # aligned copy
    return raw.view(dtype)



def encode_frame(x: torch.Tensor, config: FrameConfig | None = None) -> bytes:
    """Encode ``x`` (float32, float16 or bfloat16, any shape, any device) as one frame. A tensor of at most
    ``HOST_ENCODE_MAX_NUMEL`` values off the CPU is encoded from a host copy (the CPU's frame). Tensors of the
    other ``DTYPES`` (float64, integers, bool) travel exactly with scheme none; float64 also as fp16 values."""
    cfg = config or FrameConfig()
    if cfg.scheme not in Scheme._value2member_map_:
        raise KernelError(f"unknown scheme {cfg.scheme!r}")
    scheme = Scheme(cfg.scheme)
    if x.dtype in DTYPES and x.dtype not in QUANTIZABLE:
        if not (scheme is Scheme.NONE or (scheme is Scheme.FP16 and x.dtype is torch.float64)):
            raise KernelError(f"dtype {x.dtype} travels as scheme none (float64: or fp16), not {scheme.name}")
    else:
        check_dtype(x.dtype)
    if x.device.type != "cpu" and x.numel() <= HOST_ENCODE_MAX_NUMEL:
        x = x.cpu()
    if scheme is Scheme.NONE:
        return pack_header(scheme, x) + _to_bytes(x)
    if scheme is Scheme.FP16:
        finite = x[torch.isfinite(x)]
        if finite.numel() and float(finite.abs().max()) > FP16_MAX:
            raise KernelError("fp16 frame: a finite value exceeds 65504; use mixed8 or none")
        return pack_header(scheme, x) + _to_bytes(x.to(torch.float16))
    check_block_size(cfg.block_size)
    if scheme is Scheme.BLOCKWISE8:
        map_id = MapId.DYNAMIC if cfg.map_id is None else check_map_id(cfg.map_id)
        q = quantize_blockwise(x, cfg.block_size, map_id)
        flags = FLAG_SCALES_FP32 if q.scales.dtype == torch.float32 else 0
        return pack_header(scheme, x, flags, cfg.block_size, map_id) + _to_bytes(q.codes) + _to_bytes(q.scales)
    map_id = DEFAULT_MIXED_MAP if cfg.map_id is None else check_map_id(cfg.map_id)
    m = quantize_mixed(x, cfg.block_size, map_id, cfg.threshold, cfg.max_fraction, cfg.rotate, cfg.center, cfg.delta,
                       cfg.grid, cfg.coded)
    flags = FLAG_SCALES_FP32 if m.blocks.scales.dtype == torch.float32 else 0
    flags |= DTYPES.index(m.values.dtype) << OUTLIER_SHIFT
    flags |= FLAG_ROTATED if m.rotated else 0
    flags |= 0 if m.centers is None else FLAG_CENTERED if m.delta is None else FLAG_DELTA
    flags |= 0 if m.bases is None else FLAG_GRID
    positions = m.positions.to(POSITION_DTYPE[position_width(x.numel())])
    if m.levels is not None:
        region = encode_levels(m.levels, m.blocks.block_size)
        return b"".join([
            pack_header(scheme, x, flags | FLAG_CODED, m.blocks.block_size, m.blocks.map_id, m.positions.numel(),
                    len(region)),
            _to_bytes(m.blocks.scales),
            region,
            _to_bytes(positions),
            _to_bytes(m.values),
        ])
    return b"".join(
        [
            pack_header(scheme, x, flags, m.blocks.block_size, m.blocks.map_id, m.positions.numel()),
            _to_bytes(m.blocks.codes),
            _to_bytes(m.blocks.scales),
            b"" if m.centers is None else _to_bytes(m.centers),
            b"" if m.delta is None else np.packbits(m.delta.cpu().numpy(), bitorder="little").tobytes(),
            b"" if m.bases is None else _to_bytes(m.bases),
            _to_bytes(positions),
            _to_bytes(m.values),
        ]
    )




def decode_frame(
    data: bytes | bytearray | memoryview,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Decode one frame into a tensor of its original shape and dtype (on ``device``, default CPU).

    Raises ``FrameError`` for any frame that is truncated, inconsistent, unknown or too large.
    """
    h = read_header(data, max_bytes)
    buf = byte_view(data)
    n, offset = h.numel, h.header_bytes
    if h.scheme is Scheme.NONE:
        if h.dtype is torch.bool:
            raw = _from_bytes(buf, offset, n, torch.uint8)
            if raw.numel() and int(raw.max()) > 1:
                raise FrameError("a bool frame holds bytes 0 and 1 only")
            return raw.view(torch.bool).view(h.shape).to(device or "cpu")
        return _from_bytes(buf, offset, n, h.dtype).view(h.shape).to(device or "cpu")
    if h.scheme is Scheme.FP16:
        return _from_bytes(buf, offset, n, torch.float16).to(device or "cpu", h.dtype).view(h.shape)
    if h.coded:
        return _decode_coded(h, buf, device)
    codes = _from_bytes(buf, offset, n, torch.uint8)
    offset += n
    nblocks = -(-n // h.block_size)
    scales = _from_bytes(buf, offset, nblocks, h.scale_dtype)
    offset += nblocks * ITEMSIZE[h.scale_dtype]
    if scales.numel() and not bool((torch.isfinite(scales) & (scales >= 0)).all()):
        raise FrameError("frame scales must be finite and non-negative")
    q = QuantizedBlocks(codes, scales, torch.Size(h.shape), h.dtype, h.block_size, MapId(h.map_id))
    if device is not None:
        q = QuantizedBlocks(codes.to(device), scales.to(device), q.shape, q.dtype, q.block_size, q.map_id)
    if h.scheme is Scheme.BLOCKWISE8:
        return dequantize_blockwise(q)
    if h.grid:
        bases = _from_bytes(buf, offset, nblocks, torch.float32)
        reach = bases.abs() + scales * 255  # (nblocks,): the largest magnitude a block can decode to
        if not bool((torch.isfinite(bases) & (reach <= torch.finfo(torch.float32).max)).all()):
            raise FrameError("grid frame bases must be finite and every block's values within float32")
        return dequantize_mixed(MixedQuantized(q, torch.empty(0, dtype=torch.int64), bases[:0], False,
                                               bases=bases.to(q.codes.device)))
    centers = None
    if h.centered or h.delta:
        centers = _from_bytes(buf, offset, nblocks, torch.float16)
        offset += nblocks * 2
        if not bool(torch.isfinite(centers).all()):
            raise FrameError("frame centres and bases must be finite")
        centers = centers.to(q.codes.device)
    delta = None
    if h.delta:
        packed = np.frombuffer(bytes(buf[offset : offset + -(-nblocks // 8)]), dtype=np.uint8)
        offset += packed.size
        bits = np.unpackbits(packed, bitorder="little")
        if bits[nblocks:].any():
            raise FrameError("frame delta bits past the last block must be 0")
        delta = torch.from_numpy(bits[:nblocks].astype(bool)).to(q.codes.device)
    positions, values = _outliers(h, buf, offset)
    m = MixedQuantized(q, positions.to(q.codes.device), values.to(q.codes.device), h.rotated, centers, delta)
    return dequantize_mixed(m)


def _decode_coded(h: FrameHeader, buf: memoryview, device: torch.device | str | None) -> torch.Tensor:
    """A coded-blocks frame (bit 7), its header checked: step, Rice-coded levels, outliers. The values are
    ``dequantize_mixed``'s of the same levels, step and outliers (a compiled loop; no torch op per value)."""
    offset = h.header_bytes
    (step,) = struct.unpack_from("<f", buf, offset)
    offset += 4
    if not (math.isfinite(step) and step > 0):
        raise FrameError("coded frame step must be finite and positive")
    out = decode_values(buf[offset : offset + h.coded_bytes], h.numel, h.block_size, step)
    if h.dtype != torch.float32:
        out = out.to(h.dtype)
    if h.outliers:
        positions, values = _outliers(h, buf, offset + h.coded_bytes)
        out[positions] = values.to(h.dtype)
    return out.view(h.shape).to(device or "cpu")


def _outliers(h: FrameHeader, buf: memoryview, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(int64 positions, values) of a mixed8 frame's ``h.outliers`` outliers at ``offset``, checked."""
    n, width = h.numel, position_width(h.numel)
    positions = _from_bytes(buf, offset, h.outliers, POSITION_DTYPE[width]).to(torch.int64)
    values = _from_bytes(buf, offset + h.outliers * width, h.outliers, h.outlier_dtype)
    if positions.numel():
        if int(positions[-1]) >= n or int(positions[0]) < 0:
            raise FrameError("outlier position outside the tensor")
        if positions.numel() > 1 and not bool((positions[1:] > positions[:-1]).all()):
            raise FrameError("outlier positions must be strictly ascending")
    return positions, values


def requantize(frame: bytes | bytearray | memoryview, x: torch.Tensor) -> torch.Tensor:
    """``x`` through the quantizer that made ``frame``: what a verifier compares a miner's frame with.

    A coded mixed8 frame's step and outliers depend on the data, so re-encoding a recomputation that is a
    float rounding away could land on another step and move every value; here ``x`` goes on the frame's
    own step, its values at the frame's outlier positions kept as they are. Other frames: ``x`` encoded
    with the frame's scheme and block size (mixed8: not coded; defaults otherwise) and decoded.
    ``FrameError`` for a frame that does not decode or whose shape is not ``x``'s.
    """
    h = read_header(frame)
    if h.shape != tuple(x.shape):
        raise FrameError(f"frame of shape {h.shape} for a tensor of shape {tuple(x.shape)}")
    if not h.coded:
        config = FrameConfig(scheme=h.scheme, block_size=h.block_size or DEFAULT_BLOCK_SIZE, coded=False)
        return decode_frame(encode_frame(x, config))
    buf = byte_view(frame)
    step = float(_from_bytes(buf, h.header_bytes, 1, torch.float32)[0])
    positions, _ = _outliers(h, buf, h.header_bytes + 4 + h.coded_bytes)
    flat = x.detach().reshape(-1).float()
    finite = torch.isfinite(flat)
    levels = levels_on(torch.where(finite, flat, 0.0), step).clamp_(-MAX_LEVEL, MAX_LEVEL)
    out = torch.where(finite, levels.to(torch.float32) * step, flat)  # a non-finite value stays as it is
    out[positions.to(out.device)] = flat[positions.to(out.device)]
    return out.to(x.dtype).view(x.shape)
