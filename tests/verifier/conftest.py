"""The verifier's tests share one tiny Llama, sharded into two blocks (built once a session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from nesachain.shard_exec.shard_files import write_shards
    from nesachain.shard_exec.sources import Source

    torch.manual_seed(11)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=256, max_position_embeddings=128)
    out = tmp_path_factory.mktemp("replay") / "tiny-llama"
    write_shards(Source("tiny-llama", LlamaForCausalLM(cfg).eval(), None), out, 2)
    return out
