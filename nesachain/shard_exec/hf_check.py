"""Does a shard folder reproduce its model? The whole model and the folder's K stages, in this process.

A decoder (or an encoder-decoder) generates greedily from a fixed prompt both ways: the check says whether
the new tokens are identical, and how far the sharded logits are from the whole model's. An encoder's
outputs are compared directly. Where they differ, it names the first stage whose output differs from the
whole model's at the same layer. ``write_shards`` runs it (a few tokens) before a shard folder is put in
place; ``nesad model check`` runs it (16 tokens) for a user about to register a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nesachain.shard_exec.hf_heads import DecoderHead, EncoderHead, Seq2SeqHead, build_head
from nesachain.shard_exec.hf_skeleton import stack_at
from nesachain.shard_exec.reference import local_generate, local_generate_seq2seq
from nesachain.shard_exec.stage import StageRunner

__all__ = ["CheckResult", "check_shards"]

REL_TOL = 1e-4  # of the largest output magnitude: float rounding where shapes differ, never a wrong layer


@dataclass
class CheckResult:
    """The outcome of ``check_shards``."""

    kind: str
    n_stages: int
    identical: bool
    max_diff: float  # largest |sharded - whole| of the logits (or the encoder's outputs)
    scale: float  # largest |whole| of the same
    expected: list[int] = field(default_factory=list)  # greedy tokens of the whole model (generators)
    got: list[int] = field(default_factory=list)
    detail: str = ""


def _layer_outputs(model: nn.Module, path: str, call: Any) -> list[torch.Tensor]:
    """Each layer's hidden output of ``path`` during ``call()`` (the first call of each layer)."""
    layers = stack_at(model, path)
    outs: dict[int, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(layers):
        def hook(module: nn.Module, args: Any, output: Any, i: int = i) -> None:
            if i not in outs:
                outs[i] = (output if isinstance(output, torch.Tensor) else output[0]).detach().clone()

        handles.append(layer.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            call()
    finally:
        for h in handles:
            h.remove()
    return [outs[i] for i in sorted(outs)]


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max()) if a.shape == b.shape else float("inf")


def _first_bad(stage_outs: list[torch.Tensor], ends: list[int], ref: list[torch.Tensor]) -> int | None:
    """The first stage whose output differs from the whole model's at its last layer, if one does."""
    for i, (out, end) in enumerate(zip(stage_outs, ends, strict=True)):
        if end == 0:
            continue
        want = ref[end - 1]
        if _diff(out, want) > REL_TOL * max(1.0, float(want.abs().max())):
            return i
    return None


def _layer_inputs(layer: nn.Module, call: Any) -> dict[str, torch.Tensor]:
    """The tensor arguments ``layer`` gets during ``call()``, by name (its first call)."""
    from nesachain.shard_exec.hf_watch import arg_names

    names = arg_names(layer)
    got: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if got:
            return
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor):
                got[names[i] if i < len(names) else f"argument {i}"] = a.detach().clone()
        got.update({k: v.detach().clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)})

    handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.inference_mode():
            call()
    finally:
        handle.remove()
    return got


def _explain(i: int, stage: Any, whole: nn.Module, path: str, whole_call: Any, stage_call: Any) -> str:
    """Why stage ``i`` differs: which input of its first layer is not what the whole model gives that layer."""
    start = stage.start
    want = _layer_inputs(stack_at(whole, path)[start], whole_call)
    got = _layer_inputs(stage.span.layers[start], stage_call)
    hidden = stage.span.io.hidden_in
    for name, w in want.items():
        if name == hidden or (hidden == 0 and name == next(iter(want))):
            continue
        g = got.get(name)
        if g is None or _diff(g, w) > REL_TOL * max(1.0, float(w.abs().max())):
            return (f"stage {i} (layers {start}:{stage.end}) differs from the whole model: its layer {start} gets "
                    f"{name!r} computed from weights outside the layers, which a stage does not hold")
    return (f"stage {i} (layers {start}:{stage.end}) differs from the whole model though its layers get the same "
            "inputs: its layers use weights or state outside them")


def _stages(shard_dir: Path, n_blocks: int) -> list[StageRunner]:
    from nesachain.shard_exec.shard_files import load_stage

    return [load_stage(shard_dir, i, i + 1) for i in range(n_blocks)]


def check_shards(model: nn.Module, shard_dir: Path, ids: torch.Tensor, new_tokens: int = 16) -> CheckResult:
    """Run ``model`` whole and the shard folder's stages on ``ids`` (1, T); see the module."""
    from nesachain.shard_exec.shard_files import load_client_state, read_manifest

    manifest = read_manifest(shard_dir)
    head = build_head(manifest, load_client_state(shard_dir))
    stages = _stages(shard_dir, manifest["n_blocks"])
    if isinstance(head, DecoderHead):
        return _check_decoder(model, head, stages, ids, new_tokens)
    if isinstance(head, EncoderHead):
        return _check_encoder(model, head, stages, ids)
    return _check_seq2seq(model, head, stages, ids, new_tokens)


def _route(stages: list[StageRunner], states: list[Any], tensors: dict[str, torch.Tensor], position: int,
           outs: list[torch.Tensor] | None = None, key: str = "hidden") -> dict[str, torch.Tensor]:
    for stage, state in zip(stages, states, strict=True):
        tensors, _ = stage.run(tensors, {}, position, state)
        if outs is not None:
            outs.append(tensors[key])
    return tensors


