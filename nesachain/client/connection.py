"""One client WebSocket to one miner, used by one session at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from nesachain.client.errors import MinerUnavailable
from nesachain.protocol.errors import StepError
from nesachain.protocol.messages import decode_message, encode_message

__all__ = ["MinerConnection", "MinerUnavailable"]

MAX_MESSAGE = 256 << 20


class MinerConnection:
    """Send requests and read replies; connection trouble becomes ``MinerUnavailable``."""

    def __init__(self, url: str, http: aiohttp.ClientSession, timeout: float) -> None:
        self.url, self._http, self.timeout = url, http, timeout
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.bytes_sent = 0
        self.bytes_received = 0

    async def connect(self) -> None:
        try:
            self._ws = await asyncio.wait_for(self._http.ws_connect(self.url, max_msg_size=MAX_MESSAGE),
                                              self.timeout)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise MinerUnavailable(f"cannot connect to {self.url}: {exc}") from exc

    async def send(self, msg: dict[str, Any]) -> None:
        if self._ws is None or self._ws.closed:
            raise MinerUnavailable(f"connection to {self.url} is closed")
        data = encode_message(msg)
        try:
            await self._ws.send_bytes(data)
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            raise MinerUnavailable(f"send to {self.url} failed: {exc}") from exc
        self.bytes_sent += len(data)

    async def receive(self, timeout: float | None = None, raise_errors: bool = True) -> dict[str, Any]:
        """The next message; an ``error`` message becomes ``StepError`` (unless ``raise_errors`` is off)."""
        if self._ws is None:
            raise MinerUnavailable(f"not connected to {self.url}")
        try:
            msg = await asyncio.wait_for(self._ws.receive(), timeout or self.timeout)
        except TimeoutError as exc:
            raise MinerUnavailable(f"{self.url} did not answer within {timeout or self.timeout:.0f} s") from exc
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            raise MinerUnavailable(f"{self.url}: {exc}") from exc
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise MinerUnavailable(f"{self.url} closed the connection ({msg.type.name})")
        self.bytes_received += len(msg.data)
        reply = decode_message(msg.data, MAX_MESSAGE)
        if reply["op"] == "error" and raise_errors:
            raise StepError(str(reply.get("code")), str(reply.get("message")), self.url)
        return reply

    async def request(self, msg: dict[str, Any], expect: str) -> dict[str, Any]:
        await self.send(msg)
        reply = await self.receive()
        if reply["op"] != expect:
            raise StepError("bad_reply", f"expected {expect!r}, got {reply['op']!r}", self.url)
        return reply

    async def receive_result(self, step: int) -> dict[str, Any]:
        """The result of ``step``, skipping stale duplicates of earlier steps (after a failover retry)."""
        while True:
            reply = await self.receive(raise_errors=False)
            if isinstance(reply.get("step"), int) and reply["step"] < step:
                continue
            if reply["op"] == "error":
                raise StepError(str(reply.get("code")), str(reply.get("message")), self.url)
            if reply["op"] != "result" or reply.get("step") != step:
                raise StepError("bad_reply", f"expected result of step {step}, got {reply.get('op')} "
                                f"{reply.get('step')}", self.url)
            return reply

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            try:
                await asyncio.wait_for(self._ws.close(), 2.0)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
