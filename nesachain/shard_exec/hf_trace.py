"""Find a Hugging Face model's parts by watching its own forward run once, and refuse what cannot be cut.

No table of model families: the model runs on a few example tokens with a hook on every module, and the
calls tell

- the stack (or, for an encoder-decoder, the two stacks) of repeated layers: an ``nn.ModuleList`` of one
  class, not inside another such list (a mixture of experts' experts are inside a layer), each layer
  called exactly once, in order;
- which argument of a layer is the hidden state and where it is in the layer's output, and that each
  layer's output is the next one's input, unchanged;
- what else each layer passes the next one (T5's position bias), the same for every pair of layers: a stage
  receives it with the hidden state and passes it on (``LayerIO.carry``);
- that nothing with weights from outside the stack runs between two layers or inside one;
- the model's own key/value cache: which layers keep a sliding window, each layer's key and value widths,
  and that layer *i* writes slot *i* of it (and nothing else);
- the client's fast paths: when the first layer's input is exactly the output of a chain of modules applied
  to the token ids (an embedding), and the model's output exactly a chain applied to the last layer's
  output (a final norm and a head), the client calls those modules instead of the whole forward.

What fails a check is refused with the reason (``PartitionError``). Whatever passes is still verified by
running the sharded model against the whole one before a shard folder is written (``hf_check``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import DynamicCache, DynamicSlidingWindowLayer, EncoderDecoderCache

from nesachain.shard_exec.errors import PartitionError
from nesachain.shard_exec.hf_cache import KVLayout
from nesachain.shard_exec.hf_skeleton import Carry, LayerIO, stack_at
from nesachain.shard_exec.hf_watch import Call, Recorder, arg_names, recording_cache_writes, same, tensor_args, under

__all__ = ["Plan", "StackPlan", "decoder_start", "find_stacks", "trace_plan"]


@dataclass
class StackPlan:
    """One stack of repeated layers: where it is, how its layers pass the hidden state, its cache."""

    role: str  # "decoder" | "encoder"
    path: str
    n_layers: int
    width: int
    io: LayerIO
    cache: list[KVLayout] | None = None
    cross: list[KVLayout] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "path": self.path, "n_layers": self.n_layers, "width": self.width,
                "io": self.io.to_json(),
                "cache": None if self.cache is None else [c.to_json() for c in self.cache],
                "cross": None if self.cross is None else [c.to_json() for c in self.cross]}


@dataclass
class Plan:
    """What ``trace_plan`` found: the stacks in the order the model runs them, the modules of the client's
    fast paths (None where there is none), and where the encoder and decoder of an encoder-decoder are."""

    kind: str  # "decoder" | "encoder" | "seq2seq"
    stacks: list[StackPlan]
    embed_chain: list[str] | None
    head_chain: list[str] | None
    parts: dict[str, str]  # seq2seq: {"encoder": path, "decoder": path}
    embed_width: int  # what the model's forward takes as inputs_embeds (a stage passes zeros of it)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "stacks": [s.to_json() for s in self.stacks], "embed_chain": self.embed_chain,
                "head_chain": self.head_chain, "parts": self.parts, "embed_width": self.embed_width}


def find_stacks(model: nn.Module) -> list[str]:
    """Paths of the outermost ``nn.ModuleList``s whose entries are all of one class and have weights."""
    found: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if any(name.startswith(f + ".") for f in found):
            continue
        first = type(module[0])
        if all(type(m) is first for m in module) and any(True for _ in module[0].parameters()):
            found.append(name)
    return found


def _layer_calls(calls: list[Call], path: str, n: int) -> list[Call]:
    names = {f"{path}.{i}": i for i in range(n)}
    mine = [c for c in calls if c.name in names]
    counts = [0] * n
    for c in mine:
        counts[names[c.name]] += 1
    for i, k in enumerate(counts):
        if k != 1:
            raise PartitionError(f"layer {i} of {path} runs {k} times in one forward: the layers are not a "
                                 "repeated stack of distinct layers, each run once")
    order = [names[c.name] for c in mine]
    if order != list(range(n)):
        raise PartitionError(f"the layers of {path} run in the order {order[:8]}…, not one after another")
    return mine


def _layer_io(path: str, layer_calls: list[Call], names: list[str]) -> LayerIO:
    first = layer_calls[0]
    if first.args and isinstance(first.args[0], torch.Tensor):
        hidden_in: int | str = 0
    elif isinstance(first.kwargs.get("hidden_states"), torch.Tensor):
        hidden_in = "hidden_states"
    else:
        raise PartitionError(f"layer 0 of {path} takes no hidden state as its first argument or as hidden_states")
    out = first.output
    if isinstance(out, torch.Tensor):
        io = LayerIO(hidden_in, None, 1)
    elif isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
        io = LayerIO(hidden_in, 0, len(out))
    else:
        raise PartitionError(f"layer 0 of {path} returns a {type(out).__name__}, not its hidden state "
                             "(a tensor, or a tuple that starts with it)")
    carry: set[Carry] | None = None
    for i in range(1, len(layer_calls)):
        prev, call = layer_calls[i - 1], layer_calls[i]
        hidden = io.hidden_of(call.args, call.kwargs)
        if not same(hidden, io.hidden_out(prev.output)):
            raise PartitionError(f"the hidden state changes between layers {i - 1} and {i} of {path}, outside "
                                 f"the layers: a stage could not start at layer {i}")
        outs = prev.output if isinstance(prev.output, tuple) else ()
        found = set()
        for where, what, t in tensor_args(call.args, call.kwargs, names):
            ks = [k for k, e in enumerate(outs) if k != io.out_index and same(t, e)]
            if t is not hidden and ks:
                found.add(Carry(what, ks[0], where))
        if carry is not None and found != carry:
            raise PartitionError(f"layers {i - 1} and {i} of {path} pass each other other tensors than the "
                                 "layers before them: the layers are not a repeated stack")
        carry = found
    return LayerIO(io.hidden_in, io.out_index, io.out_len, tuple(sorted(carry or (), key=lambda c: c.out_index)))


def _between(calls: list[Call], path: str, layer_calls: list[Call], model: nn.Module) -> None:
    """Refuse a module with weights, outside the stack, that runs between two layers or inside one."""
    lo, hi = layer_calls[0].pre, layer_calls[-1].post
    spans = [(c.pre, c.post) for c in layer_calls]
    for c in calls:
        if under(c.name, path) or not lo < c.pre < hi or c.post > hi:
            continue  # in the stack, outside its run, or an ancestor of it
        module = model.get_submodule(c.name)
        if not any(True for _ in module.parameters()):
            continue
        inside = [i for i, (a, b) in enumerate(spans) if a < c.pre < b]
        if inside:
            raise PartitionError(f"layer {inside[0]} of {path} runs {c.name} ({type(module).__name__}), whose "
                                 "weights are outside the layers: weights shared between layers cannot be cut")
        raise PartitionError(f"the model runs {c.name} ({type(module).__name__}, with weights) between its "
                             f"layers of {path}: layers are not a repeated stack a stage can run alone")


def _kv(t: torch.Tensor | None, what: str) -> tuple[int, int]:
    if t is None or t.ndim != 4:
        raise PartitionError(f"{what} is not a (batch, heads, tokens, head_dim) tensor")
    return int(t.shape[1]), int(t.shape[3])


def _layout(cache: Any, n: int, path: str, what: str) -> list[KVLayout]:
    if cache is None:
        raise PartitionError(f"the model returns no {what} when asked to keep one (use_cache=True)")
    if type(cache) is not DynamicCache:
        raise PartitionError(f"the model keeps its {what} in a {type(cache).__name__}, not in a DynamicCache "
                             "of key/value layers")
    if len(cache.layers) != n:
        raise PartitionError(f"the model's {what} has {len(cache.layers)} layers for the {n} layers of {path}")
    out = []
    for i, layer in enumerate(cache.layers):
        window = layer.sliding_window if isinstance(layer, DynamicSlidingWindowLayer) else None
        out.append(KVLayout(window, _kv(layer.keys, f"{what} layer {i}'s keys"),
                            _kv(layer.values, f"{what} layer {i}'s values")))
    return out


def _slots(path: str, layer_calls: list[Call]) -> None:
    for i, call in enumerate(layer_calls):
        if set(call.cache_slots) != {i}:
            raise PartitionError(f"layer {i} of {path} writes cache slots {sorted(set(call.cache_slots))}, not "
                                 f"slot {i} alone: layers share keys and values, and a stage could not keep its own")


def _chain_from(calls: list[Call], start: torch.Tensor, after: int, skip: tuple[str, ...],
                target: Any) -> list[str] | None:
    """Modules applied one after another to ``start`` (each to the previous one's output, alone) after call
    number ``after`` until the output is ``target``; None if the calls are not such a chain."""
    chain: list[str] = []
    current = start
    for c in calls:
        if same(current, target):
            return chain
        if c.pre <= after or any(under(c.name, s) for s in skip):
            continue
        if len(c.args) == 1 and not c.kwargs and same(c.args[0], current) and isinstance(c.output, torch.Tensor):
            if chain and under(c.name, chain[-1]):
                continue  # inside the previous link
            chain.append(c.name)
            current = c.output
    return chain if same(current, target) else None


def _embed_chain(calls: list[Call], ids: torch.Tensor, first: Call, io: LayerIO) -> list[str] | None:
    """Modules that turn the token ids into the first layer's input, one after another, alone."""
    target = io.hidden_of(first.args, first.kwargs)
    before = [c for c in calls if c.post < first.pre and c.name]
    return _chain_from(before, ids, 0, (), target) or None


def trace_plan(model: nn.Module, kind: str, ids: torch.Tensor) -> Plan:
    """Run ``model`` once on ``ids`` (1, T) with every module hooked, and read its plan (see the module)."""
    paths = find_stacks(model)
    if not paths:
        raise PartitionError(f"{type(model).__name__} has no repeated stack of layers (an nn.ModuleList of one "
                             "layer class): there is nothing to cut between")
    stacks_n = {p: len(stack_at(model, p)) for p in paths}
    rec = Recorder(model)
    try:
        with torch.inference_mode(), recording_cache_writes(rec):
            out = _example_forward(model, kind, ids)
    except Exception as exc:  # the model's own code: any failure is the reason it cannot be sharded
        raise PartitionError(f"{type(model).__name__} fails on example tokens: {type(exc).__name__}: {exc}") from exc
    finally:
        rec.remove()
    calls = rec.calls
    used = [p for p in paths if any(under(c.name, p) and c.name != p for c in calls)]
    want = 2 if kind == "seq2seq" else 1
    if len(used) != want:
        names = ", ".join(used) or "none"
        raise PartitionError(f"{type(model).__name__} runs {len(used)} repeated stacks of layers ({names}); "
                             f"a {kind} model must run {want}")
    stacks: list[StackPlan] = []
    layer_calls_of: dict[str, list[Call]] = {}
    for p in sorted(used, key=lambda p: min(c.pre for c in calls if under(c.name, p))):
        lc = _layer_calls(calls, p, stacks_n[p])
        io = _layer_io(p, lc, arg_names(stack_at(model, p)[0]))
        _between(calls, p, lc, model)
        width = int(io.hidden_of(lc[0].args, lc[0].kwargs).shape[-1])
        layer_calls_of[p] = lc
        stacks.append(StackPlan("encoder", p, stacks_n[p], width, io))
    parts: dict[str, str] = {}
    if kind == "decoder":
        stacks[0].role = "decoder"
        cache = out.past_key_values
        if isinstance(cache, EncoderDecoderCache) and cache.cross_attention_cache.get_seq_length() == 0:
            cache = cache.self_attention_cache  # a decoder-only model that could take cross-attention (GPTBigCode)
        stacks[0].cache = _layout(cache, stacks[0].n_layers, stacks[0].path, "key/value cache")
        _slots(stacks[0].path, layer_calls_of[stacks[0].path])
        target = out.logits
    elif kind == "seq2seq":
        stacks[1].role = "decoder"
        cache = out.past_key_values
        if not isinstance(cache, EncoderDecoderCache):
            raise PartitionError(f"the model's decoder keeps its cache in a {type(cache).__name__}, "
                                 "not an EncoderDecoderCache")
        dec = stacks[1]
        dec.cache = _layout(cache.self_attention_cache, dec.n_layers, dec.path, "self-attention cache")
        dec.cross = _layout(cache.cross_attention_cache, dec.n_layers, dec.path, "cross-attention cache")
        _slots(dec.path, layer_calls_of[dec.path])
        parts = _seq2seq_parts(model, stacks)
        target = out.logits
    else:
        target = out[0]
    last = stacks[-1]
    lc = layer_calls_of[last.path]
    head = _chain_from(calls, last.io.hidden_out(lc[-1].output), lc[-1].post, (last.path,), target)
    embed = _embed_chain(calls, ids, layer_calls_of[stacks[0].path][0], stacks[0].io) if kind == "decoder" else None
    return Plan(kind, stacks, embed, head, parts, _embed_width(model, stacks[0].width))


def _embed_width(model: nn.Module, default: int) -> int:
    """The width of the token embeddings, which ``inputs_embeds`` must have (it may differ from the layers')."""
    try:
        emb = model.get_input_embeddings()  # type: ignore[operator]
    except (NotImplementedError, AttributeError):
        return default
    weight = getattr(emb, "weight", None)
    return int(weight.shape[-1]) if isinstance(weight, torch.Tensor) and weight.ndim == 2 else default


def _seq2seq_parts(model: nn.Module, stacks: list[StackPlan]) -> dict[str, str]:
    get_enc, get_dec = getattr(model, "get_encoder", None), getattr(model, "get_decoder", None)
    if not callable(get_enc) or not callable(get_dec):
        raise PartitionError(f"{type(model).__name__} has no get_encoder()/get_decoder()")
    names = {id(m): n for n, m in model.named_modules()}
    enc, dec = names.get(id(get_enc())), names.get(id(get_dec()))
    if enc is None or dec is None or not under(stacks[0].path, enc) or not under(stacks[1].path, dec):
        raise PartitionError(f"the encoder's and decoder's layers ({stacks[0].path}, {stacks[1].path}) are not "
                             "inside the model's get_encoder() and get_decoder()")
    return {"encoder": enc, "decoder": dec}


def _example_forward(model: nn.Module, kind: str, ids: torch.Tensor) -> Any:
    """The model on ``ids`` as its users call it, its cache (if any) made by the model itself."""
    mask = torch.ones_like(ids)
    if kind == "encoder":
        return model(input_ids=ids, attention_mask=mask)
    if kind == "decoder":
        return model(input_ids=ids, use_cache=True)
    dec_ids = torch.cat([torch.tensor([[decoder_start(model.config)]]), ids[:, :2]], dim=1)  # (1, 3)
    return model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_ids, use_cache=True)


def decoder_start(config: Any) -> int:
    """The token an encoder-decoder's decoder starts from."""
    for key in ("decoder_start_token_id", "bos_token_id", "pad_token_id"):
        v = getattr(config, key, None)
        if isinstance(v, int):
            return v
    raise PartitionError("the model's config names no decoder_start_token_id (nor bos or pad token)")