def _check_decoder(model: nn.Module, head: DecoderHead, stages: list[StageRunner], ids: torch.Tensor,
                   new_tokens: int) -> CheckResult:
    t = ids.shape[1]
    expected, _, _ = local_generate(model, ids, new_tokens)
    with torch.inference_mode():
        ref_logits = model(ids).logits
    states = [s.new_state(1, t + new_tokens) for s in stages]
    outs: list[torch.Tensor] = []
    h = _route(stages, states, {"hidden": head.embed(ids, 0)}, 0, outs)["hidden"]
    logits = head.logits(h, ids, 0)
    got = [int(logits[0, -1].argmax())]
    position = t
    while len(got) < new_tokens:
        tok = torch.tensor([[got[-1]]])
        h = _route(stages, states, {"hidden": head.embed(tok, position)}, position)["hidden"]
        got.append(int(head.logits(h, tok, position)[0, -1].argmax()))
        position += 1
    d, scale = _diff(logits, ref_logits), float(ref_logits.abs().max())
    ok = got == expected and d <= REL_TOL * max(1.0, scale)
    detail = ""
    if not ok:
        path = head.spec.stacks[0].path
        ref = _layer_outputs(model, path, lambda: model(ids))
        bad = _first_bad(outs, [s.end for s in stages], ref)  # type: ignore[attr-defined]
        if bad is None:
            detail = "every stage matches the whole model at its last layer: the client's ends differ"
        else:
            st: Any = stages[bad]
            h_in = head.embed(ids, 0) if st.start == 0 else ref[st.start - 1]
            fresh = st.new_state(1, t)
            detail = _explain(bad, st, model, path, lambda: model(ids),
                              lambda: st.run({"hidden": h_in}, {}, 0, fresh))
    return CheckResult("decoder", len(stages), ok, d, scale, expected, got, detail)


def _check_encoder(model: nn.Module, head: EncoderHead, stages: list[StageRunner], ids: torch.Tensor) -> CheckResult:
    ids = torch.cat([ids, ids.flip(1)], dim=0)  # (2, T): a batch of two
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0  # the second one padded
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask)
    ref = out[0] if not isinstance(out, torch.Tensor) else out
    outs: list[torch.Tensor] = []
    h = _route(stages, [None] * len(stages), {"hidden": head.embed(ids, mask), "attention_mask": mask}, 0, outs)
    got = head.finish(h["hidden"], ids, mask)
    keep = mask.bool()
    d, scale = _diff(got[keep], ref[keep]), float(ref[keep].abs().max())
    ok = d <= REL_TOL * max(1.0, scale)
    detail = ""
    if not ok:
        path = head.spec.stacks[0].path
        ref_layers = _layer_outputs(model, path, lambda: model(input_ids=ids, attention_mask=mask))
        bad = _first_bad([o.masked_fill(~keep[..., None], 0) for o in outs],
                         [s.end for s in stages],  # type: ignore[attr-defined]
                         [r.masked_fill(~keep[..., None], 0) for r in ref_layers])
        if bad is None:
            detail = "every stage matches the whole model at its last layer: the client's ends differ"
        else:
            st: Any = stages[bad]
            h_in = head.embed(ids, mask) if st.start == 0 else ref_layers[st.start - 1]
            detail = _explain(bad, st, model, path, lambda: model(input_ids=ids, attention_mask=mask),
                              lambda: st.run({"hidden": h_in, "attention_mask": mask}, {}, 0, None))
    return CheckResult("encoder", len(stages), ok, d, scale, detail=detail)


def _check_seq2seq(model: nn.Module, head: Seq2SeqHead, stages: list[StageRunner], src: torch.Tensor,
                   new_tokens: int) -> CheckResult:
    start = head.decoder_start_token_id
    expected = local_generate_seq2seq(model, src, start, new_tokens)
    mask = torch.ones_like(src)
    states = [s.new_state(1, max(src.shape[1], new_tokens + 1)) for s in stages]
    enc_outs: list[torch.Tensor] = []
    enc_h = _route(stages, states, {"source": head.encoder_embed(src, mask), "source_mask": mask}, 0,
                   enc_outs, "source")["source"]
    enc = head.encoder_finish(enc_h, src, mask)
    tok = torch.tensor([[start]])
    tensors = {"hidden": head.decoder_embed(tok, 0, enc, mask), "encoder_output": enc, "source_mask": mask}
    h = _route(stages, states, tensors, 0)["hidden"]
    logits = head.logits(h, tok, 0, enc, mask)
    with torch.inference_mode():
        ref_logits = model(input_ids=src, attention_mask=mask, decoder_input_ids=tok).logits
    got = [int(logits[0, -1].argmax())]
    for position in range(1, new_tokens):
        tok = torch.tensor([[got[-1]]])
        h = _route(stages, states, {"hidden": head.decoder_embed(tok, position, enc, mask)}, position)["hidden"]
        got.append(int(head.logits(h, tok, position, enc, mask)[0, -1].argmax()))
    d, scale = _diff(logits, ref_logits), float(ref_logits.abs().max())
    ok = got == expected and d <= REL_TOL * max(1.0, scale)
    detail = ""
    if not ok:
        enc_path = head.spec.stack("encoder").path
        ref = _layer_outputs(model, enc_path, lambda: model(input_ids=src, attention_mask=mask, decoder_input_ids=tok))
        bad = _first_bad(enc_outs, [s.enc_held.stop for s in stages], ref)  # type: ignore[attr-defined]
        detail = (f"stage {bad}'s encoder layers differ from the whole model's" if bad is not None else
                  "the encoder's stages match the whole model; the decoder's or the client's ends differ")
    return CheckResult("seq2seq", len(stages), ok, d, scale, expected, got, detail)
