"""Client-side parts of Hugging Face models: embeddings in, final norm and LM head out.

The prompt's tokens never leave the client: it embeds them, sends hidden states to the first miner,
and turns the last miner's hidden states into logits itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nesachain.shard_exec.errors import ManifestError
from nesachain.shard_exec.hf_family import build_meta_model, family_by_paths, get_path, materialize, sub_state

__all__ = ["DecoderHead", "EncoderHead", "build_head"]


def _part(meta: nn.Module, path: str | None, state: dict[str, torch.Tensor], prefix: str,
          config: Any) -> nn.Module | None:
    if path is None:
        return None
    return materialize(get_path(meta, path), sub_state(state, prefix), prefix, config)


class DecoderHead:
    """Embeddings (+ learned positions for GPT-2), final norm and LM head of a decoder-only model."""

    def __init__(self, embed: nn.Module, pos_embed: nn.Module | None, norm: nn.Module, head: nn.Module,
                 config: Any) -> None:
        self.embed_tokens, self.pos_embed, self.norm, self.head, self.config = embed, pos_embed, norm, head, config
        self.eos_token_id = getattr(config, "eos_token_id", None)

    @torch.inference_mode()
    def embed(self, ids: torch.Tensor, position: int) -> torch.Tensor:
        """(B, T) token ids starting at ``position`` -> (B, T, C) hidden states."""
        h: torch.Tensor = self.embed_tokens(ids)
        if self.pos_embed is not None:
            pos = torch.arange(position, position + ids.shape[1]).unsqueeze(0)  # (1, T)
            h = h + self.pos_embed(pos)
        return h

    @torch.inference_mode()
    def final_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The last layer's output through the final norm (what HF calls last_hidden_state)."""
        out: torch.Tensor = self.norm(hidden)
        return out

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, C) last-layer output -> (B, T, V) logits."""
        out: torch.Tensor = self.head(self.norm(hidden))
        return out


class EncoderHead:
    """Embeddings of an encoder (word + position + token type, then its LayerNorm)."""

    def __init__(self, embeddings: nn.Module) -> None:
        self.embeddings = embeddings

    @torch.inference_mode()
    def embed(self, ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, T, C)."""
        out: torch.Tensor = self.embeddings(input_ids=ids, token_type_ids=token_type_ids)
        return out


def build_head(manifest: dict[str, Any], state: dict[str, torch.Tensor]) -> DecoderHead | EncoderHead:
    """Rebuild the client part of an HF manifest from ``client.safetensors``'s weights."""
    hf = manifest.get("hf")
    if hf is None:
        raise ManifestError("graph models have no client head")
    fam = family_by_paths(hf["family"], hf["layers_path"])
    meta, config = build_meta_model(hf["class"], hf["config"])
    embed = _part(meta, fam.embed, state, "embed", config)
    assert embed is not None  # every family has embeddings
    if fam.kind == "encoder":
        return EncoderHead(embed)
    pos = _part(meta, fam.pos_embed, state, "pos_embed", config)
    norm = _part(meta, fam.norm, state, "norm", config)
    if norm is None or fam.head is None:
        raise ManifestError(f"family {fam.name} has no final norm or head")
    if hf.get("tied_head"):
        head_meta = get_path(meta, fam.head)
        head = head_meta.to_empty(device="cpu")
        head.weight = embed.weight
        if getattr(head, "bias", None) is not None:
            raise ManifestError("a tied head with a bias is not supported")
    else:
        head = _part(meta, fam.head, state, "head", config)
    if head is None:
        raise ManifestError("the manifest's client file has no head")
    return DecoderHead(embed, pos, norm, head.eval(), config)
