"""The miner's server (``nesachain.shard_exec.server.server``) as a real process: clear error codes for bad
requests while other sessions keep working, bounded memory over many sessions, only its blocks loaded;
and, in process, a move to other blocks (what a rebalancing chain agent asks)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgpack
import pytest
import torch
from shard_exec_support import MinerProc, Sharded

from nesachain.errors import NesaError
from nesachain.protocol.frames import decode_tensor, encode_tensor
from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.server import MinerServer
from nesachain.shard_exec.shard_files import load_stage
from tests.shard_exec.server.raw_ws import WIDTH, Raw, miner_info, step_msg


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
            codes["bad_magic"] = (await raw.ask(step_msg("good", 0, 0, b"XXXX" + b"\x00" * 20)))["code"]
            truncated = encode_tensor(good)[:-5]
            codes["truncated"] = (await raw.ask(step_msg("good", 0, 0, truncated)))["code"]
            codes["wrong_width"] = (await raw.ask(step_msg("good", 0, 0, torch.randn(1, 4, WIDTH - 1))))["code"]
            codes["wrong_rank"] = (await raw.ask(step_msg("good", 0, 0, torch.randn(4, WIDTH))))["code"]
            codes["wrong_dtype"] = (await raw.ask(step_msg("good", 0, 0, torch.ones(1, 4, WIDTH, dtype=torch.int64))))[
                "code"]
            codes["wrong_batch"] = (await raw.ask(step_msg("good", 0, 0, torch.randn(2, 4, WIDTH))))["code"]
            codes["unknown_session"] = (await raw.ask(step_msg("nope", 0, 0, good)))["code"]
            codes["step_ahead"] = (await raw.ask(step_msg("good", 3, 0, good)))["code"]
            codes["position_gap"] = (await raw.ask(step_msg("good", 0, 7, good)))["code"]
            codes["oversize"] = (await raw.ask(step_msg("good", 0, 0, torch.randn(1, 4200, WIDTH))))["code"]
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
            ok = await raw.ask(step_msg("good", 0, 0, good))
            assert ok["op"] == "result" and ok["step"] == 0
            # past max length: 4 tokens in, 29 more exceed 32
            codes["past_max_length"] = (await raw.ask(step_msg("good", 1, 4, torch.randn(1, 29, WIDTH))))["code"]
            ok = await raw.ask(step_msg("good", 1, 4, torch.randn(1, 1, WIDTH)))
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
            ok = await raw.ask(step_msg("good", 2, 5, torch.randn(1, 1, WIDTH)))
            assert ok["op"] == "result" and ok["step"] == 2
            assert (await raw.ask({"op": "close", "session": "good"}))["op"] == "closed"
            codes["closed_session"] = (await raw.ask(step_msg("good", 3, 6, good)))["code"]
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
    info = miner_info(miner)
    assert info["open_sessions"] == 0 and info["reserved_bytes"] == 0  # the connection closed: all freed


def test_miner_1000_sessions_opened_and_closed_keep_rss_bounded(gpt2_miners: list[MinerProc]) -> None:
    miner = gpt2_miners[2]

    async def cycle(ws: aiohttp.ClientWebSocketResponse, start: int, n: int) -> None:
        raw = Raw(ws)
        for i in range(start, start + n):
            sid = f"s{i}"
            assert (await raw.ask({"op": "open", "session": sid, "max_length": 64}))["op"] == "opened"
            assert (await raw.ask(step_msg(sid, 0, 0, torch.randn(1, 8, WIDTH))))["op"] == "result"
            assert (await raw.ask({"op": "close", "session": sid}))["op"] == "closed"

    async def run() -> tuple[int, int]:
        async with aiohttp.ClientSession() as http, http.ws_connect(miner.url) as ws:
            await cycle(ws, 0, 100)  # warm-up: allocator pools, logs reach steady state
            before = miner_info(miner)["rss_bytes"]
            await cycle(ws, 100, 1000)
            after = miner_info(miner)["rss_bytes"]
        return before, after

    before, after = asyncio.run(run())
    info = miner_info(miner)
    print(f"\n1,000 sessions: RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB "
          f"({(after - before) / 2**20:+.1f} MiB); open sessions {info['open_sessions']}")
    assert info["open_sessions"] == 0 and info["reserved_bytes"] == 0
    assert after - before < 32 * 2**20


def test_smollm2_miner_loads_only_its_blocks(smol: Sharded, smol_miners: list[MinerProc]) -> None:
    whole = sum(p.numel() * p.element_size() for p in smol.model.parameters())
    for m in smol_miners:
        info = miner_info(m)
        print(f"\nminer {m.blocks}: weights {info['param_bytes'] / 2**20:.1f} MiB "
              f"(whole model {whole / 2**20:.1f} MiB), RSS {info['rss_bytes'] / 2**20:.1f} MiB, "
              f"{info['throughput_tokens_per_s']:.1f} tokens/s, "
              f"{info['throughput_tokens_per_s_per_block']:.1f} tokens/s per block")
        assert info["blocks"] == [int(x) for x in m.blocks.split(":")]
        assert info["param_bytes"] < 0.3 * whole
        assert info["throughput_tokens_per_s"] > 0
        assert info["block_hashes"] == [b["sha256"] for b in smol.manifest["blocks"][info["blocks"][0]:
                                                                                     info["blocks"][1]]]


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
                    assert (await Raw(ws).ask({"op": "open", "session": "a", "max_length": 8, "blocks": [0, 1]}))[
                        "op"] == "opened"
                    assert (await Raw(ws).ask(step_msg("a", 0, 0, x)))["op"] == "result"
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
                    wrong = await Raw(ws).ask({"op": "open", "session": "b", "max_length": 8, "blocks": [0, 1]})
                    assert wrong["code"] == "wrong_blocks", wrong
                    assert (await Raw(ws).ask({"op": "open", "session": "b", "max_length": 8, "blocks": [1, 2]}))[
                        "op"] == "opened"
                    result = await Raw(ws).ask(step_msg("b", 0, 0, x))
                    assert torch.equal(decode_tensor(result["tensors"]["hidden"]), expected["hidden"])
            with pytest.raises(NesaError, match="outside"):
                await server.move_to(1, 3)
        finally:
            await server.stop()

    asyncio.run(run())
