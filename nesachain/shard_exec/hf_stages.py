"""Miner-side runners of a Hugging Face model's layer ranges, each step a call of the model's own forward
cut to the stage's layers (``hf_skeleton.Span``).

    DecoderStage   layers [a, b) of a decoder-only model, a KV cache per session
                   in/out {"hidden": (B, T, C)}
    EncoderStage   layers [a, b) of an encoder; in/out {"hidden": (B, T, C), "attention_mask": (B, T)}
    Seq2SeqStage   encoder layers [a, b) and decoder layers [c, d) of an encoder-decoder (see below)

An encoder-decoder's session on a stage runs, in order:

    the encoder pass   {"source": (B, S, C), "source_mask": (B, S)} -> the same names, after its encoder layers
                       (its S tokens count towards the session's max_length, as the decoder's do)
    the first decoder step {"hidden": (B, T, C), "encoder_output": (B, S, C), "source_mask": (B, S)}
                       -> the same names: the stage keeps the encoder's output (the client's, after the
                       encoder's final norm) for the session, its decoder layers' cross-attention keys and
                       values come from it, and it passes it on to the next stage (a later step may carry
                       it again, identical)
    each later step    {"hidden": (B, 1, C)} -> {"hidden"}

Where a model's layers pass each other more than the hidden state (T5's position bias), a stage's input and
output also hold those tensors as ``carry.NAME`` (``source_carry.NAME`` in an encoder pass), except after the
stack's last layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode
from nesachain.shard_exec.hf_cache import StageCache
from nesachain.shard_exec.hf_model import HFSpec, Holding
from nesachain.shard_exec.hf_skeleton import Span, _Stop
from nesachain.shard_exec.stage import Tensors, Values

__all__ = ["DecoderStage", "EncoderStage", "Seq2SeqStage", "build_hf_stage", "check_hidden", "check_mask"]


def check_hidden(t: torch.Tensor | None, width: int, name: str = "hidden") -> torch.Tensor:
    """A (B, T, C) float tensor with C == width, else a WireError."""
    if t is None:
        raise WireError(ErrorCode.BAD_REQUEST, f"missing tensor {name!r}")
    if not t.is_floating_point():
        raise WireError(ErrorCode.BAD_DTYPE, f"{name} must be floating point, got {t.dtype}")
    if t.ndim != 3 or t.shape[2] != width or t.shape[1] < 1 or t.shape[0] < 1:
        raise WireError(ErrorCode.BAD_SHAPE, f"{name} must be (B, T>=1, {width}), got {tuple(t.shape)}")
    return t.to(torch.float32)


def check_mask(mask: torch.Tensor | None, h: torch.Tensor, name: str = "attention_mask") -> torch.Tensor:
    """An integer (B, T) mask matching ``h`` (all ones when absent), else a WireError."""
    if mask is None:
        return torch.ones(h.shape[:2], dtype=torch.int64)
    if mask.is_floating_point() or mask.is_complex():
        raise WireError(ErrorCode.BAD_DTYPE, f"{name} must be integer, got {mask.dtype}")
    if tuple(mask.shape) != tuple(h.shape[:2]):
        raise WireError(ErrorCode.BAD_SHAPE, f"{name} {tuple(mask.shape)} does not match {tuple(h.shape[:2])}")
    return mask.to(torch.int64)


def _embeds_for(holding: Holding, h: torch.Tensor) -> torch.Tensor:
    """What a stage passes the model's forward as ``inputs_embeds``: anything of the embeddings' width, since
    the first held layer gets ``h`` in place of what the forward makes of it; ``h`` itself where it fits."""
    width = holding.spec.embed_width
    return h if h.shape[-1] == width else h.new_zeros(*h.shape[:-1], width)


def _carried_in(span: Span, start: int, tensors: Tensors, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors a stage starting at layer ``start`` > 0 takes besides the hidden state (``prefix`` + their
    names: T5's position bias), as the previous stage passed them on; at layer 0 the model computes them
    itself. One that is not sent is not put in: the layer gets what the model's own loop gives it there
    (a miner's throughput probe sends none; a client sends what the previous hop returned)."""
    if start == 0 or not span.io.carry:
        return {}
    out = {}
    for c in span.io.carry:
        t = tensors.get(prefix + c.name)
        if t is None:
            continue
        if not t.is_floating_point():
            raise WireError(ErrorCode.BAD_DTYPE, f"{prefix + c.name} must be floating point, got {t.dtype}")
        out[c.name] = t.to(torch.float32)
    return out


