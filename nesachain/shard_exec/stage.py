"""The interface between a miner and the compute it serves (one contiguous range of blocks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

__all__ = ["StageRunner", "Tensors", "Values"]

Tensors = dict[str, torch.Tensor]
Values = dict[str, Any]


class StageRunner(Protocol):
    """Runs blocks ``[start, end)`` of a model on named tensors; keeps per-session state if any."""

    kind: str  # "decoder" (has a KV cache), "encoder" or "graph"
    param_bytes: int

    def session_bytes(self, batch: int, max_length: int) -> int:
        """Memory one session of this shape reserves (its KV cache; 0 when stateless)."""
        ...

    def new_state(self, batch: int, max_length: int) -> Any:
        """Fresh per-session state (a KV cache, or None)."""
        ...

    def n_tokens(self, tensors: Tensors) -> int:
        """Tokens a step adds to the session (0 for stateless stages)."""
        ...

    def run(self, tensors: Tensors, values: Values, position: int, state: Any) -> tuple[Tensors, Values]:
        """Validate (``WireError`` with bad_shape/bad_dtype/...) then compute one step."""
        ...

    def probe(self) -> tuple[Tensors, Values, int]:
        """A representative one-token (or one-sample) input, for the throughput measured at start."""
        ...

    def warm(self, stop: Callable[[], bool] | None = None) -> None:
        """A small piece of a step's compute on scratch input, touching no session's state (run just before
        an expected decode step, see ``miner.warm``); a no-op where there is no decode loop. With ``stop``,
        it returns early, between two operations, once ``stop()`` is true (a step has come)."""
        ...
