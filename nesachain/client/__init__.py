"""The inference client: routing over the chain's miners, observed speeds, the failover pipeline,
model-level clients (decoders, encoders, graph models) and the verified request flow.

It keeps a model's embeddings and head, and talks to miners only through ``nesachain.protocol``;
it never imports the miner's server, the miner's chain agents or the verifier. The names below are
imported on first use, so ``import nesachain.client.routing`` does not load torch or aiohttp.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DecoderClient": "nesachain.client.models",
    "EncoderClient": "nesachain.client.models",
    "GenerationStats": "nesachain.client.models",
    "GraphClient": "nesachain.client.models",
    "load_tokenizer": "nesachain.client.models",
    "RecoveryEvent": "nesachain.client.pipeline",
    "RemotePipeline": "nesachain.client.pipeline",
    "StandIn": "nesachain.client.pipeline",
    "Hop": "nesachain.client.route",
    "Route": "nesachain.client.route",
    "parse_route": "nesachain.client.route",
    "Sampling": "nesachain.shard_exec.sampling",
    "choose": "nesachain.shard_exec.sampling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
