"""The seam between the shard server and whoever decides who may use it (on chain: ``nesachain.miner.registrar``).

The server calls its registrar once it listens (``register``), and asks it, for every session opened, every
step-log read and every push, whether the chain lets that happen. ``NullRegistrar`` (a miner started without
``--owner``) registers nowhere and admits anyone: an off-chain miner, which says so when it starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Admission", "HashCheck", "MinerRegistrar", "Mover", "NullRegistrar", "ServerHandle"]

HashCheck = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Admission:
    """Who opened a session: a chain session's client account (``chain``), or an off-chain peer's address."""

    client: str
    chain: bool = False


class ServerHandle(Protocol):
    """What a registrar may do with the server it registers."""

    def info(self) -> dict[str, Any]:
        """The server's /info document."""
        ...

    async def move_to(self, start: int, end: int, check: HashCheck | None = None) -> dict[str, Any]:
        """Serve blocks [start, end) instead, after ``check`` sees their hashes; the new /info."""
        ...

    def step_log(self, name: str) -> list[dict[str, Any]] | None:
        """A session's step log as /sessions/{name}/log serves it (None: no such log). Thread-safe."""
        ...

    def logged_sessions(self) -> list[str]:
        """The chain sessions whose logs the server keeps (until ``forget_log``)."""
        ...

    def forget_log(self, name: str) -> None:
        """Drop a settled chain session's log."""
        ...


class MinerRegistrar(Protocol):
    """Announces the miner, and rules on who may use it. Any ``admit_*`` may raise ``protocol.WireError``
    (``forbidden``, ``busy``…): the server answers the request with it."""

    chain: bool  # True: every session must be a chain session, opened by its client's signature

    async def register(self, server: ServerHandle) -> None:
        """Called once the server listens; may raise to abort the start."""

    async def deregister(self) -> None: ...

    async def wait_done(self) -> None:
        """Returns when the miner has nothing left to serve (on chain: its owner unbonded it and every session it
        served has settled); the miner then stops as on SIGTERM."""

    async def admit_open(self, name: str, auth: Any, peer: str) -> Admission:
        """Whether ``peer`` may open session ``name`` with ``auth`` (the open message's)."""
        ...

    async def admit_read(self, name: str, auth_header: str | None) -> None:
        """Whether a request with that ``X-Nesa-Auth`` header may read session ``name``'s step log and frames."""

    async def may_push(self, name: str, url: str) -> bool | None:
        """Whether session ``name`` may push its outputs to ``url``; None: the server's own allow-list decides."""
        ...


class NullRegistrar:
    """Registers nowhere and admits anyone (local runs, benches and tests: a miner off chain)."""

    chain = False

    async def register(self, server: ServerHandle) -> None:
        return None

    async def deregister(self) -> None:
        return None

    async def wait_done(self) -> None:
        await asyncio.Event().wait()  # never: a local miner serves until it is stopped

    async def admit_open(self, name: str, auth: Any, peer: str) -> Admission:
        return Admission(peer)

    async def admit_read(self, name: str, auth_header: str | None) -> None:
        return None

    async def may_push(self, name: str, url: str) -> bool | None:
        return None


Mover = Callable[[int, int, HashCheck | None], Awaitable[dict[str, Any]]]
