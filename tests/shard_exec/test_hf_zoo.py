"""The model-agnostic adapter (``nesachain.shard_exec.hf_trace``, ``hf_stages``, ``hf_heads``) on tiny random-init
models of many transformers architectures (``hf_zoo.py``): each is saved as a Hugging Face folder, sharded
into 3 blocks by ``write_shards`` with no table of model families, served by three miner servers over the
WebSocket protocol (in this process, one set per model; a few also by real miner processes, with pushes
between miners), and its greedy tokens (or an encoder's outputs) come out identical to the whole model's in
fp32, 16 new tokens. Architectures that cannot be cut are refused with the reason."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch
from hf_zoo import ARCHS, REFUSED, Arch, save
from shard_exec_support import start_miners, stop_miners

from nesachain.client import parse_route
from nesachain.client.models import DecoderClient, EncoderClient, Seq2SeqClient
from nesachain.client.route import Route
from nesachain.shard_exec.errors import PartitionError
from nesachain.shard_exec.hf_shard import example_ids
from nesachain.shard_exec.reference import local_generate, local_generate_seq2seq
from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.server import MinerServer
from nesachain.shard_exec.shard_files import write_shards
from nesachain.shard_exec.sources import load_source

NEW_TOKENS = 16


def _covers(arch: Arch, manifest: dict[str, Any], model: Any) -> None:
    """What the architecture is listed as covering, where its manifest or model can show it."""
    plan = manifest["hf"]["plan"]
    dec = plan["stacks"][-1]
    heads = getattr(model.config, "num_attention_heads", None)
    if "sliding" in arch.covers:
        assert any(c["window"] for c in dec["cache"])
    if "mqa" in arch.covers:
        assert {c["k"][0] for c in dec["cache"]} == {1}
    if "gqa" in arch.covers:
        assert all(1 < c["k"][0] < heads for c in dec["cache"])
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is model.get_input_embeddings().weight
    if "tied" in arch.covers:
        assert tied and manifest["hf"]["aliases"]  # the head's weight stored once
    if "untied" in arch.covers:
        assert not tied
    if "moe" in arch.covers:
        layer = model.get_submodule(dec["path"])[0]
        experts = (torch.nn.ModuleList, torch.nn.ModuleDict)
        assert any(isinstance(m, experts) and len(m) >= 4 for m in layer.modules())  # the experts, in each layer


async def _with_servers(shard_dir: Path, run: Any) -> Any:
    """Three miner servers (blocks 0:1, 1:2, 2:3) in this process on loopback, a relaying route over them."""
    servers: list[MinerServer] = []
    try:
        for i in range(3):
            server = await MinerServer.create(MinerConfig(shard_dir, i, i + 1, probe_steps=1, warm_ahead=False))
            await server.start()
            servers.append(server)
        route = parse_route(",".join(f"127.0.0.1:{s.port}@{i}:{i + 1}" for i, s in enumerate(servers)), push=False)
        return await run(route)
    finally:
        for server in servers:
            await server.stop()


async def _generate(kind: str, shard_dir: Path, route: Route, ids: torch.Tensor) -> list[int]:
    if kind == "decoder":
        return [t async for t in DecoderClient.from_shard_dir(shard_dir).generate(route, ids, NEW_TOKENS)]
    return [t async for t in Seq2SeqClient.from_shard_dir(shard_dir).generate(route, ids, NEW_TOKENS)]


def _expected(kind: str, model: Any, ids: torch.Tensor) -> list[int]:
    if kind == "decoder":
        return local_generate(model, ids, NEW_TOKENS)[0]
    from nesachain.shard_exec.hf_trace import decoder_start

    return local_generate_seq2seq(model, ids, decoder_start(model.config), NEW_TOKENS)


def _encoder_batch(ids: torch.Tensor) -> dict[str, torch.Tensor]:
    ids = torch.cat([ids, ids.flip(1)], dim=0)  # (2, T)
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0  # the second one padded
    return {"input_ids": ids, "attention_mask": mask}


async def _encode(shard_dir: Path, route: Route, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    from nesachain.client import RemotePipeline

    client = EncoderClient.from_shard_dir(shard_dir)
    pipe = await RemotePipeline.create(route, 1, 2)
    try:
        return await client.hidden(pipe, batch)
    finally:
        await pipe.close()


def _shard(name: str, tmp_path: Path) -> tuple[Arch, Any, dict[str, Any], Path, torch.Tensor]:
    arch = ARCHS[name]
    src = load_source(str(save(arch, tmp_path / name)))
    assert src.kind == arch.kind
    shard_dir = tmp_path / "shards"
    manifest = write_shards(src, shard_dir, 3)  # checked against the whole model before it is written
    assert manifest["architecture"] == f"hf-{arch.kind}" and manifest["n_blocks"] == 3
    _covers(arch, manifest, src.model)
    return arch, src.model, manifest, shard_dir, example_ids(src.model.config, 7, seed=5)


@pytest.mark.parametrize("name", list(ARCHS))
def test_hf_zoo_architecture_served_by_three_miners_is_identical_to_the_whole_model(name: str,
                                                                                    tmp_path: Path) -> None:
    arch, model, _, shard_dir, ids = _shard(name, tmp_path)
    if arch.kind == "encoder":
        batch = _encoder_batch(ids)
        got = asyncio.run(_with_servers(shard_dir, lambda route: _encode(shard_dir, route, batch)))
        with torch.inference_mode():
            ref = model(**batch)[0]
        keep = batch["attention_mask"].bool()
        assert got.shape == ref.shape
        assert (got - ref)[keep].abs().max().item() <= 1e-5 * max(1.0, ref.abs().max().item())
        return
    got = asyncio.run(_with_servers(shard_dir, lambda route: _generate(arch.kind, shard_dir, route, ids)))
    expected = _expected(arch.kind, model, ids)
    assert got == expected, f"{name}: {got} != {expected}"


def test_hf_zoo_real_miner_processes_push_and_serve_a_window_a_moe_and_an_encoder_decoder(
        tmp_path: Path, miner_logs: Path) -> None:
    shards = {name: _shard(name, tmp_path / name) for name in ("mistral", "mixtral", "bart")}
    miners = {name: start_miners(s[3], ["0:1", "1:2", "2:3"], miner_logs) for name, s in shards.items()}
    try:
        for name, (arch, model, _, shard_dir, ids) in shards.items():
            route = parse_route(",".join(m.hop() for m in miners[name]))  # each miner pushes to the next
            got = asyncio.run(_generate(arch.kind, shard_dir, route, ids))
            assert got == _expected(arch.kind, model, ids), name
    finally:
        stop_miners([m for ms in miners.values() for m in ms])


@pytest.mark.parametrize("name", list(REFUSED))
def test_hf_zoo_architecture_that_cannot_be_cut_is_refused_with_the_reason(name: str, tmp_path: Path) -> None:
    arch, reason = REFUSED[name]
    src = load_source(str(save(arch, tmp_path / name)))
    with pytest.raises(PartitionError, match=reason):
        write_shards(src, tmp_path / "shards", 3)
    assert not (tmp_path / "shards").exists()
