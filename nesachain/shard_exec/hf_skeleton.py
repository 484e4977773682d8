"""A Hugging Face model's own module tree, holding only the weights one process needs, and cut by hooks.

A *skeleton* is the model built from its config with every parameter on the ``meta`` device (no memory) and
every buffer computed as the model's constructor computes it (rotary frequencies, sinusoidal tables). Then
the parts a process holds get their weights: a miner the layers of its range, the client everything but
the layers. Nothing is rebuilt by hand: a stage runs by calling the model's own ``forward`` (masks,
positions, rotary or ALiBi, sliding windows all come out of the model's code), cut by a ``Span``:

    layers outside the range   keep their class and attributes, but their ``forward`` passes the hidden
                               state through (a *shell*; the model's loop cannot tell)
    the first layer held       gets the incoming hidden state in place of what the model computed so far
    the last layer held        ends the call by raising ``_Stop`` with its output
    other modules with weights that this process does not hold (a miner's embeddings) run on ``meta``
                               and return zeros of the right shape: what they feed is replaced anyway

Which argument of a layer is the hidden state, and where it is in the layer's output, was observed once
when the model was sharded (``hf_trace``) and travels in the manifest as a ``LayerIO``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map_only

from nesachain.shard_exec.errors import ManifestError

__all__ = ["Carry", "LayerIO", "Span", "build_skeleton", "load_weights", "stack_at", "stub_missing"]


@dataclass(frozen=True)
class Carry:
    """A tensor a layer returns beside the hidden state and the next layer takes (T5's position bias): output
    ``out_index`` of layer i is argument ``arg`` (a positional index or a keyword) of layer i + 1; ``name``
    is what it is called on the wire."""

    name: str
    out_index: int
    arg: int | str


@dataclass(frozen=True)
class LayerIO:
    """Where a layer of a stack takes and returns the hidden state, and what else it passes the next layer.

    ``hidden_in``: the positional index (0) or keyword name of the hidden-state argument; ``out_index``:
    None when a layer returns the hidden state itself, else its index in the returned tuple of ``out_len``;
    ``carry``: the tensors besides the hidden state that a stage receives from the previous one and passes on."""

    hidden_in: int | str
    out_index: int | None
    out_len: int
    carry: tuple[Carry, ...] = ()

    def hidden_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        h = args[self.hidden_in] if isinstance(self.hidden_in, int) else kwargs[self.hidden_in]
        return h  # type: ignore[no-any-return]

    def with_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any], h: torch.Tensor,
                    carried: dict[str, torch.Tensor]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments with the hidden state ``h`` and the ``carried`` tensors put in."""
        out_args, out_kwargs = list(args), dict(kwargs)
        for where, value in [(self.hidden_in, h), *((c.arg, carried[c.name]) for c in self.carry if c.name in carried)]:
            if isinstance(where, str):
                out_kwargs[where] = value
            elif where < len(out_args):
                out_args[where] = value
            else:
                raise ManifestError(f"a layer was called with {len(out_args)} arguments, not {where + 1}")
        return tuple(out_args), out_kwargs

    def carried_out(self, output: Any) -> dict[str, torch.Tensor]:
        return {c.name: output[c.out_index] for c in self.carry}

    def output(self, h: torch.Tensor) -> Any:
        """What a shell returns: ``h`` where the layer returns its hidden state, None in the other slots."""
        if self.out_index is None:
            return h
        out: list[Any] = [None] * self.out_len
        out[self.out_index] = h
        return tuple(out)

    def hidden_out(self, output: Any) -> torch.Tensor:
        h = output if self.out_index is None else output[self.out_index]
        return h  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        return {"hidden_in": self.hidden_in, "out_index": self.out_index, "out_len": self.out_len,
                "carry": [[c.name, c.out_index, c.arg] for c in self.carry]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LayerIO:
        try:
            hidden_in, out_index, out_len = d["hidden_in"], d["out_index"], int(d["out_len"])
            carry = tuple(Carry(str(n), int(k), a) for n, k, a in d.get("carry", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"a stack's layer_io is malformed: {d!r}") from exc
        if not isinstance(hidden_in, int | str) or not (out_index is None or isinstance(out_index, int)) or \
                not all(isinstance(c.arg, int | str) and 0 < c.out_index < out_len for c in carry):
            raise ManifestError(f"a stack's layer_io is malformed: {d!r}")
        return cls(hidden_in, out_index, out_len, carry)


def stack_at(model: nn.Module, path: str) -> nn.ModuleList:
    """The ``nn.ModuleList`` at ``path`` in ``model``."""
    try:
        layers = model.get_submodule(path)
    except AttributeError:
        raise ManifestError(f"{type(model).__name__} has no module at {path}") from None
    if not isinstance(layers, nn.ModuleList):
        raise ManifestError(f"{path} of {type(model).__name__} is a {type(layers).__name__}, not a stack of layers")
    return layers


def build_skeleton(hf_class: str, config_dict: dict[str, Any], attn_implementation: str) -> nn.Module:
    """``hf_class`` built from a config dict with its parameters on ``meta`` and its buffers computed."""
    import transformers
    from transformers.integrations.accelerate import init_empty_weights

    cls = getattr(transformers, hf_class, None)
    if not isinstance(cls, type) or not issubclass(cls, transformers.PreTrainedModel):
        raise ManifestError(f"transformers {transformers.__version__} has no model class {hf_class!r}")
    model_type = config_dict.get("model_type")
    if not isinstance(model_type, str):
        raise ManifestError("the manifest's config has no model_type")
    try:
        config_cls = transformers.AutoConfig.for_model(model_type).__class__
        config = config_cls.from_dict(dict(config_dict))
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"cannot rebuild the config of {hf_class}: {exc}") from exc
    config._attn_implementation = attn_implementation
    with init_empty_weights(include_buffers=False):
        model: nn.Module = cls(config)
    model.train(False)
    return model


def _slot(model: nn.Module, key: str) -> tuple[nn.Module, str, torch.Tensor]:
    path, _, attr = key.rpartition(".")
    try:
        module = model.get_submodule(path)
    except AttributeError:
        raise ManifestError(f"weight {key!r} names no module of the model") from None
    current = module._parameters.get(attr) if attr in module._parameters else module._buffers.get(attr)
    if current is None:
        raise ManifestError(f"weight {key!r} is neither a parameter nor a buffer of the model")
    return module, attr, current


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], aliases: dict[str, str], what: str) -> None:
    """Put ``state`` (keys as in the model's ``state_dict``) into the skeleton, every key and shape checked;
    then make each alias (a tied weight, stored once) the same tensor as its source."""
    for key, value in state.items():
        module, attr, current = _slot(model, key)
        if tuple(value.shape) != tuple(current.shape):
            raise ManifestError(f"{what}: {key} has shape {tuple(value.shape)}, expected {tuple(current.shape)}")
        if attr in module._parameters:
            module._parameters[attr] = nn.Parameter(value, requires_grad=False)
        else:
            module._buffers[attr] = value
    for key, source in aliases.items():
        module, attr, current = _slot(model, key)
        if source not in state:
            continue  # this process holds neither
        src_module, src_attr, _ = _slot(model, source)
        if attr in module._parameters:
            module._parameters[attr] = src_module._parameters[src_attr]
        else:
            module._buffers[attr] = src_module._buffers[src_attr]