def _carried_out(carried: dict[str, torch.Tensor], prefix: str) -> Tensors:
    return {prefix + name: t for name, t in carried.items()}


def _leaf_stops(layer: torch.nn.Module, stop: Callable[[], bool]) -> list[Any]:
    """Hooks that leave a warm-up (``_Stop``) before the layer's next operation once ``stop()`` is true."""
    def check(*_: Any) -> None:
        if stop():
            raise _Stop(torch.empty(0))

    return [m.register_forward_pre_hook(check) for m in layer.modules() if next(m.children(), None) is None]


class DecoderStage:
    """Decoder layers [start, end) with a per-session KV cache; input/output ``{"hidden": (B, T, C)}``."""

    kind = "decoder"

    def __init__(self, holding: Holding) -> None:
        self.holding, self.model = holding, holding.model
        self.stack = holding.spec.stacks[0]
        self.span = holding.spans[self.stack.role]
        held = holding.held[self.stack.role]
        self.start, self.end, self.held = held.start, held.stop, held
        self.layers = torch.nn.ModuleList([self.span.layers[i] for i in held])
        self.width = self.stack.width
        self.param_bytes = holding.param_bytes
        assert self.stack.cache is not None  # a decoder's plan always has one (hf_trace)
        self.layout = self.stack.cache
        self._scratch: tuple[torch.Tensor, StageCache] | None = None

    def session_bytes(self, batch: int, max_length: int) -> int:
        return StageCache.bytes_for(self.layout, self.held, batch, max_length)

    def new_state(self, batch: int, max_length: int) -> StageCache:
        return StageCache(self.layout, self.held, batch, max_length)

    def n_tokens(self, tensors: Tensors) -> int:
        h = tensors.get("hidden")
        return int(h.shape[1]) if h is not None and h.ndim == 3 else 0

    def run(self, tensors: Tensors, values: Values, position: int, state: Any) -> tuple[Tensors, Values]:
        cache: StageCache = state
        h = check_hidden(tensors.get("hidden"), self.width)  # (B, T, C)
        b, t, _ = h.shape
        if b != cache.batch:
            raise WireError(ErrorCode.BAD_SHAPE, f"batch {b} but the session was opened with {cache.batch}")
        carried = _carried_in(self.span, self.start, tensors, "carry.")
        cache.begin(position, t)
        try:
            with torch.inference_mode():
                out, passed = self.span.run_stage(self._call(h, cache), h, self.start, self.end, carried)
        except BaseException:
            cache.rollback()
            raise
        cache.commit()
        return {"hidden": out, **_carried_out(passed, "carry.")}, {}

    def _call(self, h: torch.Tensor, cache: StageCache) -> Callable[[], Any]:
        x = _embeds_for(self.holding, h)
        return lambda: self.model(inputs_embeds=x, past_key_values=cache.cache, use_cache=True)

    def warm(self, stop: Callable[[], bool] | None = None) -> None:
        """Run the first layer on a scratch token (no session's state is touched): brings the compute path
        back into the caches after a pause, at about a tenth of a step's cost. With ``stop``, checked before
        each of the layer's operations (its leaf modules), it returns early once ``stop()`` is true."""
        if self._scratch is None:
            gen = torch.Generator().manual_seed(0)
            self._scratch = (torch.randn(1, 1, self.width, generator=gen),
                             StageCache(self.layout, range(self.start, self.start + 1), 1, 1))
        h, cache = self._scratch  # never committed: it stays empty
        first = self.span.layers[self.start]

        def leave(*_: Any) -> None:
            raise _Stop(torch.empty(0))

        handles = [first.register_forward_hook(leave)]
        if stop is not None:
            handles += _leaf_stops(first, stop)
        cache.begin(0, 1)
        try:
            with torch.inference_mode():
                self.span.run_stage(self._call(h, cache), h, self.start, self.end)
        finally:
            cache.rollback()
            for handle in handles:
                handle.remove()

    def probe(self) -> tuple[Tensors, Values, int]:
        return {"hidden": torch.randn(1, 1, self.width)}, {}, 1


