"""Next-token choice: greedy, or seeded sampling that replays identically for the same seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nesachain.shard_exec.errors import ShardExecError

__all__ = ["Sampling", "choose"]


@dataclass(frozen=True)
class Sampling:
    """``temperature == 0`` is greedy; otherwise sample with top-k/top-p from a generator seeded by ``seed``."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ShardExecError(f"temperature must be a finite number >= 0 (0: greedy), got {self.temperature}")
        if self.top_k < 0:
            raise ShardExecError(f"top_k must be >= 0 (0: no top-k cut), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ShardExecError(f"top_p must be in (0, 1], got {self.top_p}")
        if not -(1 << 63) <= self.seed < 1 << 64:  # what torch.Generator.manual_seed takes
            raise ShardExecError(f"seed must fit in 64 bits, got {self.seed}")

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)


def choose(logits: torch.Tensor, sampling: Sampling, gen: torch.Generator) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids."""
    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / sampling.temperature  # (B, V)
    if sampling.top_k > 0:
        kth = torch.topk(scores, min(sampling.top_k, scores.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)  # (B, V)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop = cum - sorted_scores.softmax(dim=-1) > sampling.top_p  # keep the token that crosses top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)
