"""Watching a model's own forward: every module call with its arguments and output, in order, and the cache
slots each call wrote (``hf_trace`` reads the model's plan from them). Used only when a model is sharded."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import Cache

__all__ = ["Call", "Recorder", "arg_names", "recording_cache_writes", "same", "tensor_args", "under"]


@dataclass
class Call:
    """One module call: its name in the model, when it began and ended (``pre`` < ``post``, one counter for
    all calls), its arguments and output."""

    name: str
    pre: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    post: int = -1
    output: Any = None
    cache_slots: list[int] = field(default_factory=list)  # cache slots written during the call


def same(a: Any, b: Any) -> bool:
    """The same tensor, or a view of the same memory with the same shape and strides."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return False
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()
                      and a.dtype == b.dtype)


def tensor_args(args: tuple[Any, ...], kwargs: dict[str, Any], names: list[str]
                ) -> list[tuple[int | str, str, torch.Tensor]]:
    """(where: positional index or keyword, name, tensor) of each tensor argument of a call."""
    out: list[tuple[int | str, str, torch.Tensor]] = [
        (i, names[i] if i < len(names) else f"argument {i}", a) for i, a in enumerate(args)
        if isinstance(a, torch.Tensor)]
    return out + [(k, k, v) for k, v in kwargs.items() if isinstance(v, torch.Tensor)]


def arg_names(module: nn.Module) -> list[str]:
    """The names of ``module.forward``'s positional parameters, in order."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def under(name: str, path: str) -> bool:
    """Whether module ``name`` is ``path`` or inside it."""
    return name == path or name.startswith(path + ".")


class Recorder:
    """Hooks on every module recording each call: its arguments, its output, its place in the order."""

    def __init__(self, model: nn.Module) -> None:
        self.calls: list[Call] = []
        self._open: list[Call] = []
        self._seq = 0
        self._handles = []
        for name, module in model.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._pre(name), with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._post(), with_kwargs=True))

    def _pre(self, name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self._seq += 1
            call = Call(name, self._seq, args, dict(kwargs))
            self.calls.append(call)
            self._open.append(call)

        return hook

    def _post(self) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            self._seq += 1
            call = self._open.pop()
            call.post, call.output = self._seq, output

        return hook

    def active(self) -> list[Call]:
        return list(self._open)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@contextmanager
def recording_cache_writes(rec: Recorder) -> Iterator[None]:
    """While it lasts, every write to a transformers cache notes its slot in each open call (the layer's
    among them): the cache stays the model's own."""
    original = Cache.update

    def update(self: Cache, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
               cache_kwargs: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        for call in rec.active():
            call.cache_slots.append(layer_idx)
        return original(self, key_states, value_states, layer_idx, cache_kwargs)

    Cache.update = update  # type: ignore[method-assign]
    try:
        yield
    finally:
        Cache.update = original  # type: ignore[method-assign]
