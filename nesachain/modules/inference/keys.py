"""inference state: every prefix in one table."""

from __future__ import annotations

from nesachain.types.keys import lp, u64

MODULE = "inference"
PREFIX = b"inference/"
PARAMS = PREFIX + b"params"  # -> Params
MODEL = PREFIX + b"model/"  # MODEL + lp(model_id) -> Model
NEXT_SESSION = PREFIX + b"next_session"  # -> int
SESSION = PREFIX + b"session/"  # SESSION + u64(id) -> Session
# DUE + u64(height) + u64(session id) -> b"" : sessions with a phase ending at that height
DUE = PREFIX + b"due/"


def model_key(model_id: str) -> bytes:
    return MODEL + lp(model_id.encode())


def session_key(session_id: int) -> bytes:
    return SESSION + u64(session_id)


def due_key(height: int, session_id: int) -> bytes:
    return DUE + u64(height) + u64(session_id)
