"""Errors of the protocol between roles.

    NesaError
    └── ProtocolError        a message between two roles is malformed, or was refused
        ├── WireError        a message or tensor frame is malformed, too large or of the wrong shape/dtype
        └── StepError        a miner answered a request with an error message

Both carry a stable ``code`` (``messages.ErrorCode``), so a miner can answer with it and a client react to it.
"""

from __future__ import annotations

from nesachain.errors import NesaError

__all__ = ["ProtocolError", "StepError", "WireError"]


class ProtocolError(NesaError):
    """Root of the errors of ``nesachain.protocol``."""


class WireError(ProtocolError):
    """A message or tensor frame is malformed, oversize, or has the wrong shape or dtype."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StepError(ProtocolError):
    """A miner answered a request with an error response."""

    def __init__(self, code: str, message: str, url: str = "") -> None:
        where = f" ({url})" if url else ""
        super().__init__(f"{code}: {message}{where}")
        self.code = code
        self.message = message
        self.url = url
