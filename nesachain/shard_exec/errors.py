"""Errors of sharded execution.

    NesaError
    └── ShardExecError          anything in nesachain.shard_exec
        ├── ManifestError       a shard folder, manifest or block file is missing, altered or inconsistent
        └── PartitionError      a model cannot be traced or cut into the requested stages

A stage that refuses its input (wrong shape, past its KV cache) raises ``nesachain.protocol.WireError`` with
the code its miner answers with.
"""

from __future__ import annotations

from nesachain.errors import NesaError

__all__ = ["ManifestError", "PartitionError", "ShardExecError"]


class ShardExecError(NesaError):
    """Root of the errors raised by nesachain.shard_exec."""


class ManifestError(ShardExecError):
    """A shard folder, its manifest or a block file is missing, altered or inconsistent."""


class PartitionError(ShardExecError):
    """A model cannot be traced, profiled or cut into the requested number of stages."""
