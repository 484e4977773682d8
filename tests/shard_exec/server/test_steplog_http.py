"""A miner's step log over HTTP (``nesachain.shard_exec.server.steplog_http``): the digests of the frames
received and sent, the retained frames of one step or of all steps up to one, and the refusals of bad
requests."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import torch
from shard_exec_support import MinerProc

from nesachain.protocol.frames import encode_tensor
from nesachain.protocol.messages import decode_message
from tests.shard_exec.server.raw_ws import WIDTH, Raw, step_msg


def test_miner_step_log_digests_match_frames_sent_and_received(gpt2_miners: list[MinerProc]) -> None:
    from nesachain.protocol.steplog import step_digest

    miner = gpt2_miners[2]
    frames = [encode_tensor(torch.randn(1, 3, WIDTH)), encode_tensor(torch.randn(1, 1, WIDTH))]

    async def run() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.ws_connect(miner.url) as ws:
            raw = Raw(ws)
            await raw.ask({"op": "open", "session": "logged", "max_length": 8})
            r0 = await raw.ask(step_msg("logged", 0, 0, frames[0]))
            r1 = await raw.ask(step_msg("logged", 1, 3, frames[1]))
            async with http.get(f"http://{miner.addr}/sessions/logged/log") as resp:
                log = await resp.json()
            async with http.get(f"http://{miner.addr}/sessions/logged/steps/1") as resp:
                kept = decode_message(await resp.read(), 1 << 30)
            async with http.get(f"http://{miner.addr}/sessions/logged/steps?upto=1") as resp:
                both = decode_message(await resp.read(), 1 << 30)["steps"]
            async with http.get(f"http://{miner.addr}/sessions/logged/steps?upto=0") as resp:
                first = decode_message(await resp.read(), 1 << 30)["steps"]
            bad = [(await http.get(f"http://{miner.addr}/sessions/{sid}/steps{q}")).status
                   for sid, q in (("logged", ""), ("logged", "?upto=-1"), ("logged", "?upto=x"), ("nope", "?upto=1"),
                                  ("logged", "/abc"), ("logged", "/-1"), ("logged", "/7"))]
            await raw.ask({"op": "close", "session": "logged"})
        assert kept["in"] == {"hidden": frames[1]} and kept["out"] == r1["tensors"]
        assert [s["step"] for s in both] == [0, 1]
        assert both[0]["in"] == {"hidden": frames[0]} and both[0]["out"] == r0["tensors"]
        assert both[1]["in"] == kept["in"] and both[1]["out"] == kept["out"] and both[1]["position"] == 3
        assert [s["step"] for s in first] == [0] and bad == [400, 400, 400, 404, 400, 400, 404]
        return [r0, r1, log]

    r0, r1, log = asyncio.run(run())
    steps = log["steps"]
    assert [s["step"] for s in steps] == [0, 1] and [s["n_tokens"] for s in steps] == [3, 1]
    for i, (reply, frame) in enumerate(zip((r0, r1), frames, strict=True)):
        assert steps[i]["in_digest"] == step_digest({"hidden": frame}, {})
        assert steps[i]["out_digest"] == step_digest(reply["tensors"], {})
