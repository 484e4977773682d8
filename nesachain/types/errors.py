"""Registered on-chain error codes (the Cosmos SDK's errors.Register, in Python).

Every rejection a user can see is a (codespace, code) pair registered once at import; registering
a pair twice raises at import time. Call sites add detail with ``err.wrap("…")``. Code 1 of the
"sdk" codespace is the internal error: an unexpected exception becomes it, with no traceback in
the response.

A rejection may also carry a small structured payload (``data``) that a program can read instead of
parsing the log: ``ErrInvalidSequence.wrap("…", data={"expected_sequence": 7})``. It goes, canonically
encoded, into the tx result's ``data`` field (which CometBFT returns from ``broadcast_tx_sync``), so it
must hold only canonical types (integers, strings, bytes, lists, string-keyed maps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nesachain.types.encoding import encode

__all__ = ["ChainError", "ErrorCode", "register", "registered"]

_REGISTRY: dict[tuple[str, int], ErrorCode] = {}


@dataclass(frozen=True)
class ErrorCode:
    codespace: str
    code: int
    description: str

    def wrap(self, detail: str, *, data: Mapping[str, Any] | None = None) -> ChainError:
        return ChainError(self, detail, data)

    def __call__(self) -> ChainError:
        return ChainError(self, "")


class ChainError(Exception):
    """A state-machine rejection carrying its registered code and a message a user can act on."""

    def __init__(self, error: ErrorCode, detail: str, data: Mapping[str, Any] | None = None) -> None:
        self.error = error
        self.detail = detail
        self.data: dict[str, Any] = dict(data or {})  # structured detail for programs; {} when none
        # encoded here, so a payload that is not canonical fails where it is raised (CanonicalError)
        self.encoded_data = encode(self.data) if self.data else b""
        super().__init__(self.log)

    @property
    def code(self) -> int:
        return self.error.code

    @property
    def codespace(self) -> str:
        return self.error.codespace

    @property
    def log(self) -> str:
        if self.detail:
            return f"{self.detail}: {self.error.description}"
        return self.error.description


def register(codespace: str, code: int, description: str) -> ErrorCode:
    if code <= 0:
        raise ValueError(f"error code must be positive, got {code}")
    key = (codespace, code)
    if key in _REGISTRY:
        raise ValueError(f"error code {codespace}/{code} registered twice")
    err = ErrorCode(codespace, code, description)
    _REGISTRY[key] = err
    return err


def registered() -> list[ErrorCode]:
    """Every registered code, sorted (for docs and tests)."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
