"""Model-agnostic sharded execution: adapters, partitioner, shard folders, miner server, client pipeline.

    write_shards / read_manifest / load_stage       shard folders (per-block safetensors + manifest)
    partition / balanced_layers                     the DP that cuts units into k contiguous stages
    MinerServer / MinerConfig                       a miner serving blocks [a, b) over WebSocket
    DecoderClient / EncoderClient / GraphClient     clients that run a route, with failover
    Route / parse_route / Sampling                  routes and decoding settings

Importing this package loads no model and starts nothing. Client code (``.client``) never imports the
miner (``.miner``); both share the wire types in ``.wire``. Errors: ``.errors`` (root ``ShardExecError``).
"""

from __future__ import annotations

from typing import Any

from nesachain.shard_exec import client, wire
from nesachain.shard_exec.client import (
    DecoderClient,
    EncoderClient,
    GenerationStats,
    GraphClient,
    RemotePipeline,
    Route,
    Sampling,
    parse_route,
)
from nesachain.shard_exec.errors import (
    ManifestError,
    PartitionError,
    RouteError,
    ShardExecError,
    StepError,
    WireError,
)
from nesachain.shard_exec.partition import CostWeights, balanced_layers, partition
from nesachain.shard_exec.shard_files import load_stage, read_manifest, write_shards

_MINER_NAMES = ("MinerConfig", "MinerServer")


def __getattr__(name: str) -> Any:
    """The miner is imported on first use, so client code importing this package never loads it."""
    if name in _MINER_NAMES:
        from nesachain.shard_exec import miner

        return getattr(miner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CostWeights",
    "DecoderClient",
    "EncoderClient",
    "GenerationStats",
    "GraphClient",
    "ManifestError",
    "MinerConfig",
    "MinerServer",
    "PartitionError",
    "RemotePipeline",
    "Route",
    "RouteError",
    "Sampling",
    "ShardExecError",
    "StepError",
    "WireError",
    "balanced_layers",
    "client",
    "load_stage",
    "parse_route",
    "partition",
    "read_manifest",
    "wire",
    "write_shards",
]
