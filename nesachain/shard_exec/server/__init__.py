"""The miner's side process: an aiohttp server running one block range of a sharded model for many sessions.

The client and the verifier never import this package; what crosses the wire is ``nesachain.protocol``.
"""

from __future__ import annotations

from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.registration import MinerRegistrar, NullRegistrar
from nesachain.shard_exec.server.server import MinerServer

__all__ = ["MinerConfig", "MinerRegistrar", "MinerServer", "NullRegistrar"]
