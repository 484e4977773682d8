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
# indexes of sessions, kept by InferenceKeeper.set_session (the only writer of sessions):
# BY_STATUS + lp(status) + u64(session id) -> b""
BY_STATUS = PREFIX + b"by_status/"
# BY_MINER + lp(miner address) + lp(status) + u64(session id) -> b"" : every miner a session names (route or stand-in)
BY_MINER = PREFIX + b"by_miner/"
INDEX_VERSION = PREFIX + b"index_version"  # -> b"1" once the indexes cover every session
VERIFIER = PREFIX + b"verifier/"  # VERIFIER + lp(validator operator) -> its verifier counts (verifiers.py)
# VERDICT_WINDOW + lp(validator operator) -> its misses over the last challenges (verdict_window.py)
VERDICT_WINDOW = PREFIX + b"verdict_window/"


def model_key(model_id: str) -> bytes:
    return MODEL + lp(model_id.encode())


def session_key(session_id: int) -> bytes:
    return SESSION + u64(session_id)


def due_key(height: int, session_id: int) -> bytes:
    return DUE + u64(height) + u64(session_id)


def verifier_key(validator: bytes) -> bytes:
    return VERIFIER + lp(validator)


def verdict_window_key(validator: bytes) -> bytes:
    return VERDICT_WINDOW + lp(validator)


def status_prefix(status: str) -> bytes:
    return BY_STATUS + lp(status.encode())


def miner_prefix(miner: bytes, status: str | None = None) -> bytes:
    """A miner's sessions, or those of one status."""
    return BY_MINER + lp(miner) + (b"" if status is None else lp(status.encode()))
