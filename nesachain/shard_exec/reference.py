"""Single-process references that remote results are checked against (tests, benchmarks, verifiers)."""

from __future__ import annotations

import time
from typing import Any

import torch

from nesachain.shard_exec.sampling import Sampling, choose

__all__ = ["local_generate", "local_generate_seq2seq"]


@torch.inference_mode()
def local_generate(model: Any, ids: torch.Tensor, max_new_tokens: int,
                   sampling: Sampling = Sampling(),  # noqa: B008
                   token_times: list[float] | None = None) -> tuple[list[int], float, float]:
    """Generate with the whole model and its own KV cache: (tokens, time to first token s, total s);
    ``token_times`` (if given) gets ``time.perf_counter()`` as each token is chosen."""
    gen = sampling.generator()
    stamps = token_times if token_times is not None else []
    t0 = time.perf_counter()
    out = model(ids, use_cache=True)
    past = out.past_key_values
    tok = choose(out.logits[:, -1], sampling, gen)  # (1,)
    ttft = time.perf_counter() - t0
    stamps.append(t0 + ttft)
    tokens = [int(tok[0])]
    for _ in range(max_new_tokens - 1):
        out = model(tok.view(1, 1), past_key_values=past, use_cache=True)
        past = out.past_key_values
        tok = choose(out.logits[:, -1], sampling, gen)
        stamps.append(time.perf_counter())
        tokens.append(int(tok[0]))
    return tokens, ttft, time.perf_counter() - t0


@torch.inference_mode()
def local_generate_seq2seq(model: Any, src: torch.Tensor, decoder_start: int, max_new_tokens: int,
                           sampling: Sampling = Sampling()  # noqa: B008
                           ) -> list[int]:
    """Generate with a whole encoder-decoder and its own cache from a (1, S) source: the new tokens (the
    decoder's start token not among them)."""
    gen = sampling.generator()
    mask = torch.ones_like(src)
    enc = model.get_encoder()(input_ids=src, attention_mask=mask)
    tok = torch.tensor([decoder_start])
    past = None
    tokens: list[int] = []
    for _ in range(max_new_tokens):
        out = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=tok.view(1, 1),
                    past_key_values=past, use_cache=True)
        past = out.past_key_values
        tok = choose(out.logits[:, -1], sampling, gen)
        tokens.append(int(tok[0]))
    return tokens
