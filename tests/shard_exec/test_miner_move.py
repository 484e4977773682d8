"""A miner moved to other blocks (what a rebalancing chain agent asks): the new blocks' hashes are
checked first, a move that fails before the swap leaves the old blocks served, open sessions and their
sockets close, and the miner then computes the new blocks."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import torch
from shard_exec_support import Sharded

from nesachain.errors import NesaError
from nesachain.protocol.frames import decode_tensor, encode_tensor
from nesachain.protocol.messages import decode_message, encode_message
from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.server import MinerServer
from nesachain.shard_exec.shard_files import load_stage

WIDTH = 64  # tiny GPT-2's hidden size


async def ask(ws: aiohttp.ClientWebSocketResponse, msg: dict[str, Any]) -> dict[str, Any]:
    await ws.send_bytes(encode_message(msg))
    reply = await asyncio.wait_for(ws.receive(), 30)
    assert reply.type == aiohttp.WSMsgType.BINARY, reply
    return decode_message(reply.data, 1 << 30)


def step(sid: str, x: torch.Tensor) -> dict[str, Any]:
    return {"op": "step", "session": sid, "step": 0, "position": 0, "tensors": {"hidden": encode_tensor(x)}}


def test_miner_moves_to_other_blocks_checked_and_closes_old_sessions(tiny_gpt2: Sharded) -> None:
    x = torch.randn(1, 5, WIDTH)
    reference = load_stage(tiny_gpt2.dir, 1, 2)
    expected, _ = reference.run({"hidden": x}, {}, 0, reference.new_state(1, 8))
    checked: list[dict[str, Any]] = []

    async def accept(candidate: dict[str, Any]) -> None:
        checked.append(candidate)

    async def refuse(candidate: dict[str, Any]) -> None:
        raise NesaError("hashes differ from the chain's")

    async def run() -> None:
        server = await MinerServer.create(MinerConfig(shard_dir=tiny_gpt2.dir, start=0, end=1, probe_steps=1))
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(server.url) as ws:
                    assert (await ask(ws, {"op": "open", "session": "a", "max_length": 8, "blocks": [0, 1]}))[
                        "op"] == "opened"
                    assert (await ask(ws, step("a", x)))["op"] == "result"
                    with pytest.raises(NesaError, match="differ"):
                        await server.move_to(1, 2, refuse)
                    assert server.info()["blocks"] == [0, 1] and server.info()["open_sessions"] == 1
                    measure = server._measure

                    def no_room(runner: Any = None) -> float:  # the new blocks loaded, then failed their probe
                        raise MemoryError("no room for the probe")

                    server._measure = no_room  # type: ignore[method-assign]
                    with pytest.raises(MemoryError):
                        await server.move_to(1, 2, accept)
                    assert server.info()["blocks"] == [0, 1] and server.info()["open_sessions"] == 1
                    server._measure = measure  # type: ignore[method-assign]
                    checked.clear()
                    info = await server.move_to(1, 2, accept)
                    assert info["blocks"] == [1, 2] and info["open_sessions"] == 0
                    assert checked == [{"blocks": [1, 2], "block_hashes": info["block_hashes"]}]
                    closed = await asyncio.wait_for(ws.receive(), 10)  # the old session's socket
                    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closed
                async with http.ws_connect(server.url) as ws:
                    wrong = await ask(ws, {"op": "open", "session": "b", "max_length": 8, "blocks": [0, 1]})
                    assert wrong["code"] == "wrong_blocks", wrong
                    assert (await ask(ws, {"op": "open", "session": "b", "max_length": 8, "blocks": [1, 2]}))[
                        "op"] == "opened"
                    result = await ask(ws, step("b", x))
                    assert torch.equal(decode_tensor(result["tensors"]["hidden"]), expected["hidden"])
            with pytest.raises(NesaError, match="outside"):
                await server.move_to(1, 3)
        finally:
            await server.stop()

    asyncio.run(run())
