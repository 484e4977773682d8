"""The seam where a started miner announces itself (on chain: ``nesachain.miner.registrar``)."""

from __future__ import annotations

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


class NullRegistrar:
    """Registers nowhere (local runs and tests)."""

    async def register(self, info: dict[str, Any], move: Mover) -> None:
        return None

    async def deregister(self, info: dict[str, Any]) -> None:
        return None
