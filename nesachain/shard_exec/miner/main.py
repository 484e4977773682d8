"""Run a miner until SIGINT/SIGTERM (the body of ``nesad miner start``)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from nesachain.shard_exec.miner.config import MinerConfig
from nesachain.shard_exec.miner.registration import MinerRegistrar
from nesachain.shard_exec.miner.server import MinerServer

__all__ = ["serve_forever"]


async def serve_forever(cfg: MinerConfig, on_ready: Callable[[dict[str, Any]], None],
                        registrar: MinerRegistrar | None = None) -> None:
    """Create, start, call ``on_ready(info)``, and serve until a termination signal."""
    server = await MinerServer.create(cfg, registrar)
    await server.start()
    on_ready(server.info())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
