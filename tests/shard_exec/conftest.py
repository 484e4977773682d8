"""Session fixtures: shard folders built once, and miners started as real processes on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nesachain.shard_exec.shard_files import write_shards
from nesachain.shard_exec.sources import load_source

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # --import-mode=importlib: make the support and toy-model modules importable
    sys.path.insert(0, str(HERE))

from shard_exec_support import MinerProc, Sharded, start_miners, stop_miners  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shards")


@pytest.fixture(scope="session")
def smol(shard_root: Path) -> Sharded:
    src = load_source("smollm2-135m")
    d = shard_root / "smollm2"
    return Sharded(d, write_shards(src, d, 3), src.model, src.tokenizer)


@pytest.fixture(scope="session")
def minilm(shard_root: Path) -> Sharded:
    src = load_source("all-minilm-l6-v2")
    d = shard_root / "minilm"
    return Sharded(d, write_shards(src, d, 3), src.model, src.tokenizer)


@pytest.fixture(scope="session")
def effnet(shard_root: Path) -> Sharded:
    src = load_source("efficientnet-lite0")
    d = shard_root / "effnet"
    return Sharded(d, write_shards(src, d, 3), src.model, None)


@pytest.fixture(scope="session")
def toy(shard_root: Path) -> Sharded:
    src = load_source("shard_exec_toy_models:build_toy", "2,32")
    d = shard_root / "toy"
    return Sharded(d, write_shards(src, d, 3), src.model, None)


@pytest.fixture(scope="session")
def tiny_gpt2(shard_root: Path) -> Sharded:
    """A randomly initialised 4-layer GPT-2 saved as an HF folder, then sharded from that folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(7)
    cfg = GPT2Config(n_layer=4, n_embd=64, n_head=4, vocab_size=256, n_positions=128)
    model = GPT2LMHeadModel(cfg).eval()
    hf_dir = shard_root / "tiny-gpt2-hf"
    model.save_pretrained(str(hf_dir))
    src = load_source(str(hf_dir))
    d = shard_root / "tiny-gpt2"
    return Sharded(d, write_shards(src, d, 2), src.model, None)


@pytest.fixture(scope="module")
def miner_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("miner-logs")


@pytest.fixture(scope="module")
def smol_miners(smol: Sharded, miner_logs: Path) -> Iterator[list[MinerProc]]:
    miners = start_miners(smol.dir, ["0:1", "1:2", "2:3"], miner_logs)
    yield miners
    stop_miners(miners)
