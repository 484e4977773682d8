"""Registered on-chain error codes (the Cosmos SDK's errors.Register, in Python).

Every rejection a user can see is a (codespace, code) pair registered once at import; registering
a pair twice raises at import time. Call sites add detail with ``err.wrap("…")``. Code 1 of the
"sdk" codespace is the internal error: an unexpected exception becomes it, with no traceback in
the response.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChainError", "ErrorCode", "register", "registered"]

_REGISTRY: dict[tuple[str, int], ErrorCode] = {}


@dataclass(frozen=True)
class ErrorCode:
    codespace: str
    code: int
    description: str

    def wrap(self, detail: str) -> ChainError:
        return ChainError(self, detail)

    def __call__(self) -> ChainError:
        return ChainError(self, "")


class ChainError(Exception):
    """A state-machine rejection carrying its registered code and a message a user can act on."""

    def __init__(self, error: ErrorCode, detail: str) -> None:
        self.error = error
        self.detail = detail
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
