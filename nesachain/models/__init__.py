"""Models shipped inside installed packages (never a hub download).

    load_smollm2()            -> (LlamaForCausalLM fp32 eval, tokenizer)   SmolLM2-135M-Instruct
    load_minilm()             -> (BertModel fp32 eval, tokenizer)          all-MiniLM-L6-v2
    load_efficientnet_lite0() -> EfficientNet fp32 eval                    EfficientNet-Lite0

Converted weights are cached under ``$NESA_CACHE_DIR/models`` (default ``<repo>/.cache/models``).
Importing this package loads nothing.
"""

from __future__ import annotations

from nesachain.models._paths import cache_root
from nesachain.models.efficientnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_efficientnet_lite0,
    load_efficientnet_lite0,
)
from nesachain.models.errors import ModelLoadError
from nesachain.models.minilm import load_minilm, mean_pool
from nesachain.models.smollm2 import load_smollm2, smollm2_cache_dir

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModelLoadError",
    "build_efficientnet_lite0",
    "cache_root",
    "load_efficientnet_lite0",
    "load_minilm",
    "load_smollm2",
    "mean_pool",
    "smollm2_cache_dir",
]
