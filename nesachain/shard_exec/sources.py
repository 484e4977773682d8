"""Resolve a MODEL argument (a packaged name, an HF folder, or ``module:factory``) to a loaded model."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nesachain.shard_exec.errors import ManifestError

__all__ = ["NAMED_MODELS", "Source", "build_from_factory", "load_source"]

NAMED_MODELS = ("smollm2-135m", "all-minilm-l6-v2", "efficientnet-lite0")
MAX_EXAMPLE_VALUES = 1 << 26  # a graph model's example input, profiled once while sharding (256 MiB of fp32)


@dataclass
class Source:
    """A model ready to shard: HF models have ``tokenizer``; graph models have a factory and example inputs."""

    model_id: str
    model: nn.Module
    tokenizer: Any = None
    factory: str | None = None  # "module:callable" building the architecture (called under meta by miners)
    example_inputs: tuple[torch.Tensor, ...] | None = None
    kind: str | None = None  # HF models: "decoder", "encoder" or "seq2seq" (None: from the model's class)


def build_from_factory(spec: str) -> nn.Module:
    """``"package.module:callable"`` called: the model it builds, in eval mode. Whatever goes wrong (no
    such callable, it raises, it returns something else) is a ManifestError that says so."""
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ManifestError(f"a factory must look like 'package.module:callable', got {spec!r}")
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ManifestError(f"cannot import factory {spec!r}: {exc}") from exc
    if not callable(fn):
        raise ManifestError(f"factory {spec!r} is not callable")
    try:
        model = fn()
    except Exception as exc:  # the user's code: any failure is reported, not a traceback
        raise ManifestError(f"factory {spec!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ManifestError(f"factory {spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _shape(text: str | None) -> tuple[int, ...]:
    if not text:
        raise ManifestError("a graph model needs --input-shape, e.g. 1,3,224,224")
    try:
        shape = tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise ManifestError(f"bad --input-shape {text!r}: comma-separated sizes, e.g. 1,3,224,224") from exc
    if not 1 <= len(shape) <= 8 or min(shape) < 1 or math.prod(shape) > MAX_EXAMPLE_VALUES:
        raise ManifestError(f"bad --input-shape {text!r}: 1 to 8 sizes, each at least 1, "
                            f"at most {MAX_EXAMPLE_VALUES:,} values in all")
    return shape


def load_source(name: str, input_shape: str | None = None) -> Source:
    """Load the model named on the command line."""
    from nesachain import models

    if name == "smollm2-135m":
        model, tok = models.load_smollm2()
        return Source(name, model, tok, kind="decoder")
    if name == "all-minilm-l6-v2":
        model, tok = models.load_minilm()
        return Source(name, model, tok, kind="encoder")
    if name == "efficientnet-lite0":
        shape = _shape(input_shape) if input_shape else (1, 3, 224, 224)
        return Source(name, models.load_efficientnet_lite0(), None,
                      "nesachain.models.efficientnet:build_efficientnet_lite0",
                      (torch.randn(*shape, generator=torch.Generator().manual_seed(0)),))
    path = Path(name)
    if (path / "config.json").is_file():
        return _load_hf_dir(path)
    if ":" in name:
        model = build_from_factory(name)
        gen = torch.Generator().manual_seed(0)
        return Source(name, model, None, name, (torch.randn(*_shape(input_shape), generator=gen),))
    raise ManifestError(f"unknown model {name!r}: use one of {', '.join(NAMED_MODELS)}, "
                        "a Hugging Face folder, or package.module:factory")


def hf_folder_kind(config: Any) -> tuple[str, str | None]:
    """(kind, class name) of a Hugging Face folder's config: an encoder-decoder is "seq2seq"; a class that
    transformers lists for causal language modelling (``architectures``, else the model type's) "decoder";
    anything else "encoder", loaded as the class the folder names (else ``AutoModel``)."""
    from transformers.models.auto import modeling_auto

    from nesachain.shard_exec.hf_shard import causal_lm_classes

    arch = (getattr(config, "architectures", None) or [None])[0]
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq", None
    causal = causal_lm_classes()
    if arch is not None:
        return ("decoder" if arch in causal else "encoder"), arch
    model_type = getattr(config, "model_type", None)
    if model_type in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and \
            model_type not in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "decoder", None
    return "encoder", None


def _load_hf_dir(path: Path) -> Source:
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
        kind, arch = hf_folder_kind(config)
        if kind == "seq2seq":
            loader: Any = transformers.AutoModelForSeq2SeqLM
        elif kind == "decoder":
            loader = transformers.AutoModelForCausalLM
        else:
            loader = getattr(transformers, arch, None) if arch else None
            loader = loader or transformers.AutoModel
        model = loader.from_pretrained(str(path), local_files_only=True, dtype=torch.float32).eval()
        tok = None
        if (path / "tokenizer_config.json").is_file() or (path / "tokenizer.json").is_file():
            tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)  # type: ignore[no-untyped-call]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError) as exc:
        # an unreadable config, missing weights or tokenizer, a model type this transformers lacks
        raise ManifestError(f"cannot load the Hugging Face folder {path}: {type(exc).__name__}: {exc}") from exc
    return Source(path.name, model, tok, kind=kind)
