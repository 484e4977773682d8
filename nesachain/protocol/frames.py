"""Tensor frames on the wire: ``nesachain.kernels``' one self-describing frame format (magic ``NT``).

float32, float16 and bfloat16 tensors take the session's compression scheme (none, fp16, blockwise8,
mixed8); integer and bool tensors always travel exactly (scheme none), float64 exactly or as fp16 values.
A frame's sizes are checked against its header, and the decoded tensor's bytes against a limit, before
anything is allocated (``kernels.read_header``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import torch

from nesachain import kernels
from nesachain.kernels.frame_header import DTYPES, ITEMSIZE, QUANTIZABLE
from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import SCHEMES, ErrorCode

__all__ = ["DEFAULT_MAX_TENSOR_BYTES", "SCHEMES", "TensorStreams", "decode_tensor", "encode_tensor", "frame_scheme",
           "warm_codecs"]

DEFAULT_MAX_TENSOR_BYTES: Final = 64 * 1024 * 1024


def _config(scheme: str, dtype: torch.dtype) -> kernels.FrameConfig:
    """The frame settings ``scheme`` means for a tensor of ``dtype``."""
    if scheme not in SCHEMES:
        raise WireError(ErrorCode.UNSUPPORTED_SCHEME, f"unknown compression scheme {scheme!r}")
    if dtype not in DTYPES:
        raise WireError(ErrorCode.BAD_DTYPE, f"dtype {dtype} cannot travel")
    if dtype in QUANTIZABLE:
        return kernels.FrameConfig(scheme=kernels.Scheme[scheme.upper()])
    if not dtype.is_floating_point or scheme == "none":
        return kernels.FrameConfig(scheme=kernels.Scheme.NONE)
    if scheme == "fp16":
        return kernels.FrameConfig(scheme=kernels.Scheme.FP16)
    raise WireError(ErrorCode.UNSUPPORTED_SCHEME, f"scheme {scheme!r} applies to fp32, fp16 and bf16 tensors")


def encode_tensor(t: torch.Tensor, scheme: str = "none", stream: kernels.StreamEncoder | None = None) -> bytes:
    """One tensor as a frame, compressed with ``scheme`` where its dtype takes it (through ``stream`` when
    given: its config must be ``scheme``'s)."""
    config = _config(scheme, t.dtype)
    t = t.detach().contiguous().cpu()
    try:
        if stream is not None and t.dtype in QUANTIZABLE:
            return bytes(stream.encode(t))
        return bytes(kernels.encode_frame(t, config))
    except kernels.KernelError as exc:  # e.g. fp16 overflow, nan in blockwise8
        raise WireError(ErrorCode.BAD_REQUEST, f"cannot encode with {scheme}: {exc}") from exc


def decode_tensor(frame: bytes, max_bytes: int = DEFAULT_MAX_TENSOR_BYTES) -> torch.Tensor:
    """Decode a frame; ``WireError`` for a malformed or inconsistent frame, or a tensor over ``max_bytes``."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise WireError(ErrorCode.MALFORMED, "a tensor frame must be bytes")
    try:
        header = kernels.read_header(frame, max_bytes=len(frame))
    except kernels.FrameError as exc:
        raise WireError(ErrorCode.MALFORMED, f"bad tensor frame: {exc}") from exc
    nbytes = math.prod(header.shape) * ITEMSIZE[header.dtype]
    if nbytes > max_bytes:
        raise WireError(ErrorCode.TOO_LARGE, f"tensor of {nbytes} bytes exceeds the limit of {max_bytes}")
    try:
        out: torch.Tensor = kernels.decode_frame(frame, max_bytes=len(frame))
    except kernels.FrameError as exc:
        raise WireError(ErrorCode.MALFORMED, f"bad tensor frame: {exc}") from exc
    return out


def frame_scheme(frame: bytes) -> str:
    """The compression scheme a frame was encoded with (``WireError`` if it is no frame)."""
    try:
        return kernels.read_header(frame, max_bytes=len(frame)).scheme.name.lower()
    except kernels.FrameError as exc:
        raise WireError(ErrorCode.MALFORMED, f"bad tensor frame: {exc}") from exc


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
        if t.dtype in QUANTIZABLE and bool(torch.isfinite(t).all()):
            for scheme in ("blockwise8", "mixed8"):
                decode_tensor(encode_tensor(t, scheme))
