"""WebSocket messages between clients and miners, and between miners (one binary msgpack map each).

    client -> miner  {"op": "open",  "session", "max_length", "scheme", "batch",
                                      "blocks"?: [start, end], "block_hashes"?: [sha256 hex, ...]}
                     {"op": "step",  "session", "step", "position", "tensors", "values",
                                      "push": [{"url", "session"}, ...], "replay": bool}
                     {"op": "close", "session"}
                     {"op": "ping"}
    miner -> miner   the same "step" message with "pushed": true (a direct push along the route)
    miner -> client  {"op": "opened", "session", "reserved_bytes"}
                     {"op": "result", "session", "step", "tensors", "values", "pushed", "compute_ms", "duplicate"?}
                     {"op": "closed", "session"}
                     {"op": "pong", "queue_length"}
                     {"op": "error", "code", "message", "session"?, "step"?}

``tensors`` maps a name to a tensor frame (``frames``); ``values`` maps a name to a small msgpack value
(ints, floats, lists of ints) for non-tensor values that cross a cut (e.g. a batch size).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgpack

from nesachain.protocol.errors import WireError

__all__ = ["SCHEMES", "ErrorCode", "decode_message", "encode_message", "error_message"]

# activation compression a session may ask for in "open" (``frames`` implements them)
SCHEMES: Final = ("none", "fp16", "blockwise8", "mixed8")


class ErrorCode:
    """Stable error codes of ``{"op": "error"}`` responses (and of ``WireError``/``StepError``)."""

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
    FORBIDDEN = "forbidden"  # no valid signature, or the chain does not let this signer do this
    NAME_USED = "name_used"  # a chain session name that has held a session on this miner before: never reused
    STORAGE_FULL = "storage_full"  # the miner's step-log quota is full: it opens no chain session until it prunes
    BUSY = "busy"  # too many connections from one peer, or sessions of one client
    INTERNAL = "internal"


def encode_message(msg: Mapping[str, Any]) -> bytes:
    """One WebSocket message."""
    return bytes(msgpack.packb(dict(msg), use_bin_type=True))


def decode_message(data: bytes, max_bytes: int) -> dict[str, Any]:
    """Parse one WebSocket message; raises ``WireError`` for oversize or malformed input."""
    if len(data) > max_bytes:
        raise WireError(ErrorCode.TOO_LARGE, f"message of {len(data)} bytes exceeds {max_bytes}")
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several kinds on bad input
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
