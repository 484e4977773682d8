"""A miner answers bad requests with clear error codes and keeps serving other sessions; GPT-2 adapter."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgpack
import pytest
import torch
from shard_exec_support import MinerProc, Sharded, start_miners, stop_miners

from nesachain.client import DecoderClient, parse_route
from nesachain.protocol.frames import encode_tensor
from nesachain.protocol.messages import decode_message, encode_message
from nesachain.shard_exec.reference import local_generate

WIDTH = 64  # tiny GPT-2's hidden size


@pytest.fixture(scope="module")
def gpt2_miners(tiny_gpt2: Sharded, miner_logs) -> Iterator[list[MinerProc]]:  # type: ignore[no-untyped-def]
    miners = start_miners(tiny_gpt2.dir, ["0:1", "1:2", "0:2"], miner_logs, "--memory-budget-mb", "1",
                          "--max-tensor-mb", "1", "--max-length", "64")
    yield miners
    stop_miners(miners)


def _info(m: MinerProc) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{m.addr}/info", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


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


def _step(sid: str, step: int, position: int, hidden: torch.Tensor | bytes) -> dict[str, Any]:
    frame = hidden if isinstance(hidden, bytes) else encode_tensor(hidden)
    return {"op": "step", "session": sid, "step": step, "position": position, "tensors": {"hidden": frame}}


def test_gpt2_route_greedy_tokens_match_local(tiny_gpt2: Sharded, gpt2_miners: list[MinerProc]) -> None:
    client = DecoderClient.from_shard_dir(tiny_gpt2.dir)
    ids = torch.tensor([[5, 17, 99, 3, 42, 8]])
    expected, _, _ = local_generate(tiny_gpt2.model, ids, 16)

    async def run() -> list[int]:
        route = parse_route(",".join(m.hop() for m in gpt2_miners[:2]))
        return [t async for t in client.generate(route, ids, 16)]

    assert asyncio.run(run()) == expected


def test_a_miner_with_the_same_shapes_but_other_weights_is_refused_and_the_alternate_serves(
        tiny_gpt2: Sharded, gpt2_miners: list[MinerProc], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same tiny GPT-2 architecture with other weights: a miner serving them would compute garbage
    silently; the client's block hashes make it refuse (wrong_model), and the alternate takes the hop."""
    from transformers import GPT2LMHeadModel

    from nesachain.client.errors import RouteError
    from nesachain.shard_exec.shard_files import write_shards
    from nesachain.shard_exec.sources import load_source

    torch.manual_seed(8)
    other = GPT2LMHeadModel(tiny_gpt2.model.config).eval()
    other.save_pretrained(str(tmp_path / "other-hf"))
    write_shards(load_source(str(tmp_path / "other-hf")), tmp_path / "other", 2)
    impostor = start_miners(tmp_path / "other", ["1:2"], tmp_path)[0]
    client = DecoderClient.from_shard_dir(tiny_gpt2.dir)
    ids = torch.tensor([[5, 17, 99, 3, 42, 8]])
    expected, _, _ = local_generate(tiny_gpt2.model, ids, 8)

    async def run(hops: str, *alternates: str) -> list[int]:
        return [t async for t in client.generate(parse_route(hops, list(alternates)), ids, 8)]

    try:
        with pytest.raises(RouteError, match="no live miner left for blocks 1:2: wrong_model: blocks 1:2 here"):
            asyncio.run(run(f"{gpt2_miners[0].hop()},{impostor.hop()}"))
        got = asyncio.run(run(f"{gpt2_miners[0].hop()},{impostor.hop()}", gpt2_miners[1].hop()))
    finally:
        stop_miners([impostor])
    assert got == expected


