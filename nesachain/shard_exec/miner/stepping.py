"""Pure helpers of a miner step: validate and decode a step request, digest a step."""

from __future__ import annotations

from typing import Any

import msgpack
import torch

from nesachain.shard_exec.errors import WireError
from nesachain.shard_exec.wire import ErrorCode, bundle_digest, decode_tensor

__all__ = ["decode_step", "step_digest"]

MAX_TENSORS = 64


def _int(req: dict[str, Any], key: str) -> int:
    v = req.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise WireError(ErrorCode.BAD_REQUEST, f"{key} must be a non-negative integer")
    return v


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


def step_digest(frames: dict[str, bytes], values: dict[str, Any]) -> str:
    """``bundle_digest`` over the frames plus each value packed as ``value:<name>``."""
    bundle = dict(frames)
    for key, val in values.items():
        bundle[f"value:{key}"] = bytes(msgpack.packb(val))
    return bundle_digest(bundle)
