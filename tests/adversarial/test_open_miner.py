"""Attacks on a miner's WebSocket protocol and limits, run against real miner processes (off chain: they admit
any client, so the attacker need not pass the chain's checks to try these). Each asserts the attacker gains
nothing and the honest client is served exactly as without the attacker.

Each was seen to fail on the code before the hardening (bd121ce: any connection could step or close any session
by name, pushes went wherever a step said, and nothing capped connections, sessions or an encoder's sequence)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import torch
from shard_exec_support import MinerProc, Sharded, start_miners, stop_miners

from nesachain.client.models import DecoderClient
from nesachain.client.route import parse_route
from nesachain.protocol.frames import encode_tensor
from nesachain.protocol.messages import decode_message, encode_message
from nesachain.shard_exec.sampling import Sampling

pytestmark = pytest.mark.slow

WIDTH = 64  # tiny GPT-2's hidden size
PROMPT = torch.tensor([[5, 17, 42, 7]])


@pytest.fixture(scope="module")
def miners(tiny_gpt2: Sharded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MinerProc]]:
    procs = start_miners(tiny_gpt2.dir, ["0:1", "1:2"], tmp_path_factory.mktemp("logs"),
                         "--max-connections-per-peer", "6", "--max-sessions-per-client", "3",
                         "--idle-connection-timeout", "6", "--max-length", "32")
    yield procs
    stop_miners(procs)


def _step(sid: str, step: int, hidden: torch.Tensor, position: int = 0, **extra: Any) -> dict[str, Any]:
    return {"op": "step", "session": sid, "step": step, "position": position,
            "tensors": {"hidden": encode_tensor(hidden)}, **extra}


async def _ask(ws: aiohttp.ClientWebSocketResponse, msg: dict[str, Any]) -> dict[str, Any]:
    await ws.send_bytes(encode_message(msg))
    reply = await asyncio.wait_for(ws.receive(), 20)
    assert reply.type == aiohttp.WSMsgType.BINARY, reply
    return decode_message(reply.data, 1 << 28)


def _generate(tiny_gpt2: Sharded, miners: list[MinerProc]) -> list[int]:
    client = DecoderClient.from_shard_dir(tiny_gpt2.dir)
    route = parse_route(f"{miners[0].hop()},{miners[1].hop()}")

    async def run() -> list[int]:
        return [t async for t in client.generate(route, PROMPT, 6, Sampling())]

    return asyncio.run(run())


def test_a_stranger_cannot_step_or_close_anothers_session(tiny_gpt2: Sharded, miners: list[MinerProc]) -> None:
    """Before: any connection could inject a step into another client's session by its name (poisoning its KV
    cache) or close it."""

    async def run() -> tuple[list[str], dict[str, Any], dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.ws_connect(miners[0].url) as owner, \
                http.ws_connect(miners[0].url) as stranger:
            opened = await _ask(owner, {"op": "open", "session": "victim", "max_length": 16})
            codes = []
            for msg in (_step("victim", 0, torch.randn(1, 1, WIDTH)),
                        _step("victim", 0, torch.randn(1, 1, WIDTH), token="0" * 32),
                        {"op": "close", "session": "victim"}):
                codes.append((await _ask(stranger, msg))["code"])
            served = await _ask(owner, _step("victim", 0, torch.randn(1, 4, WIDTH)))
            # what the client's previous-hop miner does: push a step with the token; the result goes to the owner
            await stranger.send_bytes(encode_message(_step("victim", 1, torch.randn(1, 1, WIDTH), position=4,
                                                           token=opened["token"])))
            pushed = decode_message((await asyncio.wait_for(owner.receive(), 20)).data, 1 << 28)
            return codes, served, pushed

    codes, served, pushed = asyncio.run(run())
    assert codes == ["forbidden"] * 3
    assert served["op"] == "result" and served["step"] == 0  # the owner's session went on undisturbed
    assert pushed["op"] == "result" and pushed["step"] == 1  # the token the client hands on lets its miner push


def test_pushes_go_only_to_the_allow_list(tiny_gpt2: Sharded, miners: list[MinerProc]) -> None:
    """Before: a step's ``push`` URL came from whoever sent the step: the miner connected wherever it was told
    (server-side request forgery). These miners allow pushes to 127.0.0.1 only."""
    trap = socket.socket()
    trap.bind(("127.0.0.2", 0))
    trap.listen(4)
    trap.settimeout(0.2)
    hits: list[Any] = []

    def accept() -> None:
        for _ in range(15):
            try:
                hits.append(trap.accept())
            except TimeoutError:
                continue

    watcher = threading.Thread(target=accept)
    watcher.start()
    url = f"ws://127.0.0.2:{trap.getsockname()[1]}/ws"

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.ws_connect(miners[0].url) as ws:
            await _ask(ws, {"op": "open", "session": "ssrf", "max_length": 16})
            return await _ask(ws, _step("ssrf", 0, torch.randn(1, 2, WIDTH), push=[{"url": url, "session": "x"}]))

    reply = asyncio.run(run())
    watcher.join()
    trap.close()
    assert reply["op"] == "result" and reply["pushed"] is False and hits == []
    assert len(_generate(tiny_gpt2, miners)) == 6  # pushes between the allowed miners still go


def test_one_peer_cannot_hold_every_connection_or_session(tiny_gpt2: Sharded,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    """Before: one peer could hold all 256 session slots (a step every 29 s keeps each alive) on unlimited
    connections. This miner lets a peer hold 6 sockets and 3 sessions; no other peer talks to it."""
    procs = start_miners(tiny_gpt2.dir, ["0:2"], tmp_path_factory.mktemp("caps"), "--max-connections-per-peer",
                         "6", "--max-sessions-per-client", "3")

    async def run() -> tuple[str, list[str], str]:
        async with aiohttp.ClientSession() as http:
            socks = [await http.ws_connect(procs[0].url) for _ in range(6)]
            extra = await http.ws_connect(procs[0].url)
            refused = decode_message((await asyncio.wait_for(extra.receive(), 10)).data, 1 << 20)["code"]
            opens = []
            for i, ws in enumerate(socks[:4]):
                reply = await _ask(ws, {"op": "open", "session": f"hog{i}", "max_length": 8})
                opens.append(reply["op"] if reply["op"] == "opened" else reply["code"])
            for ws in socks:
                await ws.close()
            await extra.close()
            async with http.ws_connect(procs[0].url) as again:  # the hog gone, the peer is served again
                back = (await _ask(again, {"op": "open", "session": "again", "max_length": 8}))["op"]
            return refused, opens, back

    try:
        refused, opens, back = asyncio.run(run())
    finally:
        stop_miners(procs)
    assert refused == "busy"
    assert opens == ["opened", "opened", "opened", "busy"]
    assert back == "opened"


def test_an_idle_connection_without_a_session_is_closed(miners: list[MinerProc]) -> None:
    """Before: a socket that opened nothing and said nothing held its slot forever."""

    async def run() -> aiohttp.WSMsgType:
        async with aiohttp.ClientSession() as http, http.ws_connect(miners[0].url) as ws:
            msg = await asyncio.wait_for(ws.receive(), 30)
            return msg.type

    assert asyncio.run(run()) in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


def test_a_step_larger_than_its_sessions_shape_allows_is_refused(miners: list[MinerProc]) -> None:
    """A session of batch 1 and 8 tokens takes steps of about 8 x 64 floats; a 6 MB step is refused before its
    frame is decoded (before: decoded, up to the 64 MB tensor limit, and only then refused)."""

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.ws_connect(miners[0].url) as ws:
            await _ask(ws, {"op": "open", "session": "small", "max_length": 8})
            big = {"op": "step", "session": "small", "step": 0, "position": 0,
                   "tensors": {"hidden": encode_tensor(torch.randn(1, 8, WIDTH))}, "padding": b"\0" * (6 << 20)}
            return await _ask(ws, big)

    reply = asyncio.run(run())
    assert reply["op"] == "error" and reply["code"] == "too_large", reply


def test_an_encoder_miner_refuses_a_sequence_past_its_max_length(minilm: Sharded,
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """Before: an encoder stage ran any sequence length it was sent (its sessions say max_length 1)."""
    procs = start_miners(minilm.dir, ["1:2"], tmp_path_factory.mktemp("enc"), "--max-length", "32")
    try:
        width = int(minilm.model.config.hidden_size)

        def step(tokens: int) -> dict[str, Any]:
            return {"op": "step", "session": "enc", "step": 0, "position": 0,
                    "tensors": {"hidden": encode_tensor(torch.randn(1, tokens, width)),
                                "attention_mask": encode_tensor(torch.ones(1, tokens, dtype=torch.int64))}}

        async def run() -> list[dict[str, Any]]:
            async with aiohttp.ClientSession() as http, http.ws_connect(procs[0].url, max_msg_size=1 << 26) as ws:
                await _ask(ws, {"op": "open", "session": "enc", "max_length": 1, "batch": 1})
                return [await _ask(ws, step(n)) for n in (40, 200, 16)]

        just_past, far_past, within = asyncio.run(run())
    finally:
        stop_miners(procs)
    assert just_past["op"] == "error" and just_past["code"] == "past_max_length", just_past
    assert far_past["op"] == "error" and far_past["code"] == "too_large", far_past  # refused before decoding
    assert within["op"] == "result", within
