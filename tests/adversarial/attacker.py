"""What an attacker has: a WebSocket and an HTTP client, and any key it makes itself."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import aiohttp

from nesachain.protocol.messages import decode_message, encode_message


async def exchange(url: str, *msgs: dict[str, Any], timeout: float = 10.0) -> list[dict[str, Any]]:
    """Send each message on one fresh connection and read one reply to each (None-free: a closed socket ends it)."""
    replies = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=1 << 28) as ws:
        for msg in msgs:
            await ws.send_bytes(encode_message(msg))
            reply = await asyncio.wait_for(ws.receive(), timeout)
            if reply.type != aiohttp.WSMsgType.BINARY:
                break
            replies.append(decode_message(reply.data, 1 << 28))
    return replies


def ask(url: str, *msgs: dict[str, Any]) -> list[dict[str, Any]]:
    return asyncio.run(exchange(url, *msgs))


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, body = http_get(url, headers)
    return status, json.loads(body) if body[:1] in (b"{", b"[") else body
