"""Errors of the protocol between roles.

    NesaError
    └── ProtocolError        a message between two roles is malformed, or was refused
        ├── WireError        a message or tensor frame is malformed, too large or of the wrong shape/dtype
        ├── StepError        a miner answered a request with an error message
        └── StepLogFetchError        a step-log read did not give valid data
            ├── StepLogUnavailable   no answer: the connection failed or was reset, no response by the deadline,
            │                        HTTP 5xx (the server may answer later)
            ├── StepLogRefused       HTTP 403: the server refuses this request (``root``, ``n_steps`` if it said)
            └── StepLogInvalid       the server answered, with something that is not valid step data: a status
                │                    other than 200/403/404/5xx, a bad or oversize body, one cut short or not
                │                    complete by the deadline, a schema violation, frames that do not hash to
                │                    the log's digests
                └── StepLogNotFound  HTTP 404: it has no such session (or no such frames)

``WireError`` and ``StepError`` carry a stable ``code`` (``messages.ErrorCode``), so a miner can answer with it and a
client react to it. The step-log errors are all a verifier's reads can raise (``steplog.fetch_log``,
``fetch.bounded_get``), whatever the other side sends.
"""

from __future__ import annotations

from nesachain.errors import NesaError

__all__ = ["ProtocolError", "StepError", "StepLogFetchError", "StepLogInvalid", "StepLogNotFound", "StepLogRefused",
           "StepLogUnavailable", "WireError"]


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


class StepLogFetchError(ProtocolError):
    """A step-log read did not give valid data (the tree is in the module's doc)."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}" if url else message)
        self.url = url
        self.message = message


class StepLogUnavailable(StepLogFetchError):
    """No answer: the connection failed or was reset, no response came by the deadline, or HTTP 5xx."""


class StepLogRefused(StepLogFetchError):
    """HTTP 403: the server refuses this request; ``root`` and ``n_steps`` as its answer stated them, if it did."""

    def __init__(self, url: str, message: str, root: str | None = None, n_steps: int | None = None) -> None:
        super().__init__(url, message)
        self.root = root
        self.n_steps = n_steps


class StepLogInvalid(StepLogFetchError):
    """The server answered with something that is not valid step data."""


class StepLogNotFound(StepLogInvalid):
    """HTTP 404: the server has no such session, or no such frames."""
