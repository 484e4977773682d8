"""A preallocated, bounded key/value cache for one session on one block range.

It speaks the small part of transformers' ``Cache`` protocol that decoder layers use
(``update(k, v, layer_idx, cache_kwargs) -> (k_all, v_all)``), with layer indices global to the
model; ``layer_start`` maps them to local slots. Buffers are allocated on the first step and never
grow, so a session's memory is known when it opens (``nbytes``).
"""

from __future__ import annotations

from typing import Any

import torch

from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode

__all__ = ["BlockKVCache"]


class BlockKVCache:
    """Keys and values of layers ``[layer_start, layer_start + n_layers)`` for up to ``max_length`` tokens."""

    def __init__(
        self,
        layer_start: int,
        n_layers: int,
        batch: int,
        kv_heads: int,
        head_dim: int,
        max_length: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.layer_start = layer_start
        self.n_layers = n_layers
        self.shape = (batch, kv_heads, max_length, head_dim)  # (B, H_kv, T_max, D)
        self.dtype = dtype
        self.max_length = max_length
        self.length = 0  # tokens committed
        self._pending = 0  # tokens of the step being computed
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []

    @staticmethod
    def bytes_for(n_layers: int, batch: int, kv_heads: int, head_dim: int, max_length: int,
                  dtype: torch.dtype = torch.float32) -> int:
        """Memory the buffers of such a cache take."""
        item = torch.empty((), dtype=dtype).element_size()
        return 2 * n_layers * batch * kv_heads * max_length * head_dim * item

    @property
    def nbytes(self) -> int:
        return self.bytes_for(self.n_layers, self.shape[0], self.shape[1], self.shape[3], self.max_length,
                              self.dtype)

    def begin(self, position: int, n_tokens: int) -> None:
        """Start a step of ``n_tokens`` at ``position``; refuses gaps and overflow before any compute."""
        if position != self.length:
            raise WireError(ErrorCode.OUT_OF_ORDER, f"position {position} but the cache holds {self.length}")
        if self.length + n_tokens > self.max_length:
            raise WireError(ErrorCode.PAST_MAX_LENGTH,
                            f"{self.length} + {n_tokens} tokens exceed max_length {self.max_length}")
        if not self._keys:
            self._keys = [torch.zeros(self.shape, dtype=self.dtype) for _ in range(self.n_layers)]
            self._values = [torch.zeros(self.shape, dtype=self.dtype) for _ in range(self.n_layers)]
        self._pending = n_tokens

    def commit(self) -> None:
        """The step succeeded: its tokens become part of the cache."""
        self.length += self._pending
        self._pending = 0

    def rollback(self) -> None:
        """The step failed: forget what it wrote (it lies beyond ``length`` and is overwritten later)."""
        self._pending = 0

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int,
               cache_kwargs: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's (B, H_kv, T, D) keys/values and return all of them up to now."""
        slot = layer_idx - self.layer_start
        t = key.shape[2]
        end = self.length + t
        self._keys[slot][:, :, self.length : end] = key
        self._values[slot][:, :, self.length : end] = value
        return self._keys[slot][:, :, :end], self._values[slot][:, :, :end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def release(self) -> None:
        """Drop the buffers now rather than at garbage collection."""
        self._keys.clear()
        self._values.clear()
