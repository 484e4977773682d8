"""Model-level clients: generation for decoders and encoder-decoders, embeddings for encoders, forward for graph
models.

The client keeps everything of a model but its layers (``client.safetensors`` of the shard folder: the
embeddings, the final norm, the head) and sends only hidden states to the route. An encoder-decoder's route
runs the encoder pass first, then the decoder's steps (``nesachain.shard_exec.hf_stages``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from nesachain.client.errors import ClientError
from nesachain.client.pipeline import RecoveryEvent, RemotePipeline, StandIn
from nesachain.client.route import Route
from nesachain.shard_exec.errors import ManifestError
from nesachain.shard_exec.hf_heads import DecoderHead, EncoderHead, Seq2SeqHead, build_head
from nesachain.shard_exec.sampling import Sampling, choose
from nesachain.shard_exec.shard_files import block_hashes, load_client_state, read_manifest

__all__ = ["DecoderClient", "EncoderClient", "GenerationStats", "GraphClient", "Seq2SeqClient", "load_tokenizer"]


def load_tokenizer(shard_dir: Path) -> Any:
    """The tokenizer saved in the shard folder (None if the model has none)."""
    manifest = read_manifest(shard_dir)
    if not manifest.get("tokenizer"):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(shard_dir / manifest["tokenizer"]),  # type: ignore[no-untyped-call]
                                         local_files_only=True)


H = TypeVar("H", DecoderHead, EncoderHead, Seq2SeqHead)


def _head_of(shard_dir: Path, kind: type[H], what: str) -> tuple[H, dict[str, Any]]:
    """The client's part of a shard folder's model (its head), and the manifest; ManifestError if the model is
    not ``what``."""
    manifest = read_manifest(shard_dir)
    head = build_head(manifest, load_client_state(shard_dir))
    if not isinstance(head, kind):
        raise ManifestError(f"{manifest['model_id']} is not {what}")
    return head, manifest


@dataclass
class GenerationStats:
    """Timings of one generation."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0
    recoveries: list[RecoveryEvent] = field(default_factory=list)
    stand_ins: list[StandIn] = field(default_factory=list)  # miners that took over a hop, and from which step
    hop_ms: list[list[float]] = field(default_factory=list)  # per decode step, per hop (cumulative)
    compute_ms: list[list[float]] = field(default_factory=list)
    bytes_per_step: list[list[int]] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        decode = self.total_s - self.ttft_s
        return (self.new_tokens - 1) / decode if self.new_tokens > 1 and decode > 0 else 0.0