class EncoderStage:
    """Encoder layers [start, end); input/output ``{"hidden": (B, T, C), "attention_mask": (B, T)}``."""

    kind = "encoder"

    def __init__(self, holding: Holding) -> None:
        self.holding, self.model = holding, holding.model
        self.stack = holding.spec.stacks[0]
        self.span = holding.spans[self.stack.role]
        held = holding.held[self.stack.role]
        self.start, self.end = held.start, held.stop
        self.layers = torch.nn.ModuleList([self.span.layers[i] for i in held])
        self.width = self.stack.width
        self.param_bytes = holding.param_bytes

    def session_bytes(self, batch: int, max_length: int) -> int:
        return 0

    def new_state(self, batch: int, max_length: int) -> None:
        return None

    def n_tokens(self, tensors: Tensors) -> int:
        return 0

    def run(self, tensors: Tensors, values: Values, position: int, state: Any) -> tuple[Tensors, Values]:
        h = check_hidden(tensors.get("hidden"), self.width)  # (B, T, C)
        mask = check_mask(tensors.get("attention_mask"), h)
        carried = _carried_in(self.span, self.start, tensors, "carry.")
        with torch.inference_mode():
            x = _embeds_for(self.holding, h)
            out, passed = self.span.run_stage(lambda: self.model(inputs_embeds=x, attention_mask=mask), h,
                                              self.start, self.end, carried)
        return {"hidden": out, "attention_mask": mask, **_carried_out(passed, "carry.")}, {}

    def probe(self) -> tuple[Tensors, Values, int]:
        return {"hidden": torch.randn(1, 16, self.width)}, {}, 16

    def warm(self, stop: Callable[[], bool] | None = None) -> None:
        """Nothing to warm: an encoder has no decode loop."""


@dataclass
class Seq2SeqState:
    """One session of an encoder-decoder on a stage: the decoder's caches and the encoder's output."""

    cache: StageCache
    max_length: int
    encoder_output: torch.Tensor | None = None
    source_mask: torch.Tensor | None = None

    def release(self) -> None:
        self.cache.release()
        self.encoder_output = self.source_mask = None


