"""The seam where a started miner announces itself (on chain in issue 5; nowhere for now)."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["MinerRegistrar", "NullRegistrar"]


class MinerRegistrar(Protocol):
    """Called once the miner listens, with its /info document; may raise to abort the start."""

    async def register(self, info: dict[str, Any]) -> None: ...

    async def deregister(self, info: dict[str, Any]) -> None: ...


class NullRegistrar:
    """Registers nowhere (local runs and tests)."""

    async def register(self, info: dict[str, Any]) -> None:
        return None

    async def deregister(self, info: dict[str, Any]) -> None:
        return None
