"""The miner: an aiohttp server running one block range of a sharded model for many sessions.

Client code must not import this package; both sides share only ``nesachain.shard_exec.wire``.
"""

from __future__ import annotations

from nesachain.shard_exec.miner.config import MinerConfig
from nesachain.shard_exec.miner.registration import MinerRegistrar, NullRegistrar
from nesachain.shard_exec.miner.server import MinerServer

__all__ = ["MinerConfig", "MinerRegistrar", "MinerServer", "NullRegistrar"]