def missing_weights(modules: Iterable[tuple[str, nn.Module]]) -> list[str]:
    """Names of parameters and buffers still on ``meta`` under ``modules`` (named roots)."""
    out = []
    for root, module in modules:
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if t.is_meta:
                out.append(f"{root}.{name}" if root else name)
    return out


def _on_meta(t: torch.Tensor) -> torch.Tensor:
    return t.to("meta")


def _zeros_like_meta(t: torch.Tensor) -> torch.Tensor:
    return torch.zeros(t.shape, dtype=t.dtype) if t.is_meta else t


def stub_missing(model: nn.Module, skip: tuple[str, ...]) -> list[str]:
    """Every module outside ``skip`` (path prefixes) that owns a parameter still on ``meta`` computes on
    ``meta`` and returns zeros of the right shape and dtype. Returns their names."""
    stubbed = []
    for name, module in model.named_modules():
        if any(name == s or name.startswith(s + ".") for s in skip):
            continue
        if not any(p.is_meta for p in module.parameters(recurse=False)):
            continue
        orig = module.forward

        def forward(*args: Any, _orig: Callable[..., Any] = orig, **kwargs: Any) -> Any:
            margs, mkwargs = tree_map_only(torch.Tensor, _on_meta, (args, kwargs))
            return tree_map_only(torch.Tensor, _zeros_like_meta, _orig(*margs, **mkwargs))

        module.forward = forward
        stubbed.append(name)
    return stubbed


