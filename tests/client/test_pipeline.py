"""The client's pipeline of miners (``nesachain.client.pipeline``) failing over to an alternate: after a kill -9
of a miner in the middle of a 64-token generation (the alternate takes over after a replay), after a
SIGTERM, and from a miner with other weights that the block hashes make it refuse; with no alternate left,
a RouteError."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import torch
from shard_exec_support import MinerProc, Sharded, start_miners, stop_miners

from nesachain.client import DecoderClient, GenerationStats, StandIn, parse_route
from nesachain.shard_exec.reference import local_generate

PROMPT = "<|im_start|>user\nTell me about the history of Rome.<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.slow
@pytest.mark.parametrize("push", [True, False], ids=["push", "relay"])
def test_failover_kill9_mid_generation_gives_identical_tokens(smol: Sharded, miner_logs, push: bool) -> None:  # type: ignore[no-untyped-def]
    miners = start_miners(smol.dir, ["0:1", "1:2", "1:2", "2:3"], miner_logs)
    try:
        first, victim, alternate, last = miners
        route = parse_route(",".join(m.hop() for m in (first, victim, last)), alternates=[alternate.hop()],
                            push=push)
        ids = smol.tokenizer(PROMPT, add_special_tokens=False, return_tensors="pt").input_ids
        expected, _, _ = local_generate(smol.model, ids, 64)
        client = DecoderClient.from_shard_dir(smol.dir)
        stats = GenerationStats()

        async def run() -> list[int]:
            got = []
            async for t in client.generate(route, ids, 64, stats=stats):
                got.append(t)
                if len(got) == 24:
                    victim.kill(signal.SIGKILL)
            return got

        got = asyncio.run(run())
        assert victim.proc.returncode == -signal.SIGKILL
        assert len(stats.recoveries) == 1
        ev = stats.recoveries[0]
        print(f"\nkill -9 of miner {victim.blocks} after 24 tokens ({'push' if push else 'relay'}): "
              f"recovered on {ev.new_url} in {ev.seconds * 1000:.0f} ms, replaying {ev.replayed_steps} steps; "
              f"generation total {stats.total_s:.2f} s")
        assert ev.hop == 1 and ev.new_url == alternate.url
        # what a chain session reports so that the alternate is paid for tokens 24..63
        assert ev.step == 24 and stats.stand_ins == [StandIn(1, alternate.url, 1, 24)]
        assert got == expected
    finally:
        stop_miners(miners)


def test_failover_without_alternate_raises_route_error(smol: Sharded, miner_logs) -> None:  # type: ignore[no-untyped-def]
    from nesachain.client.errors import RouteError

    miners = start_miners(smol.dir, ["0:3"], miner_logs)
    try:
        route = parse_route(miners[0].hop())
        client = DecoderClient.from_shard_dir(smol.dir)
        ids = torch.tensor([[1, 2, 3]])

        async def run() -> list[int]:
            got = []
            async for t in client.generate(route, ids, 8, timeout=10):
                got.append(t)
                if len(got) == 2:
                    miners[0].kill(signal.SIGKILL)
            return got

        with pytest.raises(RouteError, match="no live miner"):
            asyncio.run(run())
    finally:
        stop_miners(miners)


def test_sigterm_stops_a_miner_promptly_mid_session_and_the_client_fails_over(tiny_gpt2: Sharded,
                                                                                miner_logs) -> None:  # type: ignore[no-untyped-def]
    """A stopping miner closes its sockets, including the push socket of a peer that keeps running
    (aiohttp would otherwise wait for it for a minute); the client takes the alternate."""
    miners = start_miners(tiny_gpt2.dir, ["0:1", "1:2", "1:2"], miner_logs)
    try:
        first, victim, alternate = miners
        route = parse_route(",".join(m.hop() for m in (first, victim)), alternates=[alternate.hop()], push=True)
        ids = torch.tensor([[5, 17, 99, 3, 42, 8]])
        expected, _, _ = local_generate(tiny_gpt2.model, ids, 24)
        client = DecoderClient.from_shard_dir(tiny_gpt2.dir)
        stats = GenerationStats()
        took = 0.0

        async def run() -> list[int]:
            nonlocal took
            got = []
            async for t in client.generate(route, ids, 24, stats=stats):
                got.append(t)
                if len(got) == 8:  # first -> victim is an open push socket now
                    t0 = time.monotonic()
                    os.kill(victim.proc.pid, signal.SIGTERM)
                    await asyncio.to_thread(victim.proc.wait, 30)  # the client's loop keeps answering meanwhile
                    took = time.monotonic() - t0
            return got

        assert asyncio.run(run()) == expected
        assert victim.proc.returncode == 0 and took < 10, took
        assert [ev.new_url for ev in stats.recoveries] == [alternate.url]
        # the alternate now holds a push socket from ``first``, which keeps running: it stops promptly too
        t0 = time.monotonic()
        os.kill(alternate.proc.pid, signal.SIGTERM)
        alternate.proc.wait(timeout=30)
        assert alternate.proc.returncode == 0 and time.monotonic() - t0 < 10
    finally:
        stop_miners(miners)


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
