"""Miner-to-miner connections used to push a step's output straight to the next miner of a route."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict

import aiohttp
import structlog

from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import decode_message
from nesachain.shard_exec.errors import ShardExecError

__all__ = ["PeerPool"]

log = structlog.get_logger(__name__)


class PeerPool:
    """One WebSocket per next-hop URL, opened on first use and reopened once after a failure; at most
    ``max_peers`` at once (the least recently used closes first)."""

    def __init__(self, max_message_bytes: int, connect_timeout: float = 5.0, max_peers: int = 64) -> None:
        self._max = max_message_bytes
        self._timeout = connect_timeout
        self.max_peers = max_peers
        self._http: aiohttp.ClientSession | None = None
        self._conns: OrderedDict[str, aiohttp.ClientWebSocketResponse] = OrderedDict()
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()

    async def _connect(self, url: str) -> aiohttp.ClientWebSocketResponse:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        while len(self._conns) >= self.max_peers:
            old_url, oldest = self._conns.popitem(last=False)
            reader = self._readers.pop(old_url, None)
            if reader is not None:
                reader.cancel()
            await oldest.close()
        ws = await self._http.ws_connect(url, max_msg_size=2 * self._max,
                                         timeout=aiohttp.ClientWSTimeout(ws_close=self._timeout))
        self._conns[url] = ws
        self._readers[url] = asyncio.create_task(self._drain(url, ws))
        return ws

    async def _drain(self, url: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        """A peer answers pushes only with errors (results go to the session's owner): log them."""
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                with contextlib.suppress(WireError):
                    reply = decode_message(msg.data, self._max)
                    log.warning("push_refused", peer=url, code=reply.get("code"), message=reply.get("message"))
        self._conns.pop(url, None)

    async def send(self, url: str, data: bytes) -> None:
        """Send one message to ``url``; raises ``ShardExecError`` if the peer cannot be reached."""
        for attempt in (0, 1):
            try:
                async with self._lock:
                    ws = self._conns.get(url)
                    if ws is None or ws.closed:
                        ws = await asyncio.wait_for(self._connect(url), self._timeout)
                    self._conns.move_to_end(url)
                await ws.send_bytes(data)
                return
            except (TimeoutError, aiohttp.ClientError, OSError, ConnectionError) as exc:
                self._conns.pop(url, None)
                if attempt == 1:
                    raise ShardExecError(f"cannot push to {url}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        for ws in list(self._conns.values()):
            await ws.close()
        for task in self._readers.values():
            task.cancel()
        if self._http is not None:
            await self._http.close()
