"""The seam where a started miner announces itself (on chain: ``nesachain.miner.registrar``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["HashCheck", "MinerRegistrar", "Mover", "NullRegistrar"]

HashCheck = Callable[[dict[str, Any]], Awaitable[None]]
# MinerServer.move_to: serve other blocks (start, end), after an optional check of their hashes; new /info
Mover = Callable[[int, int, HashCheck | None], Awaitable[dict[str, Any]]]


class MinerRegistrar(Protocol):
    """Called once the miner listens, with its /info document and a way to move it to other blocks;
    may raise to abort the start."""

    async def register(self, info: dict[str, Any], move: Mover) -> None: ...

    async def deregister(self, info: dict[str, Any]) -> None: ...

    async def wait_done(self) -> None:
        """Returns when the miner has nothing left to serve (on chain: its owner unbonded it and
        every session it served has settled); the miner then stops as on SIGTERM."""


class NullRegistrar:
    """Registers nowhere (local runs and tests)."""

    async def register(self, info: dict[str, Any], move: Mover) -> None:
        return None

    async def deregister(self, info: dict[str, Any]) -> None:
        return None

    async def wait_done(self) -> None:
        await asyncio.Event().wait()  # never: a local miner serves until it is stopped