class Seq2SeqStage:
    """Encoder layers and decoder layers of one block range of an encoder-decoder (see the module)."""

    kind = "seq2seq"

    def __init__(self, holding: Holding) -> None:
        self.holding, self.model = holding, holding.model
        self.enc, self.dec = holding.spec.stack("encoder"), holding.spec.stack("decoder")
        self.enc_held, self.dec_held = holding.held["encoder"], holding.held["decoder"]
        self.encoder = holding.part(holding.spec.parts["encoder"])
        self.decoder = holding.part(holding.spec.parts["decoder"])
        assert self.dec.cache is not None and self.dec.cross is not None  # a seq2seq plan has both (hf_trace)
        self.layout, self.cross = self.dec.cache, self.dec.cross
        self.param_bytes = holding.param_bytes

    def session_bytes(self, batch: int, max_length: int) -> int:
        kv = StageCache.bytes_for(self.layout, self.dec_held, batch, max_length, self.cross)
        return kv + batch * max_length * self.enc.width * 4  # the encoder's output, kept for the session

    def new_state(self, batch: int, max_length: int) -> Seq2SeqState:
        return Seq2SeqState(StageCache(self.layout, self.dec_held, batch, max_length, self.cross), max_length)

    def n_tokens(self, tensors: Tensors) -> int:
        """The decoder's tokens of a step, or the source's of the encoder pass: a session's ``max_length``
        covers both."""
        h = tensors.get("hidden", tensors.get("source"))
        return int(h.shape[1]) if h is not None and h.ndim == 3 else 0

    def run(self, tensors: Tensors, values: Values, position: int, state: Any) -> tuple[Tensors, Values]:
        st: Seq2SeqState = state
        if "source" in tensors:
            return self._encode(tensors, position, st), {}
        return self._decode(tensors, position, st), {}

    def _encode(self, tensors: Tensors, position: int, st: Seq2SeqState) -> Tensors:
        src = check_hidden(tensors.get("source"), self.enc.width, "source")  # (B, S, C)
        mask = check_mask(tensors.get("source_mask"), src, "source_mask")
        if src.shape[0] != st.cache.batch:
            raise WireError(ErrorCode.BAD_SHAPE, f"batch {src.shape[0]} but the session was opened with "
                                                 f"{st.cache.batch}")
        if src.shape[1] > st.max_length:
            raise WireError(ErrorCode.PAST_MAX_LENGTH, f"{src.shape[1]} source tokens exceed max_length "
                                                       f"{st.max_length}")
        if position != 0 or st.cache.length:
            raise WireError(ErrorCode.OUT_OF_ORDER, "the encoder pass must come first, at position 0")
        out, passed = src, dict[str, torch.Tensor]()
        if len(self.enc_held):
            span = self.holding.spans["encoder"]
            carried = _carried_in(span, self.enc_held.start, tensors, "source_carry.")
            with torch.inference_mode():
                out, passed = span.run_stage(
                    lambda: self.encoder(inputs_embeds=_embeds_for(self.holding, src), attention_mask=mask), src,
                    self.enc_held.start, self.enc_held.stop, carried)
        else:  # no encoder layer here: what the previous stage passed goes on
            passed = {k.removeprefix("source_carry."): t for k, t in tensors.items() if k.startswith("source_carry.")}
        return {"source": out, "source_mask": mask, **_carried_out(passed, "source_carry.")}

    def _decode(self, tensors: Tensors, position: int, st: Seq2SeqState) -> Tensors:
        h = check_hidden(tensors.get("hidden"), self.dec.width)  # (B, T, C)
        passed: Tensors = {}
        fresh = False
        if "encoder_output" in tensors:
            enc = check_hidden(tensors.get("encoder_output"), self.enc.width, "encoder_output")
            mask = check_mask(tensors.get("source_mask"), enc, "source_mask")
            if enc.shape[0] != h.shape[0] or enc.shape[1] > st.max_length:
                raise WireError(ErrorCode.BAD_SHAPE, f"encoder_output {tuple(enc.shape)} does not fit the session")
            if st.encoder_output is None:
                st.encoder_output, st.source_mask, fresh = enc, mask, True
            elif not (torch.equal(enc, st.encoder_output) and st.source_mask is not None
                      and torch.equal(mask, st.source_mask)):
                raise WireError(ErrorCode.BAD_REQUEST, "the session has another encoder output already")
            passed = {"encoder_output": enc, "source_mask": mask}
        if st.encoder_output is None or st.source_mask is None:
            raise WireError(ErrorCode.BAD_REQUEST, "the first decoder step must carry encoder_output")
        if h.shape[0] != st.cache.batch:
            raise WireError(ErrorCode.BAD_SHAPE, f"batch {h.shape[0]} but the session was opened with "
                                                 f"{st.cache.batch}")
        span = self.holding.spans["decoder"]
        carried = _carried_in(span, self.dec_held.start, tensors, "carry.") if len(self.dec_held) else {}
        st.cache.begin(position, h.shape[1])
        enc, mask = st.encoder_output, st.source_mask
        try:
            out = h
            through = {k.removeprefix("carry."): t for k, t in tensors.items() if k.startswith("carry.")}
            if len(self.dec_held):
                with torch.inference_mode():
                    out, through = span.run_stage(
                        lambda: self.decoder(inputs_embeds=_embeds_for(self.holding, h), encoder_hidden_states=enc,
                                             encoder_attention_mask=mask,
                                             past_key_values=st.cache.cache, use_cache=True),
                        h, self.dec_held.start, self.dec_held.stop, carried)
        except BaseException:
            st.cache.rollback()
            if fresh:
                st.encoder_output = st.source_mask = None
            raise
        st.cache.commit()
        return {"hidden": out, **passed, **_carried_out(through, "carry.")}

    def probe(self) -> tuple[Tensors, Values, int]:
        """A decoder step with a one-token encoder output (sent again at each probe step: the same one)."""
        return ({"hidden": torch.randn(1, 1, self.dec.width), "encoder_output": torch.randn(1, 1, self.enc.width),
                 "source_mask": torch.ones(1, 1, dtype=torch.int64)}, {}, 1)

    def warm(self, stop: Callable[[], bool] | None = None) -> None:
        """Not warmed ahead (the decoder's steps need the session's encoder output)."""


def build_hf_stage(spec: HFSpec, blocks: list[dict[str, Any]], state: dict[str, torch.Tensor]
                   ) -> DecoderStage | EncoderStage | Seq2SeqStage:
    """The runner of the consecutive ``blocks`` from their weights (block-file keys, see ``hf_model``)."""
    held = spec.layer_ranges(blocks)
    paths = {s.role: s.path for s in spec.stacks}
    model_state: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if len(spec.stacks) == 1:
            role, rest = spec.stacks[0].role, key
        else:
            role, _, rest = key.partition(".")
        if role not in paths:
            from nesachain.shard_exec.errors import ManifestError

            raise ManifestError(f"block weight {key!r} names no stack of the model")
        model_state[f"{paths[role]}.{rest}"] = value
    holding = Holding(spec, model_state, held, client=False)
    if spec.kind == "decoder":
        return DecoderStage(holding)
    if spec.kind == "encoder":
        return EncoderStage(holding)
    return Seq2SeqStage(holding)
