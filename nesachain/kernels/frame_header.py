"""Frame headers: the fixed part, the varint tail, and the checks ``read_header`` makes before any payload
is touched. The byte layout is in ``layout``'s doc; encoding and decoding payloads is ``frame``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import torch

from nesachain.kernels.codemaps import MapId
from nesachain.kernels.errors import FrameError, KernelError
from nesachain.kernels.layout import FIXED_HEADER
from nesachain.kernels.layout import payload_bytes as layout_payload_bytes
from nesachain.types.varint import encode_uvarint

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "DTYPES",
    "FLAG_CENTERED",
    "FLAG_CODED",
    "FLAG_DELTA",
    "FLAG_GRID",
    "FLAG_ROTATED",
    "FLAG_SCALES_FP32",
    "FORMAT_VERSION",
    "ITEMSIZE",
    "MAX_NDIM",
    "OUTLIER_SHIFT",
    "POSITION_DTYPE",
    "QUANTIZABLE",
    "FrameHeader",
    "Scheme",
    "byte_view",
    "pack_header",
    "read_header",
]

FORMAT_VERSION = 1
DEFAULT_MAX_FRAME_BYTES = 64 << 20
MAX_NDIM = 8
MAGIC = b"NT"
FLAG_SCALES_FP32 = 0x01
FLAG_ROTATED = 0x08
FLAG_CENTERED = 0x10
FLAG_DELTA = 0x20
FLAG_GRID = 0x40
FLAG_CODED = 0x80
TREATMENTS = (FLAG_ROTATED, FLAG_CENTERED, FLAG_DELTA, FLAG_GRID, FLAG_CODED)
OUTLIER_SHIFT = 1

# index = wire code; the first three are the floats every scheme takes, the rest travel exactly (scheme none),
# or float64 as fp16 values (scheme fp16)
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool)
QUANTIZABLE = DTYPES[:3]
ITEMSIZE = {dt: torch.empty((), dtype=dt).element_size() for dt in DTYPES}


class Scheme(IntEnum):
    """How a frame's payload encodes the tensor."""

    NONE = 0
    FP16 = 1
    BLOCKWISE8 = 2
    MIXED8 = 3


@dataclass(frozen=True)
class FrameHeader:
    """A parsed header; ``header_bytes`` is where the payload starts."""

    scheme: Scheme
    dtype: torch.dtype
    shape: tuple[int, ...]
    block_size: int
    map_id: int
    scale_dtype: torch.dtype
    outlier_dtype: torch.dtype
    rotated: bool
    centered: bool
    delta: bool
    grid: bool
    coded: bool
    outliers: int
    coded_bytes: int
    header_bytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def payload_bytes(self) -> int:
        """Exact payload length this header announces (Python integers: no overflow)."""
        n = self.numel
        if self.scheme is Scheme.NONE:
            return n * ITEMSIZE[self.dtype]
        if self.scheme is Scheme.FP16:
            return n * 2
        outliers = self.outliers if self.scheme is Scheme.MIXED8 else 0
        return layout_payload_bytes(n, self.block_size, ITEMSIZE[self.scale_dtype], self.centered, self.delta,
                                    self.grid, outliers, ITEMSIZE[self.outlier_dtype],
                                    self.coded_bytes if self.coded else None)



POSITION_DTYPE = {2: torch.uint16, 4: torch.uint32, 8: torch.int64}


