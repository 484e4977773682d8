"""Run a miner until SIGINT/SIGTERM, or its registrar is done with it (the body of ``nesad miner start``)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.registration import MinerRegistrar
from nesachain.shard_exec.server.server import MinerServer

__all__ = ["serve_forever"]


async def serve_forever(cfg: MinerConfig, on_ready: Callable[[dict[str, Any]], None],
                        registrar: MinerRegistrar | None = None, parent: int | None = None,
                        server_class: type[MinerServer] = MinerServer) -> None:
    """Create (a ``server_class``: tests pass a misbehaving subclass), start, call ``on_ready(info)``, and serve
    until a termination signal (or, given ``parent``, until this process's parent is no longer that process; or
    until the registrar is done with the miner)."""
    server = await server_class.create(cfg, registrar)
    try:
        await server.start()  # raises if the chain refuses the registration
    except BaseException:
        await server.stop()
        raise
    on_ready(server.info())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(_watch_parent(parent, stop)) if parent is not None else None
    done = asyncio.create_task(_set_when(registrar.wait_done(), stop)) if registrar is not None else None
    try:
        await stop.wait()
    finally:
        for task in (watch, done):
            if task is not None:
                task.cancel()
        await server.stop()


async def _set_when(awaitable: Awaitable[None], stop: asyncio.Event) -> None:
    await awaitable
    stop.set()


async def _watch_parent(parent: int, stop: asyncio.Event, every: float = 0.5) -> None:
    """Set ``stop`` once this process's parent is no longer ``parent`` (it exited, even by SIGKILL,
    and this process was handed to init or a subreaper)."""
    while os.getppid() == parent:
        await asyncio.sleep(every)
    stop.set()