class DecoderClient:
    """Prefill and decode a decoder-only model over a route; the head and embeddings stay here."""

    def __init__(self, head: DecoderHead, n_blocks: int, block_hashes: list[str] | None = None) -> None:
        self.head, self.n_blocks, self.block_hashes = head, n_blocks, block_hashes

    @classmethod
    def from_shard_dir(cls, shard_dir: Path) -> DecoderClient:
        head, manifest = _head_of(shard_dir, DecoderHead, "a decoder")
        return cls(head, manifest["n_blocks"], block_hashes(manifest))

    async def open(self, route: Route, max_length: int, timeout: float = 30.0,
                   session_base: str | None = None) -> RemotePipeline:
        route.validate(self.n_blocks)
        return await RemotePipeline.create(route, max_length, 1, timeout, session_base, self.block_hashes)

    async def hidden(self, pipe: RemotePipeline, ids: torch.Tensor, position: int) -> torch.Tensor:
        """Run (B, T) ids at ``position`` through the route; (B, T, C) output of the last layer."""
        out, _ = await pipe.run_step({"hidden": self.head.embed(ids, position)}, {}, position)
        return out["hidden"].float()

    async def generate(self, route: Route, ids: torch.Tensor, max_new_tokens: int,
                       sampling: Sampling = Sampling(), stop_at_eos: bool = False,  # noqa: B008
                       stats: GenerationStats | None = None, timeout: float = 30.0,
                       session_base: str | None = None) -> AsyncIterator[int]:
        """Stream new token ids for a (1, T) prompt, T >= 1."""
        if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] < 1:
            raise ClientError(f"the prompt must be (1, T) token ids with T >= 1, got {tuple(ids.shape)}"
                                 + (": it is empty" if ids.ndim == 2 and ids.shape[1] == 0 else ""))
        stats = stats if stats is not None else GenerationStats()
        t0 = time.perf_counter()
        pipe = await self.open(route, ids.shape[1] + max_new_tokens, timeout, session_base)
        gen = sampling.generator()
        try:
            position = ids.shape[1]
            stats.prompt_tokens = position
            h = await self.hidden(pipe, ids, 0)  # prefill
            tok = choose(self.head.logits(h[:, -1:], ids[:, -1:], position - 1)[:, -1], sampling, gen)  # (1,)
            stats.ttft_s = time.perf_counter() - t0
            for i in range(max_new_tokens):
                stats.new_tokens += 1
                yield int(tok[0])
                if i == max_new_tokens - 1 or (stop_at_eos and int(tok[0]) == self.head.eos_token_id):
                    break
                h = await self.hidden(pipe, tok.view(1, 1), position)
                stats.hop_ms.append(pipe.hop_ms)
                stats.compute_ms.append(pipe.compute_ms)
                stats.bytes_per_step.append(pipe.bytes_per_step)
                tok = choose(self.head.logits(h, tok.view(1, 1), position)[:, -1], sampling, gen)
                position += 1
        finally:
            stats.total_s = time.perf_counter() - t0
            stats.recoveries = list(pipe.recoveries)
            stats.stand_ins = list(pipe.stand_ins)
            await pipe.close()

    async def teacher_forced(self, route: Route, ids: torch.Tensor, timeout: float = 30.0
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One prefill of (1, T) ids: (the last layer's output (1, T, C), logits (1, T, V))."""
        pipe = await self.open(route, ids.shape[1], timeout)
        try:
            h = await self.hidden(pipe, ids, 0)
        finally:
            await pipe.close()
        return h, self.head.logits(h, ids, 0)


class EncoderClient:
    """Sentence embeddings from an encoder served over a route."""

    def __init__(self, head: EncoderHead, n_blocks: int, tokenizer: Any, block_hashes: list[str] | None = None) -> None:
        self.head, self.n_blocks, self.tokenizer, self.block_hashes = head, n_blocks, tokenizer, block_hashes

    @classmethod
    def from_shard_dir(cls, shard_dir: Path) -> EncoderClient:
        head, manifest = _head_of(shard_dir, EncoderHead, "an encoder")
        return cls(head, manifest["n_blocks"], load_tokenizer(shard_dir), block_hashes(manifest))

    async def hidden(self, pipe: RemotePipeline, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's output (its last hidden state, for a base model) for a tokenized batch."""
        ids, mask, types = batch["input_ids"], batch["attention_mask"].to(torch.int64), batch.get("token_type_ids")
        h = self.head.embed(ids, mask, types)
        out, _ = await pipe.run_step({"hidden": h, "attention_mask": mask}, {}, 0)
        return self.head.finish(out["hidden"].float(), ids, mask, types)

    async def embed(self, route: Route, texts: list[str], batch_size: int = 32,
                    timeout: float = 30.0) -> torch.Tensor:
        """(N, C) L2-normalised mean-pooled embeddings."""
        from nesachain.models.minilm import mean_pool

        route.validate(self.n_blocks)
        pipe = await RemotePipeline.create(route, 1, batch_size, timeout, block_hashes=self.block_hashes)
        out = []
        try:
            for i in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[i : i + batch_size], padding=True, truncation=True,
                                       max_length=256, return_tensors="pt")
                out.append(mean_pool(await self.hidden(pipe, batch), batch["attention_mask"]))
        finally:
            await pipe.close()
        return torch.cat(out)


class Seq2SeqClient:
    """Generation with an encoder-decoder over a route: one encoder pass, then the decoder's steps. The client
    keeps the encoder's output after the encoder's last layer and final norm, and sends it once, with the
    decoder's first step; each miner keeps it for the session (its decoder layers' cross-attention)."""

    def __init__(self, head: Seq2SeqHead, n_blocks: int, block_hashes: list[str] | None = None) -> None:
        self.head, self.n_blocks, self.block_hashes = head, n_blocks, block_hashes

    @classmethod
    def from_shard_dir(cls, shard_dir: Path) -> Seq2SeqClient:
        head, manifest = _head_of(shard_dir, Seq2SeqHead, "an encoder-decoder")
        return cls(head, manifest["n_blocks"], block_hashes(manifest))

    async def generate(self, route: Route, src: torch.Tensor, max_new_tokens: int,
                       sampling: Sampling = Sampling(), stop_at_eos: bool = False,  # noqa: B008
                       timeout: float = 30.0, session_base: str | None = None) -> AsyncIterator[int]:
        """Stream new token ids for a (1, S) source, S >= 1 (the decoder's start token not among them)."""
        if src.ndim != 2 or src.shape[0] != 1 or src.shape[1] < 1:
            raise ClientError(f"the source must be (1, S) token ids with S >= 1, got {tuple(src.shape)}")
        if max_new_tokens < 1:
            raise ClientError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        route.validate(self.n_blocks)
        pipe = await RemotePipeline.create(route, src.shape[1] + max_new_tokens, 1, timeout, session_base,
                                           self.block_hashes)
        gen = sampling.generator()
        mask = torch.ones_like(src)
        try:
            out, _ = await pipe.run_step({"source": self.head.encoder_embed(src, mask), "source_mask": mask}, {}, 0)
            enc = self.head.encoder_finish(out["source"].float(), src, mask)
            tok = torch.tensor([[self.head.decoder_start_token_id]])
            first = {"hidden": self.head.decoder_embed(tok, 0, enc, mask), "encoder_output": enc, "source_mask": mask}
            out, _ = await pipe.run_step(first, {}, 0)
            for position in range(max_new_tokens):
                if position:
                    h = self.head.decoder_embed(tok, position, enc, mask)
                    out, _ = await pipe.run_step({"hidden": h}, {}, position)
                logits = self.head.logits(out["hidden"].float(), tok, position, enc, mask)
                tok = choose(logits[:, -1], sampling, gen).view(1, 1)
                yield int(tok[0, 0])
                if stop_at_eos and int(tok[0, 0]) == self.head.eos_token_id:
                    break
        finally:
            await pipe.close()


class GraphClient:
    """Forward passes of an fx-partitioned model over a route (the input goes to the first stage)."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        if manifest.get("graph") is None:
            raise ManifestError(f"{manifest['model_id']} is not a graph model")
        self.inputs: list[str] = manifest["graph"]["inputs"]
        self.n_blocks: int = manifest["n_blocks"]
        self.block_hashes = block_hashes(manifest)

    @classmethod
    def from_shard_dir(cls, shard_dir: Path) -> GraphClient:
        return cls(read_manifest(shard_dir))

    async def forward(self, pipe: RemotePipeline, *xs: torch.Tensor) -> torch.Tensor:
        out, _ = await pipe.run_step(dict(zip(self.inputs, xs, strict=True)), {}, 0)
        return out["output"]

    async def open(self, route: Route, batch: int = 64, timeout: float = 30.0) -> RemotePipeline:
        route.validate(self.n_blocks)
        return await RemotePipeline.create(route, 1, batch, timeout, block_hashes=self.block_hashes)

