"""A shard folder's Hugging Face model: what its manifest says (``HFSpec``), and the skeleton one process
builds from it, holding only its own weights (``Holding``).

    manifest["hf"] = {"class", "config", "attn_implementation",
                      "plan": {"kind", "stacks": [{"role", "path", "n_layers", "width", "io", "cache", "cross"}],
                               "embed_chain", "head_chain", "parts"},
                      "aliases": {weight: the weight it is tied to}}

Block files hold layer weights keyed ``"<layer>.<param>"`` (one stack) or ``"<role>.<layer>.<param>"`` (an
encoder-decoder's two); the client file holds every other weight under its own name in the model, a tied
weight once (``aliases``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nesachain.shard_exec.errors import ManifestError
from nesachain.shard_exec.hf_cache import KVLayout
from nesachain.shard_exec.hf_skeleton import (
    LayerIO,
    Span,
    build_skeleton,
    load_weights,
    missing_weights,
    stack_at,
    stub_missing,
)
from nesachain.shard_exec.hf_trace import StackPlan

__all__ = ["HFSpec", "Holding", "block_key", "param_bytes", "split_layers"]

KINDS = ("decoder", "encoder", "seq2seq")


def split_layers(n_layers: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous ranges of ``n_layers`` layers whose sizes differ by at most one (some empty if k > n)."""
    q, r = divmod(n_layers, k)
    out, lo = [], 0
    for i in range(k):
        hi = lo + q + (1 if i < r else 0)
        out.append((lo, hi))
        lo = hi
    return out


def param_bytes(modules: list[nn.Module]) -> int:
    return sum(t.numel() * t.element_size() for m in modules for t in [*m.parameters(), *m.buffers()])


def _stack_from_json(d: Any) -> StackPlan:
    try:
        cache = None if d["cache"] is None else [KVLayout.from_json(c) for c in d["cache"]]
        cross = None if d["cross"] is None else [KVLayout.from_json(c) for c in d["cross"]]
        plan = StackPlan(str(d["role"]), str(d["path"]), int(d["n_layers"]), int(d["width"]),
                         LayerIO.from_json(d["io"]), cache, cross)
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"the manifest's stack entry is malformed: {exc}") from exc
    if plan.role not in ("decoder", "encoder") or plan.n_layers < 1 or plan.width < 1:
        raise ManifestError(f"the manifest's stack entry is malformed: {d!r}")
    if plan.cache is not None and len(plan.cache) != plan.n_layers:
        raise ManifestError(f"the manifest's cache layout of {plan.path} does not match its {plan.n_layers} layers")
    return plan


def block_key(spec: HFSpec, role: str, layer: int, param: str) -> str:
    """A layer weight's key in a block file."""
    return f"{layer}.{param}" if len(spec.stacks) == 1 else f"{role}.{layer}.{param}"


@dataclass
class HFSpec:
    """The ``hf`` part of a manifest, checked."""

    hf_class: str
    config: dict[str, Any]
    attn_implementation: str
    kind: str
    stacks: list[StackPlan]
    embed_chain: list[str] | None
    head_chain: list[str] | None
    parts: dict[str, str]
    aliases: dict[str, str]
    embed_width: int

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> HFSpec:
        hf = manifest.get("hf")
        if not isinstance(hf, dict):
            raise ManifestError(f"{manifest.get('model_id')} is not a Hugging Face model")
        plan = hf.get("plan")
        if not isinstance(plan, dict) or "family" in hf:
            raise ManifestError("this shard folder was written by an older nesachain (a model family, no plan): "
                                "shard the model again with `nesad model shard`")
        try:
            spec = cls(str(hf["class"]), dict(hf["config"]), str(hf["attn_implementation"]), str(plan["kind"]),
                       [_stack_from_json(s) for s in plan["stacks"]], plan["embed_chain"], plan["head_chain"],
                       dict(plan["parts"]), dict(hf["aliases"]), int(plan["embed_width"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"the manifest's hf section is malformed: {exc}") from exc
        if spec.kind not in KINDS or len(spec.stacks) != (2 if spec.kind == "seq2seq" else 1):
            raise ManifestError(f"the manifest's plan is malformed: kind {spec.kind!r} with {len(spec.stacks)} stacks")
        return spec

    def stack(self, role: str) -> StackPlan:
        for s in self.stacks:
            if s.role == role:
                return s
        raise ManifestError(f"the model has no {role} stack")

    def layer_ranges(self, blocks: list[dict[str, Any]]) -> dict[str, range]:
        """The layers of each stack that the consecutive ``blocks`` hold."""
        out = {}
        for s in self.stacks:
            if len(self.stacks) == 1:
                lo, hi = blocks[0]["units"][0], blocks[-1]["units"][1]
            else:
                lo, hi = blocks[0]["layers"][s.role][0], blocks[-1]["layers"][s.role][1]
            if not 0 <= lo <= hi <= s.n_layers:
                raise ManifestError(f"blocks name layers {lo}:{hi} of {s.path}, which has {s.n_layers}")
            out[s.role] = range(lo, hi)
        return out


class Holding:
    """The model's skeleton in this process: the layers ``held`` of each stack (by role) with their weights,
    and either every other weight (``client``) or none (a miner's stage, whose other modules are stubs)."""

    def __init__(self, spec: HFSpec, state: dict[str, torch.Tensor], held: dict[str, range], client: bool) -> None:
        self.spec, self.held = spec, held
        self.model = build_skeleton(spec.hf_class, spec.config, spec.attn_implementation)
        what = "the client part" if client else "layers " + ", ".join(f"{r} {h.start}:{h.stop}"
                                                                      for r, h in held.items())
        load_weights(self.model, state, spec.aliases if client else {}, what)
        self.layers: dict[str, nn.ModuleList] = {}
        for s in spec.stacks:
            layers = stack_at(self.model, s.path)
            if len(layers) != s.n_layers:
                raise ManifestError(f"{spec.hf_class} has no stack of {s.n_layers} layers at {s.path}")
            self.layers[s.role] = layers
        paths = tuple(s.path for s in spec.stacks)
        if client:
            missing = [n for n, t in [*self.model.named_parameters(), *self.model.named_buffers()]
                       if t.is_meta and not any(n.startswith(p + ".") for p in paths)]
        else:
            missing = missing_weights([(f"{s.path}.{i}", self.layers[s.role][i])
                                       for s in spec.stacks for i in held.get(s.role, range(0))])
        if missing:
            raise ManifestError(f"{what}: weights missing from the shard files: {sorted(set(missing))[:5]}")
        if not client:
            stub_missing(self.model, paths)
        self.spans = {s.role: Span(self.layers[s.role], s.io, held.get(s.role, range(0))) for s in spec.stacks}
        self.param_bytes = param_bytes([self.layers[r][i] for r, h in held.items() for i in h])

    def part(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)
