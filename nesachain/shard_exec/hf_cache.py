"""One session's key/value cache on one stage: transformers' own ``DynamicCache`` (and ``EncoderDecoderCache``
for a decoder with cross-attention), holding keys and values only for the layers the stage runs.

The model's own forward asks its cache how many tokens it has seen (to number positions) and how large
each kind of layer's mask must be (full or sliding window), usually of layer 0, which another stage may
hold. So each layer of the model gets a cache layer: the stage's own are transformers' ``DynamicLayer`` or
``DynamicSlidingWindowLayer`` (as the model's own cache has them, recorded when it was sharded); every
other one is a *mirror* that stores nothing and answers those questions as if it had seen every token
before the current step (``seen``).

Bounded as a session must be: a step starts at the position the cache holds and may not pass
``max_length`` (checked before any compute, ``begin``); a step that fails leaves the cache as it was
(``rollback``: a ``DynamicLayer`` replaces its tensors rather than writing into them, so keeping the old
references is enough); the memory a session may take is known when it opens (``bytes_for``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import (
    DynamicCache,
    DynamicLayer,
    DynamicSlidingWindowLayer,
    EncoderDecoderCache,
)

from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode
from nesachain.shard_exec.errors import ManifestError

__all__ = ["KVLayout", "StageCache"]


@dataclass(frozen=True)
class KVLayout:
    """One layer's cache as the model keeps it: full or sliding (``window``), keys and values as
    (heads, head_dim) each."""

    window: int | None
    k: tuple[int, int]
    v: tuple[int, int]

    def bytes_per_token(self, itemsize: int = 4) -> int:
        return (self.k[0] * self.k[1] + self.v[0] * self.v[1]) * itemsize

    def to_json(self) -> dict[str, Any]:
        return {"window": self.window, "k": list(self.k), "v": list(self.v)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KVLayout:
        try:
            window = d["window"]
            k, v = (int(d["k"][0]), int(d["k"][1])), (int(d["v"][0]), int(d["v"][1]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ManifestError(f"a cache layout entry is malformed: {d!r}") from exc
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ManifestError(f"a cache layout entry has a bad window: {d!r}")
        return cls(window, k, v)


class _Mirror(DynamicLayer):
    """A full-attention layer another stage holds: no keys, ``seen`` tokens."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.seen = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor,
               cache_kwargs: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError("a layer this stage does not hold wrote to its cache")

    def get_seq_length(self) -> int:
        return self.seen


class _SlidingMirror(DynamicSlidingWindowLayer):
    """A sliding-window layer another stage holds: its mask sizes follow ``cumulative_length``."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor,
               cache_kwargs: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError("a layer this stage does not hold wrote to its cache")


def _layers(layout: list[KVLayout], held: range) -> list[Any]:
    out: list[Any] = []
    for i, lay in enumerate(layout):
        if lay.window is None:
            out.append(DynamicLayer() if i in held else _Mirror())  # type: ignore[no-untyped-call]
        else:
            out.append(DynamicSlidingWindowLayer(lay.window) if i in held else _SlidingMirror(lay.window))
    return out


def _dynamic(layers: list[Any]) -> DynamicCache:
    cache = DynamicCache()
    cache.layers = layers
    cache.layer_class_to_replicate = None
    return cache


class StageCache:
    """Keys and values of layers ``held`` (of a model whose cache is ``layout``) for one session of ``batch``
    sequences up to ``max_length`` tokens; ``cross``: the layout of a decoder's cross-attention cache."""

    def __init__(self, layout: list[KVLayout], held: range, batch: int, max_length: int,
                 cross: list[KVLayout] | None = None) -> None:
        self.layout, self.held, self.batch, self.max_length = layout, held, batch, max_length
        self.length = 0  # tokens committed
        self._self = _dynamic(_layers(layout, held))
        self._mirrors = [layer for i, layer in enumerate(self._self.layers) if i not in held]
        self._cross = (_dynamic([DynamicLayer() for _ in cross])  # type: ignore[no-untyped-call]
                       if cross is not None else None)
        self.cache: Any = (EncoderDecoderCache(self._self, self._cross) if self._cross is not None
                           else self._self)
        self._saved: list[tuple[Any, ...]] = []
        self._saved_updated: dict[int, bool] = {}
        self._pending = 0

    @staticmethod
    def bytes_for(layout: list[KVLayout], held: range, batch: int, max_length: int,
                  cross: list[KVLayout] | None = None, itemsize: int = 4) -> int:
        """The most memory the held layers' keys and values take for such a session."""
        total = 0
        for i in held:
            lay = layout[i]
            tokens = max_length if lay.window is None else min(max_length, lay.window)
            total += lay.bytes_per_token(itemsize) * tokens
            if cross is not None:
                total += cross[i].bytes_per_token(itemsize) * max_length
        return total * batch

    def begin(self, position: int, n_tokens: int) -> None:
        """Start a step of ``n_tokens`` at ``position``; refuses gaps and overflow before any compute."""
        if position != self.length:
            raise WireError(ErrorCode.OUT_OF_ORDER, f"position {position} but the cache holds {self.length}")
        if self.length + n_tokens > self.max_length:
            raise WireError(ErrorCode.PAST_MAX_LENGTH,
                            f"{self.length} + {n_tokens} tokens exceed max_length {self.max_length}")
        self._mirror_at(position)
        self._pending = n_tokens
        caches = [self._self] + ([self._cross] if self._cross is not None else [])
        self._saved = [(layer, layer.keys, layer.values, layer.is_initialized,
                        getattr(layer, "cumulative_length", None), getattr(layer, "dtype", None),
                        getattr(layer, "device", None))
                       for c in caches for i, layer in enumerate(c.layers) if i in self.held]
        if isinstance(self.cache, EncoderDecoderCache):
            self._saved_updated = dict(self.cache.is_updated)

    def _mirror_at(self, position: int) -> None:
        for layer in self._mirrors:
            if isinstance(layer, _Mirror):
                layer.seen = position
            else:
                layer.cumulative_length = position

    def at(self, position: int) -> Any:
        """For a cache that holds no layer (the client's): the transformers cache, answering as if
        ``position`` tokens came before."""
        if len(self.held):
            raise RuntimeError("at() is for a cache that holds no layer")
        self.length = position
        self._mirror_at(position)
        return self.cache

    def commit(self) -> None:
        """The step succeeded: its tokens become part of the cache."""
        self.length += self._pending
        self._pending = 0
        self._saved = []

    def rollback(self) -> None:
        """The step failed: the held layers get back the tensors they had before it."""
        for layer, keys, values, initialized, cumulative, dtype, device in self._saved:
            layer.keys, layer.values, layer.is_initialized = keys, values, initialized
            if cumulative is not None:
                layer.cumulative_length = cumulative
            if dtype is not None:
                layer.dtype, layer.device = dtype, device
        if isinstance(self.cache, EncoderDecoderCache):
            self.cache.is_updated = dict(self._saved_updated)
        self._pending = 0
        self._saved = []

    def release(self) -> None:
        """Drop the tensors now rather than at garbage collection."""
        for c in [self._self] + ([self._cross] if self._cross is not None else []):
            for layer in c.layers:
                layer.keys = layer.values = None
                layer.is_initialized = False
