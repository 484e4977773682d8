"""Pure helpers of a miner step: validate open and step requests, decode a step."""

from __future__ import annotations

from typing import Any

import torch

from nesachain.protocol.errors import WireError
from nesachain.protocol.frames import decode_tensor
from nesachain.protocol.messages import SCHEMES, ErrorCode

__all__ = ["decode_open", "decode_step"]

MAX_TENSORS = 64


def _int(req: dict[str, Any], key: str) -> int:
    v = req.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise WireError(ErrorCode.BAD_REQUEST, f"{key} must be a non-negative integer")
    return v


def decode_open(req: dict[str, Any], max_length_limit: int, start: int, end: int,
                hashes: list[str]) -> tuple[str, int, int, str]:
    """(session, max_length, batch, scheme) of an open request, checked against what this miner serves:
    blocks [start, end) whose files have the sha256 ``hashes``. A client that sends ``blocks`` and
    ``block_hashes`` (ours does) is refused by a miner serving other blocks, or another model's."""
    sid, max_length, batch = req.get("session"), req.get("max_length"), req.get("batch", 1)
    scheme = req.get("scheme", "none")
    if not isinstance(sid, str) or not 0 < len(sid) <= 128:
        raise WireError(ErrorCode.BAD_REQUEST, "session must be a string of 1..128 characters")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise WireError(ErrorCode.BAD_REQUEST, "max_length must be a positive integer")
    if max_length > max_length_limit:
        raise WireError(ErrorCode.PAST_MAX_LENGTH, f"max_length {max_length} exceeds {max_length_limit}")
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 64:
        raise WireError(ErrorCode.BAD_REQUEST, "batch must be an integer in 1..64")
    if scheme not in SCHEMES:
        raise WireError(ErrorCode.UNSUPPORTED_SCHEME, f"unknown scheme {scheme!r}")
    blocks, want = req.get("blocks"), req.get("block_hashes")
    if blocks is not None and blocks != [start, end]:
        raise WireError(ErrorCode.WRONG_BLOCKS, f"this miner serves blocks {start}:{end}, not {blocks!r}")
    if want is not None and want != hashes:
        if not isinstance(want, list) or not all(isinstance(h, str) for h in want):
            raise WireError(ErrorCode.BAD_REQUEST, "block_hashes must be a list of hex strings")
        ours, theirs = (", ".join(h[:12] for h in hs) for hs in (hashes, want))
        raise WireError(ErrorCode.WRONG_MODEL, f"blocks {start}:{end} here are sha256 {ours}, not {theirs}: "
                                               "another model, or other weights")
    return sid, max_length, batch, scheme


def decode_step(req: dict[str, Any], max_tensor_bytes: int
                ) -> tuple[int, int, dict[str, bytes], dict[str, Any], dict[str, torch.Tensor]]:
    """(step, position, frames, values, tensors) of a step request, every field checked."""
    step, position = _int(req, "step"), _int(req, "position")
    frames = req.get("tensors")
    values = req.get("values") or {}
    if not isinstance(frames, dict) or not frames or len(frames) > MAX_TENSORS:
        raise WireError(ErrorCode.BAD_REQUEST, f"tensors must be a map of 1..{MAX_TENSORS} named frames")
    if not isinstance(values, dict):
        raise WireError(ErrorCode.BAD_REQUEST, "values must be a map")
    tensors: dict[str, torch.Tensor] = {}
    for name, frame in frames.items():
        if not isinstance(name, str) or not isinstance(frame, bytes):
            raise WireError(ErrorCode.MALFORMED, "each tensor must be a name and a bytes frame")
        tensors[name] = decode_tensor(frame, max_tensor_bytes)
    return step, position, frames, values, tensors
