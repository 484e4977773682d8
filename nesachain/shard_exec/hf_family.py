"""Where the parts of a Hugging Face model live, and how to rebuild only some of them.

A *family* names the attribute paths of a model's embeddings, its stack of identical layers, its final
norm and head. Families are recognised by structure, not by name, so Mistral/Qwen2-style models match
the ``llama`` paths and any BERT-like encoder matches ``bert``. Rebuilding happens on the ``meta``
device, so a miner that needs layers 10..19 never allocates the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nesachain.shard_exec.errors import ManifestError

__all__ = [
    "FAMILIES",
    "HFFamily",
    "build_meta_model",
    "client_state",
    "detect_family",
    "get_path",
    "layer_state",
    "materialize",
]


@dataclass(frozen=True)
class HFFamily:
    """Attribute paths of one model family (``None`` where the family has no such part)."""

    name: str
    kind: str  # "decoder" | "encoder"
    layers: str
    embed: str
    pos_embed: str | None = None
    norm: str | None = None
    head: str | None = None
    rotary: str | None = None


FAMILIES: tuple[HFFamily, ...] = (
    HFFamily("llama", "decoder", "model.layers", "model.embed_tokens", None, "model.norm", "lm_head",
             "model.rotary_emb"),
    HFFamily("gpt2", "decoder", "transformer.h", "transformer.wte", "transformer.wpe", "transformer.ln_f",
             "lm_head"),
    HFFamily("bert", "encoder", "encoder.layer", "embeddings"),
    HFFamily("bert", "encoder", "bert.encoder.layer", "bert.embeddings"),
)


def get_path(obj: Any, path: str) -> Any:
    """``get_path(m, "model.layers")`` is ``m.model.layers``; raises AttributeError if absent."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _has(obj: Any, path: str | None) -> bool:
    if path is None:
        return True
    try:
        get_path(obj, path)
    except AttributeError:
        return False
    return True


def detect_family(model: nn.Module) -> HFFamily:
    """The first family whose every path exists on ``model``."""
    for fam in FAMILIES:
        paths = (fam.layers, fam.embed, fam.pos_embed, fam.norm, fam.head, fam.rotary)
        if all(_has(model, p) for p in paths) and isinstance(get_path(model, fam.layers), nn.ModuleList):
            return fam
    raise ManifestError(f"{type(model).__name__} matches no known model family (llama, gpt2, bert)")


def family_by_paths(name: str, layers: str) -> HFFamily:
    """The family recorded in a manifest."""
    for fam in FAMILIES:
        if fam.name == name and fam.layers == layers:
            return fam
    raise ManifestError(f"unknown model family {name!r} with layers at {layers!r}")


def build_meta_model(hf_class: str, config_dict: dict[str, Any]) -> tuple[nn.Module, Any]:
    """Instantiate ``hf_class`` from a config dict on the meta device (no memory); returns (model, config)."""
    import transformers

    cls = getattr(transformers, hf_class, None)
    if cls is None:
        raise ManifestError(f"transformers has no class {hf_class!r}")
    cfg = dict(config_dict)
    model_type = cfg.pop("model_type", None)
    if not isinstance(model_type, str):
        raise ManifestError("the manifest's config has no model_type")
    config = transformers.AutoConfig.for_model(model_type, **cfg)
    config._attn_implementation = "sdpa"
    with torch.device("meta"):
        model = cls(config)
    model.eval()
    return model, config


def _rebuild_non_persistent(module: nn.Module, config: Any, what: str) -> None:
    """Non-persistent buffers (position ids, causal masks) are not in any file: recompute them by
    constructing each such submodule afresh on CPU from the config and copying its buffers."""
    for name, sub in module.named_modules():
        names: set[str] = getattr(sub, "_non_persistent_buffers_set", set())
        if not names:
            continue
        if config is None:
            raise ManifestError(f"{what}: {name or 'module'} has non-persistent buffers {sorted(names)}")
        try:
            fresh = type(sub)(config)
        except Exception as exc:  # constructors differ; report which one could not be rebuilt
            raise ManifestError(f"{what}: cannot rebuild buffers of {type(sub).__name__}: {exc}") from exc
        for buf in names:
            setattr(sub, buf, getattr(fresh, buf))


def materialize(module: nn.Module, state: dict[str, torch.Tensor], what: str, config: Any = None) -> nn.Module:
    """Move a meta module to CPU and load ``state`` into it, every key and shape checked."""
    module = module.to_empty(device="cpu")
    _rebuild_non_persistent(module, config, what)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ManifestError(f"{what}: missing weights {missing[:5]}, unexpected {extra[:5]}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ManifestError(f"{what}: {key} has shape {tuple(value.shape)}, "
                                f"expected {tuple(expected[key].shape)}")
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval()


def layer_state(model: nn.Module, fam: HFFamily, start: int, end: int) -> dict[str, torch.Tensor]:
    """Weights of layers [start, end) keyed ``"<layer index>.<param>"``."""
    layers = get_path(model, fam.layers)
    out: dict[str, torch.Tensor] = {}
    for i in range(start, end):
        for key, value in layers[i].state_dict().items():
            out[f"{i}.{key}"] = value.detach().clone().contiguous()
    return out


def client_state(model: nn.Module, fam: HFFamily) -> dict[str, torch.Tensor]:
    """Weights the client keeps: embeddings, positional embeddings, final norm, head."""
    out: dict[str, torch.Tensor] = {}
    for part, path in (("embed", fam.embed), ("pos_embed", fam.pos_embed), ("norm", fam.norm),
                       ("head", fam.head)):
        if path is None:
            continue
        for key, value in get_path(model, path).state_dict().items():
            out[f"{part}.{key}"] = value.detach().clone().contiguous()
    return out


def sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries of ``state`` under ``prefix.``, with the prefix removed."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in state.items() if k.startswith(p)}