def test_miner_errors_are_clear_and_other_sessions_keep_working(tiny_gpt2: Sharded,
                                                                gpt2_miners: list[MinerProc]) -> None:
    miner = gpt2_miners[2]  # blocks 0:2, 1 MiB KV budget, 1 MiB tensors, max length 64

    async def run() -> dict[str, str]:
        codes: dict[str, str] = {}
        async with aiohttp.ClientSession() as http, http.ws_connect(miner.url, max_msg_size=1 << 26) as ws:
            raw = Raw(ws)
            assert (await raw.ask({"op": "open", "session": "good", "max_length": 32}))["op"] == "opened"
            good = torch.randn(1, 4, WIDTH)
            codes["garbage"] = (await raw.ask(b"\xc1\x00garbage"))["code"]
            codes["text"] = (await raw.ask("hello"))["code"]
            codes["no_op"] = (await raw.ask(msgpack.packb({"x": 1})))["code"]
            codes["bad_magic"] = (await raw.ask(_step("good", 0, 0, b"XXXX" + b"\x00" * 20)))["code"]
            truncated = encode_tensor(good)[:-5]
            codes["truncated"] = (await raw.ask(_step("good", 0, 0, truncated)))["code"]
            codes["wrong_width"] = (await raw.ask(_step("good", 0, 0, torch.randn(1, 4, WIDTH - 1))))["code"]
            codes["wrong_rank"] = (await raw.ask(_step("good", 0, 0, torch.randn(4, WIDTH))))["code"]
            codes["wrong_dtype"] = (await raw.ask(_step("good", 0, 0, torch.ones(1, 4, WIDTH, dtype=torch.int64))))[
                "code"]
            codes["wrong_batch"] = (await raw.ask(_step("good", 0, 0, torch.randn(2, 4, WIDTH))))["code"]
            codes["unknown_session"] = (await raw.ask(_step("nope", 0, 0, good)))["code"]
            codes["step_ahead"] = (await raw.ask(_step("good", 3, 0, good)))["code"]
            codes["position_gap"] = (await raw.ask(_step("good", 0, 7, good)))["code"]
            codes["oversize"] = (await raw.ask(_step("good", 0, 0, torch.randn(1, 4200, WIDTH))))["code"]
            codes["open_too_long"] = (await raw.ask({"op": "open", "session": "x", "max_length": 10_000}))["code"]
            codes["duplicate_open"] = (await raw.ask({"op": "open", "session": "good", "max_length": 8}))["code"]
            codes["bad_open"] = (await raw.ask({"op": "open", "session": 5, "max_length": -1}))["code"]
            codes["wrong_blocks"] = (await raw.ask({"op": "open", "session": "w", "max_length": 8,
                                                    "blocks": [0, 1]}))["code"]  # it serves 0:2
            codes["wrong_model"] = (await raw.ask({"op": "open", "session": "w", "max_length": 8, "blocks": [0, 2],
                                                   "block_hashes": ["0" * 64] * 2}))["code"]  # other weights
            codes["bad_hashes"] = (await raw.ask({"op": "open", "session": "w", "max_length": 8,
                                                  "block_hashes": "not a list"}))["code"]
            hashes = [b["sha256"] for b in tiny_gpt2.manifest["blocks"][:2]]
            right = await raw.ask({"op": "open", "session": "w", "max_length": 8, "blocks": [0, 2],
                                   "block_hashes": hashes})
            assert right["op"] == "opened"
            assert (await raw.ask({"op": "close", "session": "w"}))["op"] == "closed"
            # the good session still works after all of that, and its result is right
            ok = await raw.ask(_step("good", 0, 0, good))
            assert ok["op"] == "result" and ok["step"] == 0
            # past max length: 4 tokens in, 29 more exceed 32
            codes["past_max_length"] = (await raw.ask(_step("good", 1, 4, torch.randn(1, 29, WIDTH))))["code"]
            ok = await raw.ask(_step("good", 1, 4, torch.randn(1, 1, WIDTH)))
            assert ok["op"] == "result" and ok["step"] == 1
            # exhaust the 1 MiB budget with 64-token sessions; then refuse
            opened = 0
            while True:
                reply = await raw.ask({"op": "open", "session": f"fill-{opened}", "max_length": 64})
                if reply["op"] == "error":
                    codes["budget"] = reply["code"]
                    break
                opened += 1
                assert opened < 100
            ok = await raw.ask(_step("good", 2, 5, torch.randn(1, 1, WIDTH)))
            assert ok["op"] == "result" and ok["step"] == 2
            assert (await raw.ask({"op": "close", "session": "good"}))["op"] == "closed"
            codes["closed_session"] = (await raw.ask(_step("good", 3, 6, good)))["code"]
        return codes

    codes = asyncio.run(run())
    print("\n" + "\n".join(f"  {k:18s} -> {v}" for k, v in codes.items()))
    assert codes == {
        "garbage": "malformed_frame", "text": "malformed_frame", "no_op": "malformed_frame",
        "bad_magic": "malformed_frame", "truncated": "malformed_frame", "wrong_width": "bad_shape",
        "wrong_rank": "bad_shape", "wrong_dtype": "bad_dtype", "wrong_batch": "bad_shape",
        "unknown_session": "unknown_session", "step_ahead": "out_of_order", "position_gap": "out_of_order",
        "oversize": "too_large", "open_too_long": "past_max_length", "duplicate_open": "session_exists",
        "bad_open": "bad_request", "wrong_blocks": "wrong_blocks", "wrong_model": "wrong_model",
        "bad_hashes": "bad_request", "past_max_length": "past_max_length",
        "budget": "memory_budget_exhausted",
        "closed_session": "unknown_session",
    }
    info = _info(miner)
    assert info["open_sessions"] == 0 and info["reserved_bytes"] == 0  # the connection closed: all freed


def test_miner_1000_sessions_opened_and_closed_keep_rss_bounded(gpt2_miners: list[MinerProc]) -> None:
    miner = gpt2_miners[2]

    async def cycle(ws: aiohttp.ClientWebSocketResponse, start: int, n: int) -> None:
        raw = Raw(ws)
        for i in range(start, start + n):
            sid = f"s{i}"
            assert (await raw.ask({"op": "open", "session": sid, "max_length": 64}))["op"] == "opened"
            assert (await raw.ask(_step(sid, 0, 0, torch.randn(1, 8, WIDTH))))["op"] == "result"
            assert (await raw.ask({"op": "close", "session": sid}))["op"] == "closed"

    async def run() -> tuple[int, int]:
        async with aiohttp.ClientSession() as http, http.ws_connect(miner.url) as ws:
            await cycle(ws, 0, 100)  # warm-up: allocator pools, logs reach steady state
            before = _info(miner)["rss_bytes"]
            await cycle(ws, 100, 1000)
            after = _info(miner)["rss_bytes"]
        return before, after

    before, after = asyncio.run(run())
    info = _info(miner)
    print(f"\n1,000 sessions: RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB "
          f"({(after - before) / 2**20:+.1f} MiB); open sessions {info['open_sessions']}")
    assert info["open_sessions"] == 0 and info["reserved_bytes"] == 0
    assert after - before < 32 * 2**20


def test_miner_step_log_digests_match_frames_sent_and_received(gpt2_miners: list[MinerProc]) -> None:
    from nesachain.protocol.steplog import step_digest

    miner = gpt2_miners[2]
    frames = [encode_tensor(torch.randn(1, 3, WIDTH)), encode_tensor(torch.randn(1, 1, WIDTH))]

    async def run() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.ws_connect(miner.url) as ws:
            raw = Raw(ws)
            await raw.ask({"op": "open", "session": "logged", "max_length": 8})
            r0 = await raw.ask(_step("logged", 0, 0, frames[0]))
            r1 = await raw.ask(_step("logged", 1, 3, frames[1]))
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
