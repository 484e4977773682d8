"""MiniLM (encoder), EfficientNet-Lite0 and a test-only model, auto-partitioned and served by real miners."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import torch
from shard_exec_support import MinerProc, Sharded, start_miners, stop_miners

from nesachain.client import EncoderClient, GraphClient, parse_route
from nesachain.models import mean_pool

SENTENCES = ["A cat sits on the mat.", "The stock market fell sharply today after the announcement.",
             "Kittens like to sleep on warm rugs.", "short"]


@pytest.fixture(scope="module")
def minilm_miners(minilm: Sharded, miner_logs) -> Iterator[list[MinerProc]]:  # type: ignore[no-untyped-def]
    miners = start_miners(minilm.dir, ["0:1", "1:2", "2:3"], miner_logs)
    yield miners
    stop_miners(miners)


@pytest.fixture(scope="module")
def graph_miners(effnet: Sharded, toy: Sharded, miner_logs) -> Iterator[dict[str, list[MinerProc]]]:  # type: ignore[no-untyped-def]
    eff = start_miners(effnet.dir, ["0:1", "1:3"], miner_logs)
    toys = start_miners(toy.dir, ["0:2", "2:3"], miner_logs)
    yield {"effnet": eff, "toy": toys}
    stop_miners(eff + toys)


def test_minilm_route_hidden_states_match_single_process(minilm: Sharded, minilm_miners: list[MinerProc]) -> None:
    client = EncoderClient.from_shard_dir(minilm.dir)
    route = parse_route(",".join(m.hop() for m in minilm_miners))
    batch = minilm.tokenizer(SENTENCES, padding=True, return_tensors="pt")

    async def run() -> torch.Tensor:
        from nesachain.client import RemotePipeline

        pipe = await RemotePipeline.create(route, 1, len(SENTENCES))
        try:
            return await client.hidden(pipe, batch)
        finally:
            await pipe.close()

    hidden = asyncio.run(run())
    with torch.inference_mode():
        ref = minilm.model(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    err = (hidden - ref)[mask].abs().max().item()
    print(f"\nMiniLM 3 miners fp32: max |hidden - local| = {err:.3e} (non-padding positions)")
    assert err <= 1e-4
    emb = asyncio.run(client.embed(route, SENTENCES))
    ref_emb = mean_pool(ref, batch["attention_mask"])
    assert (emb - ref_emb).abs().max().item() <= 1e-5
    assert float(emb[0] @ emb[2]) > float(emb[0] @ emb[1])


def _graph_forward(shards: Sharded, miners: list[MinerProc], x: torch.Tensor) -> torch.Tensor:
    client = GraphClient.from_shard_dir(shards.dir)
    route = parse_route(",".join(m.hop() for m in miners))

    async def run() -> torch.Tensor:
        pipe = await client.open(route, batch=x.shape[0])
        try:
            return await client.forward(pipe, x)
        finally:
            await pipe.close()

    return asyncio.run(run())


def test_effnet_auto_partitioned_route_matches_unsharded(effnet: Sharded,
                                                         graph_miners: dict[str, list[MinerProc]]) -> None:
    g = effnet.manifest["graph"]
    print(f"\nEfficientNet-Lite0 stages at units {g['bounds']} of {len(g['units'])}, "
          f"cut bytes {g['cut_bytes'][1:-1]}")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    out = _graph_forward(effnet, graph_miners["effnet"], x)
    with torch.inference_mode():
        ref = effnet.model(x)
    err = (out - ref).abs().max().item()
    print(f"EfficientNet-Lite0 over 2 miners (3 stages): max |logits - local| = {err:.3e}")
    assert err <= 1e-4
    assert torch.equal(out.argmax(-1), ref.argmax(-1))


def test_test_only_model_auto_partitioned_route_matches_unsharded(toy: Sharded,
                                                                  graph_miners: dict[str, list[MinerProc]]) -> None:
    g = toy.manifest["graph"]
    crossing = [g["live"][str(b)] for b in g["bounds"][1:-1]]
    assert all(len(names) >= 2 for names in crossing)  # the skip connection and the batch size cross
    x = torch.randn(5, 32, generator=torch.Generator().manual_seed(4))
    out = _graph_forward(toy, graph_miners["toy"], x)
    with torch.inference_mode():
        ref = toy.model(x)
    assert out.shape == (5, 10)
    assert (out - ref).abs().max().item() <= 1e-5
