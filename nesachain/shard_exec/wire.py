"""Wire types shared by miners and clients: messages, tensor frames, error codes, digests.

Every WebSocket message is one binary msgpack map with an ``op`` field:

    client -> miner  {"op": "open",  "session", "max_length", "scheme", "batch", "blocks"?: [start, end]}
                     {"op": "step",  "session", "step", "position", "tensors", "values",
                                      "push": [{"url", "session"}, ...], "replay": bool}
                     {"op": "close", "session"}
    miner -> miner   the same "step" message with "pushed": true (a direct push along the route)
    miner -> client  {"op": "opened", "session", "reserved_bytes"}
                     {"op": "result", "session", "step", "tensors", "values", "pushed", "compute_ms"}
                     {"op": "closed", "session"}
                     {"op": "error", "code", "message", "session"?, "step"?}

``tensors`` maps a name to a *tensor frame* (bytes); ``values`` maps a name to a small msgpack value
(ints, floats, lists of ints) for non-tensor values that cross a cut (e.g. a batch size).

A tensor frame is self-describing. fp32/fp16/bf16 tensors use ``nesachain.kernels``' frames (magic ``NT``:
none, fp16, blockwise8, mixed8); integer tensors (and float64) use this module's frames, which start with
``NSF1``:
``b"NSF1" | u32 header length | msgpack {"d": wire dtype, "o": original dtype, "s": shape} | payload``;
the payload length is checked against the shape before anything is allocated (both codecs).

Step-log digests are ``sha256`` over the canonical bundle of frames of one step: for each tensor name in
sorted order, ``u16 len(name) | name | u64 len(frame) | frame`` (``bundle_digest``).
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping
from typing import Any, Final

import msgpack
import torch

from nesachain import kernels
from nesachain.shard_exec.errors import WireError

__all__ = [
    "MAGIC",
    "SCHEMES",
    "ErrorCode",
    "TensorStreams",
    "bundle_digest",
    "decode_message",
    "decode_tensor",
    "encode_message",
    "encode_tensor",
    "error_message",
    "frame_nbytes",
    "warm_codecs",
]

MAGIC: Final = b"NSF1"
SCHEMES: Final = ("none", "fp16", "blockwise8", "mixed8")
MAX_DIMS: Final = 8
DEFAULT_MAX_TENSOR_BYTES: Final = 64 * 1024 * 1024

_DTYPES: Final[dict[str, torch.dtype]] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_NAMES: Final = {v: k for k, v in _DTYPES.items()}


class ErrorCode:
    """Stable error codes of ``{"op": "error"}`` responses."""

    MALFORMED = "malformed_frame"
    BAD_REQUEST = "bad_request"
    BAD_SHAPE = "bad_shape"
    BAD_DTYPE = "bad_dtype"
    UNKNOWN_SESSION = "unknown_session"
    SESSION_EXISTS = "session_exists"
    OUT_OF_ORDER = "out_of_order"
    TOO_LARGE = "too_large"
    PAST_MAX_LENGTH = "past_max_length"
    MEMORY_BUDGET = "memory_budget_exhausted"
    UNSUPPORTED_SCHEME = "unsupported_scheme"
    WRONG_BLOCKS = "wrong_blocks"  # the client expects blocks this miner does not serve (it moved, or a bad route)
    WRONG_MODEL = "wrong_model"  # the client's block hashes are not this miner's (another model or other weights)
    INTERNAL = "internal"


def encode_tensor(t: torch.Tensor, scheme: str = "none", stream: kernels.StreamEncoder | None = None) -> bytes:
    """Encode a tensor as a self-describing frame.

    fp32/fp16/bf16 tensors use ``nesachain.kernels``' frames (magic ``NT``), through ``stream`` when given
    (its config must be ``scheme``'s); other dtypes travel as this module's ``NSF1`` frames (losslessly, or
    float64 as fp16).
    """
    if scheme not in SCHEMES:
        raise WireError(ErrorCode.UNSUPPORTED_SCHEME, f"unknown compression scheme {scheme!r}")
    t = t.detach().contiguous().cpu()
    if t.dtype not in _NAMES:
        raise WireError(ErrorCode.BAD_DTYPE, f"dtype {t.dtype} cannot travel")
    if t.dtype in (torch.float32, torch.float16, torch.bfloat16):
        try:
            if stream is None:
                out = bytes(kernels.encode_frame(t, kernels.FrameConfig(scheme=kernels.Scheme[scheme.upper()])))
            else:
                out = bytes(stream.encode(t))
        except Exception as exc:  # the kernels' KernelError: e.g. fp16 overflow, nan in blockwise8
            raise WireError(ErrorCode.BAD_REQUEST, f"cannot encode with {scheme}: {exc}") from exc
        return out
    if not t.is_floating_point() or scheme == "none":
        return _pack(t, t)
    if scheme == "fp16":
        return _pack(t.to(torch.float16), t)
    raise WireError(ErrorCode.UNSUPPORTED_SCHEME, f"scheme {scheme!r} applies to fp32, fp16 and bf16 tensors")


class TensorStreams:
    """``encode_tensor`` for the tensors one side of a session sends, step after step: one
    ``kernels.StreamEncoder`` per tensor name, so that a mixed8 decode step need not weigh every
    treatment again (``nesachain.kernels.stream``). Use one per session and direction, in step order."""

    def __init__(self, scheme: str) -> None:
        if scheme not in SCHEMES:
            raise WireError(ErrorCode.UNSUPPORTED_SCHEME, f"unknown compression scheme {scheme!r}")
        self.scheme = scheme
        self._config = kernels.FrameConfig(scheme=kernels.Scheme[scheme.upper()])
        self.streams: dict[str, kernels.StreamEncoder] = {}

    def encode(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, bytes]:
        """Frames of one step's tensors."""
        out = {}
        for name, t in tensors.items():
            stream = self.streams.get(name)
            if stream is None:
                stream = self.streams[name] = kernels.StreamEncoder(self._config)
            out[name] = encode_tensor(t, self.scheme, stream)
        return out


def warm_codecs(tensors: Mapping[str, torch.Tensor]) -> None:
    """Encode and decode each float tensor once with every 8-bit scheme.

    The kernels' CPU loops compile on first use (~3 s on a fresh install, well under 1 s once
    cached on disk): a miner does this at start rather than on a client's first step.
    """
    for t in tensors.values():
        if t.dtype in (torch.float32, torch.float16, torch.bfloat16) and bool(torch.isfinite(t).all()):
            for scheme in ("blockwise8", "mixed8"):
                decode_tensor(encode_tensor(t, scheme))


def _pack(wire: torch.Tensor, orig: torch.Tensor) -> bytes:
    header = bytes(msgpack.packb({"d": _NAMES[wire.dtype], "o": _NAMES[orig.dtype], "s": list(wire.shape)}))
    payload = wire.view(torch.uint8).numpy().tobytes() if wire.numel() else b""
    return MAGIC + struct.pack("<I", len(header)) + header + payload


def frame_nbytes(frame: bytes) -> int:
    """Size of a frame on the wire."""
    return len(frame)


def decode_tensor(frame: bytes, max_bytes: int = DEFAULT_MAX_TENSOR_BYTES) -> torch.Tensor:
    """Decode a frame; raises ``WireError`` for malformed, inconsistent or oversize frames."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise WireError(ErrorCode.MALFORMED, "a tensor frame must be bytes")
    frame = bytes(frame)
    if frame[:4] != MAGIC:
        return _decode_kernels_frame(frame, max_bytes)
    if len(frame) < 8:
        raise WireError(ErrorCode.MALFORMED, "truncated frame header")
    (hlen,) = struct.unpack("<I", frame[4:8])
    if hlen > 4096 or 8 + hlen > len(frame):
        raise WireError(ErrorCode.MALFORMED, "frame header length out of range")
    try:
        header = msgpack.unpackb(frame[8 : 8 + hlen])
        wire_dt, orig_dt, shape = _DTYPES[header["d"]], _DTYPES[header["o"]], header["s"]
    except Exception as exc:
        raise WireError(ErrorCode.MALFORMED, f"bad frame header: {exc}") from exc
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)
    ):
        raise WireError(ErrorCode.MALFORMED, f"bad frame shape {shape!r}")
    itemsize = torch.empty((), dtype=wire_dt).element_size()
    nbytes = math.prod(shape) * itemsize
    if nbytes > max_bytes:
        raise WireError(ErrorCode.TOO_LARGE, f"tensor of {nbytes} bytes exceeds the limit of {max_bytes}")
    payload = frame[8 + hlen :]
    if len(payload) != nbytes:
        raise WireError(ErrorCode.MALFORMED, f"payload has {len(payload)} bytes, shape needs {nbytes}")
    if nbytes == 0:
        return torch.empty(shape, dtype=orig_dt)
    t = torch.frombuffer(bytearray(payload), dtype=wire_dt).reshape(shape)
    return t.to(orig_dt) if orig_dt != wire_dt else t


def _decode_kernels_frame(frame: bytes, max_bytes: int) -> torch.Tensor:
    try:
        header = kernels.read_header(frame, max_bytes=len(frame))
    except Exception as exc:  # the kernels' FrameError
        raise WireError(ErrorCode.MALFORMED, f"bad tensor frame: {exc}") from exc
    nbytes = math.prod(header.shape) * torch.empty((), dtype=header.dtype).element_size()
    if nbytes > max_bytes:
        raise WireError(ErrorCode.TOO_LARGE, f"tensor of {nbytes} bytes exceeds the limit of {max_bytes}")
    try:
        out: torch.Tensor = kernels.decode_frame(frame, max_bytes=len(frame))
    except Exception as exc:
        raise WireError(ErrorCode.MALFORMED, f"bad tensor frame: {exc}") from exc
    return out


def bundle_digest(frames: Mapping[str, bytes]) -> str:
    """sha256 hex of the canonical bundle of a step's frames (see module docstring)."""
    h = hashlib.sha256()
    for name in sorted(frames):
        raw = name.encode()
        h.update(struct.pack("<H", len(raw)) + raw)
        h.update(struct.pack("<Q", len(frames[name])) + frames[name])
    return h.hexdigest()


def encode_message(msg: Mapping[str, Any]) -> bytes:
    """One WebSocket message."""
    return bytes(msgpack.packb(dict(msg), use_bin_type=True))


def decode_message(data: bytes, max_bytes: int) -> dict[str, Any]:
    """Parse one WebSocket message; raises ``WireError`` for oversize or malformed input."""
    if len(data) > max_bytes:
        raise WireError(ErrorCode.TOO_LARGE, f"message of {len(data)} bytes exceeds {max_bytes}")
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        raise WireError(ErrorCode.MALFORMED, f"not a msgpack message: {exc}") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        raise WireError(ErrorCode.MALFORMED, "a message must be a map with a string 'op'")
    return msg


def error_message(code: str, message: str, session: str | None = None, step: int | None = None) -> bytes:
    """An ``{"op": "error"}`` response."""
    msg: dict[str, Any] = {"op": "error", "code": code, "message": message}
    if session is not None:
        msg["session"] = session
    if step is not None:
        msg["step"] = step
    return encode_message(msg)
