"""Client side of sharded execution: routes, the failover pipeline, and model-level clients.

Imports only compute and wire modules, never the miner.
"""

from __future__ import annotations

from nesachain.shard_exec.client.models import (
    DecoderClient,
    EncoderClient,
    GenerationStats,
    GraphClient,
    load_tokenizer,
)
from nesachain.shard_exec.client.pipeline import RecoveryEvent, RemotePipeline, StandIn
from nesachain.shard_exec.client.route import Hop, Route, parse_route
from nesachain.shard_exec.client.sampling import Sampling, choose

__all__ = [
    "DecoderClient",
    "EncoderClient",
    "GenerationStats",
    "GraphClient",
    "Hop",
    "RecoveryEvent",
    "RemotePipeline",
    "Route",
    "Sampling",
    "StandIn",
    "choose",
    "load_tokenizer",
    "parse_route",
]
