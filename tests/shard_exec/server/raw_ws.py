"""A bare WebSocket client for sending hand-made (bad) messages to a miner, the step message it builds,
and a miner process's /info: helpers of the server's tests."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import aiohttp
import torch
from shard_exec_support import MinerProc

from nesachain.protocol.frames import encode_tensor
from nesachain.protocol.messages import decode_message, encode_message

WIDTH = 64  # tiny GPT-2's hidden size


class Raw:
    """A bare WebSocket client for sending hand-made (bad) messages."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def ask(self, msg: dict[str, Any] | bytes | str) -> dict[str, Any]:
        if isinstance(msg, str):
            await self.ws.send_str(msg)
        else:
            await self.ws.send_bytes(msg if isinstance(msg, bytes) else encode_message(msg))
        reply = await asyncio.wait_for(self.ws.receive(), 30)
        assert reply.type == aiohttp.WSMsgType.BINARY, reply
        return decode_message(reply.data, 1 << 30)


def step_msg(sid: str, step: int, position: int, hidden: torch.Tensor | bytes) -> dict[str, Any]:
    frame = hidden if isinstance(hidden, bytes) else encode_tensor(hidden)
    return {"op": "step", "session": sid, "step": step, "position": position, "tensors": {"hidden": frame}}


def miner_info(m: MinerProc) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{m.addr}/info", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]
