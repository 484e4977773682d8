"""Miner-side runners for Hugging Face decoder (Llama family, GPT-2) and encoder (BERT) layer ranges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode
from nesachain.shard_exec.hf_family import HFFamily, build_meta_model, get_path, materialize
from nesachain.shard_exec.kv_cache import BlockKVCache
from nesachain.shard_exec.stage import Tensors, Values

__all__ = ["DecoderStage", "EncoderStage", "build_hf_stage", "check_hidden"]


def check_hidden(t: torch.Tensor | None, width: int, name: str = "hidden") -> torch.Tensor:
    """A (B, T, C) float tensor with C == width, else a WireError."""
    if t is None:
        raise WireError(ErrorCode.BAD_REQUEST, f"missing tensor {name!r}")
    if not t.is_floating_point():
        raise WireError(ErrorCode.BAD_DTYPE, f"{name} must be floating point, got {t.dtype}")
    if t.ndim != 3 or t.shape[2] != width or t.shape[1] < 1 or t.shape[0] < 1:
        raise WireError(ErrorCode.BAD_SHAPE, f"{name} must be (B, T>=1, {width}), got {tuple(t.shape)}")
    return t.to(torch.float32)


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) + sum(
        b.numel() * b.element_size() for b in module.buffers()
    )


class _WarmStopped(Exception):
    """Raised inside a warm-up to leave it early: a step has come."""


class DecoderStage:
    """Decoder layers [start, end) with a per-session KV cache; input/output ``{"hidden": (B, T, C)}``."""

    kind = "decoder"

    def __init__(self, layers: nn.ModuleList, start: int, config: Any, fam: HFFamily,
                 rotary: nn.Module | None) -> None:
        self.layers, self.start, self.config, self.fam, self.rotary = layers, start, config, fam, rotary
        self.width = int(config.hidden_size)
        heads = int(getattr(config, "num_attention_heads", getattr(config, "n_head", 0)))
        self.kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        self.head_dim = int(getattr(config, "head_dim", None) or self.width // heads)
        self.param_bytes = _param_bytes(layers) + (_param_bytes(rotary) if rotary is not None else 0)
        self._scratch: tuple[torch.Tensor, BlockKVCache] | None = None  # warm()'s token and one-layer cache

    def session_bytes(self, batch: int, max_length: int) -> int:
        return BlockKVCache.bytes_for(len(self.layers), batch, self.kv_heads, self.head_dim, max_length)

    def new_state(self, batch: int, max_length: int) -> BlockKVCache:
        return BlockKVCache(self.start, len(self.layers), batch, self.kv_heads, self.head_dim, max_length)

    def n_tokens(self, tensors: Tensors) -> int:
        h = tensors.get("hidden")
        return int(h.shape[1]) if h is not None and h.ndim == 3 else 0

    def run(self, tensors: Tensors, values: Values, position: int, state: Any) -> tuple[Tensors, Values]:
        cache: BlockKVCache = state
        h = check_hidden(tensors.get("hidden"), self.width)  # (B, T, C)
        b, t, _ = h.shape
        if b != cache.shape[0]:
            raise WireError(ErrorCode.BAD_SHAPE, f"batch {b} but the session was opened with {cache.shape[0]}")
        cache.begin(position, t)
        try:
            with torch.inference_mode():
                h = self._forward(h, position, cache)
        except BaseException:
            cache.rollback()
            raise
        cache.commit()
        return {"hidden": h}, {}

    def warm(self, stop: Callable[[], bool] | None = None) -> None:
        """Run the first layer on a scratch token (no session's state is touched): brings the compute path
        back into the caches after a pause, at about a tenth of a step's cost. With ``stop``, checked before
        each of the layer's operations (its leaf modules), it returns early once ``stop()`` is true."""
        if self._scratch is None:
            gen = torch.Generator().manual_seed(0)
            self._scratch = (torch.randn(1, 1, self.width, generator=gen),
                             BlockKVCache(self.start, 1, 1, self.kv_heads, self.head_dim, 1))
        h, cache = self._scratch  # never committed: it stays empty
        handles = []
        if stop is not None:
            def check(*_: Any) -> None:
                if stop():
                    raise _WarmStopped

            handles = [m.register_forward_pre_hook(check) for m in self.layers[0].modules()
                       if next(m.children(), None) is None]
        cache.begin(0, 1)
        try:
            with torch.inference_mode():
                self._forward(h, 0, cache, self.layers[:1])
        except _WarmStopped:
            pass
        finally:
            cache.rollback()
            for handle in handles:
                handle.remove()

    def _forward(self, h: torch.Tensor, position: int, cache: BlockKVCache,
                 layers: nn.ModuleList | None = None) -> torch.Tensor:
        b, t, _ = h.shape
        pos = torch.arange(position, position + t)  # (T,)
        position_ids = pos.unsqueeze(0).expand(b, t)  # (B, T)
        mask = None  # causal via SDPA's is_causal (prefill at 0) or nothing to mask (one new token)
        if t > 1 and position > 0:
            mask = torch.ones(t, position + t, dtype=torch.bool).tril(diagonal=position)[None, None]
        kwargs: dict[str, Any] = {"past_key_values": cache, "use_cache": True, "cache_position": pos,
                                  "attention_mask": mask}
        if self.rotary is not None:
            kwargs["position_ids"] = position_ids
            kwargs["position_embeddings"] = self.rotary(h, position_ids)  # (cos, sin)
        for layer in self.layers if layers is None else layers:
            out = layer(h, **kwargs)
            h = out[0] if isinstance(out, tuple) else out
        return h

    def probe(self) -> tuple[Tensors, Values, int]:
        return {"hidden": torch.randn(1, 1, self.width)}, {}, 1


class EncoderStage:
    """Encoder layers [start, end); input/output ``{"hidden": (B, T, C), "attention_mask": (B, T)}``."""

    kind = "encoder"

    def __init__(self, layers: nn.ModuleList, config: Any) -> None:
        self.layers, self.config = layers, config
        self.width = int(config.hidden_size)
        self.param_bytes = _param_bytes(layers)

    def session_bytes(self, batch: int, max_length: int) -> int:
        return 0

    def new_state(self, batch: int, max_length: int) -> None:
        return None

    def n_tokens(self, tensors: Tensors) -> int:
        return 0

    def run(self, tensors: Tensors, values: Values, position: int, state: Any) -> tuple[Tensors, Values]:
        from transformers.modeling_attn_mask_utils import _prepare_4d_attention_mask_for_sdpa

        h = check_hidden(tensors.get("hidden"), self.width)  # (B, T, C)
        mask = tensors.get("attention_mask")
        if mask is None:
            mask = torch.ones(h.shape[:2], dtype=torch.int64)
        if mask.is_floating_point():
            raise WireError(ErrorCode.BAD_DTYPE, f"attention_mask must be integer, got {mask.dtype}")
        if tuple(mask.shape) != tuple(h.shape[:2]):
            raise WireError(ErrorCode.BAD_SHAPE,
                            f"attention_mask {tuple(mask.shape)} does not match hidden {tuple(h.shape[:2])}")
        with torch.inference_mode():
            ext = _prepare_4d_attention_mask_for_sdpa(mask, h.dtype, tgt_len=h.shape[1])  # (B, 1, T, T)|None
            for layer in self.layers:
                h = layer(h, attention_mask=ext)[0]
        return {"hidden": h, "attention_mask": mask}, {}

    def probe(self) -> tuple[Tensors, Values, int]:
        return {"hidden": torch.randn(1, 16, self.width)}, {}, 16

    def warm(self, stop: Callable[[], bool] | None = None) -> None:
        """Nothing to warm: an encoder has no decode loop."""


def build_hf_stage(hf_class: str, config_dict: dict[str, Any], fam: HFFamily, start: int, end: int,
                   state: dict[str, torch.Tensor]) -> DecoderStage | EncoderStage:
    """Rebuild layers [start, end) from the config on meta, then load ``state`` (keys ``"<i>.<param>"``)."""
    meta, config = build_meta_model(hf_class, config_dict)
    all_layers = get_path(meta, fam.layers)
    layers = nn.ModuleList([all_layers[i] for i in range(start, end)])
    local = {f"{int(k.split('.', 1)[0]) - start}.{k.split('.', 1)[1]}": v for k, v in state.items()}
    materialize(layers, local, f"layers {start}:{end}", config)
    rotary_cls = type(get_path(meta, fam.rotary)) if fam.rotary is not None else None
    del meta, all_layers
    if fam.kind == "encoder":
        return EncoderStage(layers, config)
    rotary = rotary_cls(config=config) if rotary_cls is not None else None  # buffers computed on CPU
    return DecoderStage(layers, start, config, fam, rotary)
