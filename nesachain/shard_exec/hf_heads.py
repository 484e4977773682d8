"""Client-side parts of Hugging Face models: everything but the layers, run through the model's own forward.

The prompt's tokens never leave the client: it turns them into the first layer's input, sends hidden states
to the first miner, and turns the last miner's hidden states into the model's output itself. Both ends are
calls of the model's forward on a skeleton whose layers are all shells (``hf_skeleton``): ``embed`` stops at
the first layer's input; ``logits`` (``finish``) puts the route's output in as the last layer's and lets the
model finish (final norm, head, soft-capping, scaling: whatever its code does). Where the model's trace
showed that those ends are a plain chain of modules (the token embedding; a final norm and the head), the
chain is called instead: the same modules on the same tensors, without the rest of the forward.

    DecoderHead    embed(ids, position) -> (B, T, C); logits(hidden, ids, position) -> (B, T, V)
    EncoderHead    embed(ids, mask, token_type_ids) -> (B, T, C); finish(hidden, ...) -> the model's output
    Seq2SeqHead    encoder_embed / encoder_finish, then decoder_embed / logits
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nesachain.shard_exec.errors import ManifestError
from nesachain.shard_exec.hf_cache import StageCache
from nesachain.shard_exec.hf_model import HFSpec, Holding

__all__ = ["DecoderHead", "EncoderHead", "Seq2SeqHead", "build_head"]


def _output(out: Any, name: str) -> torch.Tensor:
    t = getattr(out, name, None)
    if t is None:
        t = out[0]
    if not isinstance(t, torch.Tensor):
        raise ManifestError(f"the model's output has no {name} tensor")
    return t


class _Head:
    def __init__(self, holding: Holding) -> None:
        self.holding, self.model, self.spec = holding, holding.model, holding.spec
        self.config: Any = self.model.config
        self._embed = self._chain(self.spec.embed_chain)
        self._head = self._chain(self.spec.head_chain)

    def _chain(self, names: list[str] | None) -> list[nn.Module] | None:
        return None if names is None else [self.holding.part(n) for n in names]

    @staticmethod
    def _apply(chain: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
        for m in chain:
            x = m(x)
        return x


class DecoderHead(_Head):
    """Embeddings in, the model's logits out, for a decoder-only model."""

    def __init__(self, holding: Holding) -> None:
        super().__init__(holding)
        self.stack = self.spec.stacks[0]
        self.span = holding.spans[self.stack.role]
        assert self.stack.cache is not None  # a decoder's plan always has one (hf_trace)
        self._mirror = StageCache(self.stack.cache, range(0), 1, 1 << 62)
        self.eos_token_id = getattr(self.config, "eos_token_id", None)
        self.width = self.stack.width

    @torch.inference_mode()
    def embed(self, ids: torch.Tensor, position: int) -> torch.Tensor:
        """(B, T) token ids starting at ``position`` -> (B, T, C): the first layer's input."""
        if self._embed is not None:
            return self._apply(self._embed, ids)
        cache = self._mirror.at(position)
        return self.span.run_embed(lambda: self.model(input_ids=ids, past_key_values=cache, use_cache=True))

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor, ids: torch.Tensor, position: int) -> torch.Tensor:
        """(B, T, C) last-layer output for tokens ``ids`` (B, T) at ``position`` -> (B, T, V) logits."""
        if self._head is not None:
            return self._apply(self._head, hidden)
        cache = self._mirror.at(position)
        out = self.span.run_finish(lambda: self.model(input_ids=ids, past_key_values=cache, use_cache=True), hidden)
        return _output(out, "logits")


class EncoderHead(_Head):
    """What an encoder computes before its first layer and after its last."""

    def __init__(self, holding: Holding) -> None:
        super().__init__(holding)
        self.stack = self.spec.stacks[0]
        self.span = holding.spans[self.stack.role]
        self.width = self.stack.width

    def _call(self, ids: torch.Tensor, mask: torch.Tensor | None, token_type_ids: torch.Tensor | None) -> Any:
        kwargs: dict[str, Any] = {"input_ids": ids,
                                  "attention_mask": mask if mask is not None else torch.ones_like(ids)}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return lambda: self.model(**kwargs)

    @torch.inference_mode()
    def embed(self, ids: torch.Tensor, mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids -> (B, T, C), the first layer's input."""
        return self.span.run_embed(self._call(ids, mask, token_type_ids))

    @torch.inference_mode()
    def finish(self, hidden: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The last layer's output -> the model's first output (its last hidden state, for a base model)."""
        if self._head is not None:
            return self._apply(self._head, hidden)
        return _output(self.span.run_finish(self._call(ids, mask, token_type_ids), hidden), "last_hidden_state")


class Seq2SeqHead(_Head):
    """Both ends of an encoder-decoder's encoder and of its decoder."""

    def __init__(self, holding: Holding) -> None:
        super().__init__(holding)
        from nesachain.shard_exec.hf_trace import decoder_start

        self.enc, self.dec = self.spec.stack("encoder"), self.spec.stack("decoder")
        self.encoder = holding.part(self.spec.parts["encoder"])
        self.decoder = holding.part(self.spec.parts["decoder"])
        assert self.dec.cache is not None and self.dec.cross is not None  # a seq2seq plan has both
        self._mirror = StageCache(self.dec.cache, range(0), 1, 1 << 62, self.dec.cross)
        self.eos_token_id = getattr(self.config, "eos_token_id", None)
        self.decoder_start_token_id = decoder_start(self.config)

    @torch.inference_mode()
    def encoder_embed(self, src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.holding.spans["encoder"].run_embed(lambda: self.encoder(input_ids=src, attention_mask=mask))

    @torch.inference_mode()
    def encoder_finish(self, hidden: torch.Tensor, src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The encoder's last layer output -> the encoder's output (after its final norm, if any)."""
        out = self.holding.spans["encoder"].run_finish(lambda: self.encoder(input_ids=src, attention_mask=mask), hidden)
        return _output(out, "last_hidden_state")

    @torch.inference_mode()
    def decoder_embed(self, ids: torch.Tensor, position: int, encoder_output: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
        cache = self._mirror.at(position)
        return self.holding.spans["decoder"].run_embed(
            lambda: self.decoder(input_ids=ids, encoder_hidden_states=encoder_output, encoder_attention_mask=mask,
                                 past_key_values=cache, use_cache=True))

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor, ids: torch.Tensor, position: int, encoder_output: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        if self._head is not None:
            return self._apply(self._head, hidden)
        cache = self._mirror.at(position)
        out = self.holding.spans["decoder"].run_finish(
            lambda: self.model(encoder_outputs=(encoder_output,), attention_mask=mask, decoder_input_ids=ids,
                               past_key_values=cache, use_cache=True), hidden)
        return _output(out, "logits")


def build_head(manifest: dict[str, Any], state: dict[str, torch.Tensor]) -> DecoderHead | EncoderHead | Seq2SeqHead:
    """Rebuild the client part of an HF manifest from ``client.safetensors``'s weights."""
    if manifest.get("hf") is None:
        raise ManifestError("graph models have no client head")
    spec = HFSpec.from_manifest(manifest)
    holding = Holding(spec, state, {}, client=True)
    if spec.kind == "decoder":
        return DecoderHead(holding)
    if spec.kind == "encoder":
        return EncoderHead(holding)
    return Seq2SeqHead(holding)
