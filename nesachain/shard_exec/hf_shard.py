"""Cut a loaded Hugging Face model into block files: the plan its own forward shows (``hf_trace``), its layers
split into ``k`` blocks, every other weight in the client's file.

A decoder-only or encoder-only model's block *i* holds a contiguous range of its layers (sizes differ by at
most one). An encoder-decoder's block *i* holds a range of the encoder's layers *and* a range of the
decoder's, each stack split into ranges whose sizes differ by at most one (the encoder's larger ranges in the
first blocks, the decoder's in the last, so that blocks differ little), so that every miner of a route works
at every decoder step where the decoder has as many layers as there are blocks (a range may be empty where
a stack has fewer); its ``units`` count the layers of both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nesachain.shard_exec.errors import PartitionError
from nesachain.shard_exec.hf_model import HFSpec, block_key, split_layers
from nesachain.shard_exec.hf_skeleton import stack_at
from nesachain.shard_exec.hf_trace import Plan, trace_plan

__all__ = ["causal_lm_classes", "example_ids", "hf_kind", "write_hf"]

_DROPPED_CONFIG = ("_name_or_path", "transformers_version", "torch_dtype", "dtype")


def causal_lm_classes() -> set[str]:
    """The class names transformers lists for ``AutoModelForCausalLM`` (its registry, not a table of ours)."""
    from transformers.models.auto import modeling_auto

    names: set[str] = set()
    for v in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        names.update([v] if isinstance(v, str) else v)
    return names


def hf_kind(model: nn.Module) -> str:
    """"seq2seq" (an encoder-decoder), "decoder" (a class transformers lists for causal LM) or "encoder"."""
    if getattr(model.config, "is_encoder_decoder", False):
        return "seq2seq"
    return "decoder" if type(model).__name__ in causal_lm_classes() else "encoder"


def example_ids(config: Any, n: int, seed: int = 0) -> torch.Tensor:
    """(1, n) token ids drawn from the vocabulary, none of them a special token (pad, bos, eos, …)."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    vocab = int(getattr(text, "vocab_size", 0) or getattr(config, "vocab_size", 0) or 0)
    if vocab < 8:
        raise PartitionError(f"the model's config has no usable vocab_size ({vocab})")
    special = {v for k in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id",
                           "unk_token_id", "sep_token_id", "cls_token_id", "mask_token_id")
               for v in [getattr(config, k, None), getattr(text, k, None)] if isinstance(v, int)}
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, n), generator=gen)
    for i in range(n):
        while int(ids[0, i]) in special:
            ids[0, i] = (int(ids[0, i]) + 1) % vocab
    return ids


def _clean_config(model: nn.Module) -> dict[str, Any]:
    cfg: Any = model.config
    config = dict(cfg.to_dict())
    for key in _DROPPED_CONFIG:
        config.pop(key, None)
    return config


def _ranges(plan: Plan, k: int) -> list[dict[str, tuple[int, int]]]:
    if plan.kind != "seq2seq":
        s = plan.stacks[0]
        if s.n_layers < k:
            raise PartitionError(f"{k} blocks asked for, but {s.path} has only {s.n_layers} layers")
        return [{s.role: r} for r in split_layers(s.n_layers, k)]
    enc, dec = plan.stacks
    if enc.n_layers + dec.n_layers < k:
        raise PartitionError(f"{k} blocks asked for, but the encoder and decoder have only "
                             f"{enc.n_layers + dec.n_layers} layers")
    enc_ranges = split_layers(enc.n_layers, k)  # larger blocks first
    sizes = [hi - lo for lo, hi in split_layers(dec.n_layers, k)][::-1]  # the decoder's larger blocks last
    dec_ranges, lo = [], 0
    for size in sizes:
        dec_ranges.append((lo, lo + size))
        lo += size
    return [{enc.role: enc_ranges[i], dec.role: dec_ranges[i]} for i in range(k)]


def _shared(model: nn.Module, state: dict[str, torch.Tensor], stack_paths: list[str]) -> dict[str, str]:
    """Tied weights: {key: the first key of the same tensor}. Refuses a parameter shared with a layer."""
    params = set(dict(model.named_parameters(remove_duplicate=False)))
    first: dict[tuple[int, int, tuple[int, ...]], str] = {}
    aliases: dict[str, str] = {}
    for key, t in state.items():
        if t.numel() == 0:
            continue
        ident = (t.untyped_storage().data_ptr(), int(t.storage_offset()), tuple(int(n) for n in t.shape))
        if ident not in first:
            first[ident] = key
            continue
        src = first[ident]
        in_stack = [k for k in (src, key) if any(k.startswith(p + ".") for p in stack_paths)]
        if in_stack and (src in params or key in params):
            raise PartitionError(f"weight {key} is the same tensor as {src}: weights shared with a layer "
                                 "cannot be cut into blocks")
        if not in_stack:
            aliases[key] = src
    return aliases


def write_hf(model: nn.Module, kind: str, model_id: str, out_dir: Path, k: int,
             save: Callable[[dict[str, torch.Tensor], Path], dict[str, Any]]) -> dict[str, Any]:
    """Write the block files and the client file of ``model`` under ``out_dir``; returns the manifest."""
    ids = example_ids(model.config, 6)
    plan = trace_plan(model, kind, ids)
    state = model.state_dict()
    paths = [s.path for s in plan.stacks]
    aliases = _shared(model, state, paths)
    attn = str(getattr(model.config, "_attn_implementation", None) or "eager")
    hf = {"class": type(model).__name__, "config": _clean_config(model), "attn_implementation": attn,
          "plan": plan.to_json(), "aliases": aliases}
    spec = HFSpec.from_manifest({"hf": hf})
    blocks = []
    done = 0
    for i, ranges in enumerate(_ranges(plan, k)):
        block: dict[str, torch.Tensor] = {}
        for s in plan.stacks:
            lo, hi = ranges[s.role]
            layers = stack_at(model, s.path)
            for layer in range(lo, hi):
                for param, v in layers[layer].state_dict().items():
                    block[block_key(spec, s.role, layer, param)] = v.detach().clone().contiguous()
        n = sum(hi - lo for lo, hi in ranges.values())
        entry = save(block, out_dir / f"block_{i:03d}.safetensors")
        layers_json = {role: list(r) for role, r in ranges.items()}
        units = list(ranges[plan.stacks[0].role]) if len(plan.stacks) == 1 else [done, done + n]
        blocks.append({"index": i, "units": units, **({"layers": layers_json} if len(plan.stacks) > 1 else {}),
                       **entry})
        done += n
    client = {key: v.detach().clone().contiguous() for key, v in state.items()
              if key not in aliases and not any(key.startswith(p + ".") for p in paths)}
    return {
        "model_id": model_id, "architecture": f"hf-{kind}", "dtype": "float32",
        "n_blocks": k, "blocks": blocks, "tokenizer": None, "graph": None,
        "client": save(client, out_dir / "client.safetensors"), "hf": hf,
    }
