"""Errors of sharded execution.

    NesaError
    └── ShardExecError          anything in nesachain.shard_exec
        ├── ManifestError       a shard folder, manifest or block file is missing, altered or inconsistent
        ├── PartitionError      a model cannot be traced or cut into the requested stages
        ├── WireError           a message or tensor frame is malformed, too large or of the wrong shape/dtype
        ├── StepError           a miner refused a request (carries the wire error ``code``)
        └── RouteError          no usable miner is left for some block range of a route

``WireError`` and ``StepError`` carry a stable ``code`` string (see ``wire.ErrorCode``) so that a
miner can answer with it and a client can react to it.
"""

from __future__ import annotations

from nesachain.errors import NesaError

__all__ = ["ManifestError", "PartitionError", "RouteError", "ShardExecError", "StepError", "WireError"]


class ShardExecError(NesaError):
    """Root of the errors raised by nesachain.shard_exec."""


class ManifestError(ShardExecError):
    """A shard folder, its manifest or a block file is missing, altered or inconsistent."""


class PartitionError(ShardExecError):
    """A model cannot be traced, profiled or cut into the requested number of stages."""


class WireError(ShardExecError):
    """A message or tensor frame is malformed, oversize, or has the wrong shape or dtype."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StepError(ShardExecError):
    """A miner answered a request with an error response."""

    def __init__(self, code: str, message: str, url: str = "") -> None:
        where = f" ({url})" if url else ""
        super().__init__(f"{code}: {message}{where}")
        self.code = code
        self.message = message
        self.url = url


class RouteError(ShardExecError):
    """No usable miner is left for a block range, or a route does not cover the model."""
