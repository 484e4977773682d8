"""Fixtures that the tests of several packages share (shard_exec and its server, the client, the CLI):
sharded models, each built once a session, and miners started as real processes on 127.0.0.1.

Their helpers stay in tests/shard_exec: ``shard_exec_support`` (miner processes, the ``Sharded`` bundle)
and ``shard_exec_toy_models`` (a model defined only in the tests, which the miners and ``nesad model
shard`` import by name, ``shard_exec_toy_models:build_toy``). That folder goes on sys.path here: the tests
run with ``--import-mode=importlib``. torch and the models are imported inside the fixtures, so the
chain's tests never load them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARD_EXEC_TESTS = Path(__file__).resolve().parent / "shard_exec"
if str(SHARD_EXEC_TESTS) not in sys.path:
    sys.path.insert(0, str(SHARD_EXEC_TESTS))

from shard_exec_support import MinerProc, Sharded, start_miners, stop_miners  # noqa: E402


@pytest.fixture(scope="session")
def shard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)  # as each miner runs (--threads 1); tests/shard_exec/conftest.py does it at import
    return tmp_path_factory.mktemp("shards")


def _shard(shard_root: Path, name: str, source: str, blocks: int, *args: str, tokenizer: bool = True) -> Sharded:
    from nesachain.shard_exec.shard_files import write_shards
    from nesachain.shard_exec.sources import load_source

    src = load_source(source, *args)
    d = shard_root / name
    return Sharded(d, write_shards(src, d, blocks), src.model, src.tokenizer if tokenizer else None)


@pytest.fixture(scope="session")
def smol(shard_root: Path) -> Sharded:
    return _shard(shard_root, "smollm2", "smollm2-135m", 3)


@pytest.fixture(scope="session")
def minilm(shard_root: Path) -> Sharded:
    return _shard(shard_root, "minilm", "all-minilm-l6-v2", 3)


@pytest.fixture(scope="session")
def effnet(shard_root: Path) -> Sharded:
    return _shard(shard_root, "effnet", "efficientnet-lite0", 3, tokenizer=False)


@pytest.fixture(scope="session")
def toy(shard_root: Path) -> Sharded:
    return _shard(shard_root, "toy", "shard_exec_toy_models:build_toy", 3, "2,32", tokenizer=False)


@pytest.fixture(scope="session")
def tiny_gpt2(shard_root: Path) -> Sharded:
    """A randomly initialised 4-layer GPT-2 saved as an HF folder, then sharded from that folder."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(7)
    cfg = GPT2Config(n_layer=4, n_embd=64, n_head=4, vocab_size=256, n_positions=128)
    model = GPT2LMHeadModel(cfg).eval()
    hf_dir = shard_root / "tiny-gpt2-hf"
    model.save_pretrained(str(hf_dir))
    return _shard(shard_root, "tiny-gpt2", str(hf_dir), 2, tokenizer=False)


@pytest.fixture(scope="session")
def miner_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("miner-logs")


@pytest.fixture(scope="session")
def smol_miners(smol: Sharded, miner_logs: Path) -> Iterator[list[MinerProc]]:
    """SmolLM2-135M's three blocks on three miners, shared by the client's and the CLI's tests (no test
    changes their state: sessions are opened and closed by each)."""
    miners = start_miners(smol.dir, ["0:1", "1:2", "2:3"], miner_logs)
    yield miners
    stop_miners(miners)


@pytest.fixture(scope="session")
def gpt2_miners(tiny_gpt2: Sharded, miner_logs: Path) -> Iterator[list[MinerProc]]:
    """The tiny GPT-2's blocks 0:1 and 1:2 (a route), and 0:2 with a 1 MiB KV budget, 1 MiB tensors and a
    64-token max length (the server's error and step-log tests use that one)."""
    miners = start_miners(tiny_gpt2.dir, ["0:1", "1:2", "0:2"], miner_logs, "--memory-budget-mb", "1",
                          "--max-tensor-mb", "1", "--max-length", "64")
    yield miners
    stop_miners(miners)