def _read_varint(buf: memoryview, offset: int) -> tuple[int, int]:
    value = 0
    for i in range(10):
        if offset + i >= len(buf):
            raise FrameError("frame truncated inside its header")
        byte = buf[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i and not byte:
                raise FrameError("non-canonical varint in frame header")
            return value, offset + i + 1
    raise FrameError("varint longer than 10 bytes in frame header")


def byte_view(data: object) -> memoryview:
    """``data`` as a flat memoryview of bytes; ``FrameError`` for anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FrameError(f"a frame is bytes, got {type(data).__name__}")
    try:
        return memoryview(data).cast("B")
    except TypeError as exc:  # a non-contiguous or multi-dimensional memoryview
        raise FrameError(f"a frame is a flat byte buffer: {exc}") from None


def pack_header(
    scheme: Scheme,
    x: torch.Tensor,
    flags: int = 0,
    block_size: int = 0,
    map_id: int = 0,
    outliers: int | None = None,
    coded_bytes: int | None = None,
) -> bytes:
    """The header of a frame of ``x``: the fixed part, then varints: each dimension, the outlier count
    (mixed8) and the coded region's length (coded frames)."""
    if x.dim() > MAX_NDIM:
        raise KernelError(f"frames carry at most {MAX_NDIM} dimensions, got {x.dim()}")
    block_log2 = block_size.bit_length() - 1 if block_size else 0
    fixed = FIXED_HEADER.pack(MAGIC, FORMAT_VERSION, scheme, DTYPES.index(x.dtype), flags, block_log2, map_id,
                              x.dim())
    tail = b"".join(encode_uvarint(d) for d in x.shape)
    if outliers is not None:
        tail += encode_uvarint(outliers)
    if coded_bytes is not None:
        tail += encode_uvarint(coded_bytes)
    return fixed + tail


def read_header(data: bytes | bytearray | memoryview, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> FrameHeader:
    """Parse and check a frame's header against the buffer's length; allocates nothing large."""
    buf = byte_view(data)
    if len(buf) > max_bytes:
        raise FrameError(f"frame of {len(buf)} bytes exceeds the limit of {max_bytes}")
    if len(buf) < FIXED_HEADER.size:
        raise FrameError(f"frame truncated: {len(buf)} bytes, a header needs at least {FIXED_HEADER.size}")
    magic, version, scheme_id, dtype_id, flags, block_log2, map_id, ndim = FIXED_HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise FrameError("not a tensor frame (bad magic)")
    if version != FORMAT_VERSION:
        raise FrameError(f"unsupported frame version {version}")
    if scheme_id not in Scheme._value2member_map_:
        raise FrameError(f"unknown scheme {scheme_id}")
    scheme = Scheme(scheme_id)
    if dtype_id >= len(DTYPES):
        raise FrameError(f"unknown dtype code {dtype_id}")
    exact_only = DTYPES[dtype_id] not in QUANTIZABLE
    if exact_only and not (scheme is Scheme.NONE or (scheme is Scheme.FP16 and DTYPES[dtype_id] is torch.float64)):
        raise FrameError(f"dtype {DTYPES[dtype_id]} travels as scheme none (float64: or fp16), not {scheme.name}")
    if ndim > MAX_NDIM:
        raise FrameError(f"frame has {ndim} dimensions; at most {MAX_NDIM}")
    quantized = scheme in (Scheme.BLOCKWISE8, Scheme.MIXED8)
    allowed_flags = FLAG_SCALES_FP32 if quantized else 0
    if scheme is Scheme.MIXED8:
        allowed_flags |= sum(TREATMENTS) | (0x3 << OUTLIER_SHIFT)
    treatments = sum(bool(flags & f) for f in TREATMENTS)
    linear_only = bool(flags & (FLAG_DELTA | FLAG_GRID | FLAG_CODED)) and map_id != MapId.LINEAR
    grid_misfit = bool(flags & FLAG_GRID) and ((flags & 0x7) != FLAG_SCALES_FP32 or dtype_id != 0)
    coded_misfit = bool(flags & FLAG_CODED) and not flags & FLAG_SCALES_FP32
    if flags & ~allowed_flags or treatments > 1 or linear_only or grid_misfit or coded_misfit:
        raise FrameError(f"flags 0x{flags:02x} not valid for scheme {scheme.name} with map id {map_id}")
    outlier_id = (flags >> OUTLIER_SHIFT) & 0x3
    if outlier_id >= len(QUANTIZABLE):
        raise FrameError(f"unknown outlier dtype code {outlier_id}")
    if quantized:
        if not 5 <= block_log2 <= 12:
            raise FrameError(f"block size 2^{block_log2} outside 32..4096")
        if map_id not in MapId._value2member_map_:
            raise FrameError(f"unknown code map id {map_id}")
    elif block_log2 or map_id:
        raise FrameError(f"block size and map id must be 0 for scheme {scheme.name}")
    offset = FIXED_HEADER.size
    shape = []
    for _ in range(ndim):
        dim, offset = _read_varint(buf, offset)
        shape.append(dim)
    outliers = coded_bytes = 0
    if scheme is Scheme.MIXED8:
        outliers, offset = _read_varint(buf, offset)
    if flags & FLAG_CODED:
        coded_bytes, offset = _read_varint(buf, offset)
    header = FrameHeader(
        scheme=scheme,
        dtype=DTYPES[dtype_id],
        shape=tuple(shape),
        block_size=1 << block_log2 if quantized else 0,
        map_id=map_id,
        scale_dtype=torch.float32 if flags & FLAG_SCALES_FP32 else torch.float16,
        outlier_dtype=DTYPES[outlier_id],
        rotated=bool(flags & FLAG_ROTATED),
        centered=bool(flags & FLAG_CENTERED),
        delta=bool(flags & FLAG_DELTA),
        grid=bool(flags & FLAG_GRID),
        coded=bool(flags & FLAG_CODED),
        outliers=outliers,
        coded_bytes=coded_bytes,
        header_bytes=offset,
    )
    if outliers > header.numel or (header.grid and outliers):
        raise FrameError(f"{outliers} outliers announced for {header.numel} values"
                         + (" in a grid frame (none allowed)" if header.grid else ""))
    if header.coded and header.numel > 8 * coded_bytes:
        raise FrameError(f"coded frame announces {header.numel} values in {coded_bytes} bytes; a value takes a bit "
                         "at least")
    expected = offset + header.payload_bytes()
    if expected != len(buf):
        raise FrameError(f"frame sizes do not add up: header announces {expected} bytes, got {len(buf)}")
    return header