class _Stop(Exception):
    """Ends a call of the model's forward where a span ends, carrying the hidden state there (and the tensors
    the next layer would take besides it)."""

    def __init__(self, value: torch.Tensor, carried: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.value, self.carried = value, carried or {}


@dataclass
class _Cut:
    """What one call does: put ``hidden`` in before layer ``inject_in`` (or as the output of layer
    ``inject_out``), and stop before layer ``stop_before`` or after layer ``stop_after``."""

    hidden: torch.Tensor | None = None
    carried: dict[str, torch.Tensor] | None = None  # put in with ``hidden`` before layer ``inject_in``
    inject_in: int | None = None
    inject_out: int | None = None
    stop_before: int | None = None
    stop_after: int | None = None


class _StackList(nn.ModuleList):
    """The stack's ``ModuleList``, answering a slice with the same plain list every time: many models loop over
    ``self.layers[: config.num_hidden_layers]`` at every call, and a ``ModuleList`` slice builds a new
    ``ModuleList`` (80 µs for 30 layers, more than a miner's own bookkeeping per step)."""

    def __getitem__(self, idx: Any) -> Any:
        if not isinstance(idx, slice):
            return super().__getitem__(idx)
        slices: dict[tuple[Any, Any, Any], list[nn.Module]] = self.__dict__.setdefault("_slices", {})
        key = (idx.start, idx.stop, idx.step)
        got = slices.get(key)
        if got is None:
            got = slices[key] = list(self._modules.values())[idx]
        return got


class Span:
    """A stack of layers of which ``held`` have weights here; the others are made shells. Calls of the
    model's forward through ``run_*`` are cut as the module's docstring says. What a call does is kept per
    thread, so calls from several threads (a verifier's judges) do not see each other's cuts."""

    def __init__(self, layers: nn.ModuleList, io: LayerIO, held: range) -> None:
        if type(layers) is nn.ModuleList:
            layers.__class__ = _StackList  # the stack is never changed after this
        self.layers, self.io, self.held = layers, io, held
        self.n = len(layers)
        self._local = threading.local()
        for i, layer in enumerate(layers):
            if i not in held:
                layer.forward = self._shell(i)
        if len(held):
            layers[held.start].register_forward_pre_hook(self._pre_hook(held.start), with_kwargs=True)
            layers[held.stop - 1].register_forward_hook(self._post_hook(held.stop - 1), with_kwargs=True)

    def _cut(self) -> _Cut:
        cut: _Cut | None = getattr(self._local, "cut", None)
        if cut is None:
            cut = self._local.cut = _Cut()
        return cut

    def _shell(self, i: int) -> Callable[..., Any]:
        io = self.io

        def forward(*args: Any, **kwargs: Any) -> Any:
            cut = self._cut()
            h = io.hidden_of(args, kwargs)
            if cut.stop_before == i:
                raise _Stop(h)
            if cut.inject_out == i:
                assert cut.hidden is not None  # set together by run_finish
                h = cut.hidden
            return io.output(h)

        return forward

    def _pre_hook(self, i: int) -> Callable[..., Any]:
        io = self.io

        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            cut = self._cut()
            if cut.stop_before == i:
                raise _Stop(io.hidden_of(args, kwargs))
            if cut.inject_in == i:
                assert cut.hidden is not None  # set together by run_stage
                return io.with_inputs(args, kwargs, cut.hidden, cut.carried or {})
            return None

        return hook

    def _post_hook(self, i: int) -> Callable[..., Any]:
        io = self.io

        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
            if self._cut().stop_after == i:
                raise _Stop(io.hidden_out(output), io.carried_out(output) if i < self.n - 1 else None)
            return None

        return hook

    def _run(self, call: Callable[[], Any], cut: _Cut) -> Any:
        self._local.cut = cut
        try:
            return call()
        except _Stop as stop:
            return stop
        finally:
            self._local.cut = None

    def run_stage(self, call: Callable[[], Any], hidden: torch.Tensor, start: int, end: int,
                  carried: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Layers [start, end) on ``hidden`` (the input of layer ``start``, with the ``carried`` tensors the
        previous layer passed it): their output, and what the last of them passes the next layer (nothing
        after the stack's last layer)."""
        out = self._run(call, _Cut(hidden, carried, inject_in=start, stop_after=end - 1))
        if not isinstance(out, _Stop):
            raise ManifestError(f"the model's forward returned before layer {end - 1} ran")
        return out.value, out.carried

    def run_embed(self, call: Callable[[], Any]) -> torch.Tensor:
        """What the model computes before its first layer: the first layer's hidden input."""
        out = self._run(call, _Cut(stop_before=0))
        if not isinstance(out, _Stop):
            raise ManifestError("the model's forward returned before its first layer ran")
        return out.value

    def run_finish(self, call: Callable[[], Any], hidden: torch.Tensor) -> Any:
        """What the model computes after its last layer, from ``hidden`` (that layer's output): its output."""
        out = self._run(call, _Cut(hidden, inject_out=self.n - 1))
        if isinstance(out, _Stop):
            raise ManifestError("the model's forward stopped at a layer instead of finishing")
        return out
