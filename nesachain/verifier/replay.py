"""The verifier's recomputation: a challenged miner's steps replayed on this node's own copy of
the blocks, loaded from its shard folder with every file's sha256 checked against the manifest
and the manifest's hashes checked against the ones registered on chain."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nesachain.errors import NesaError
from nesachain.kernels import requantize
from nesachain.protocol.frames import decode_tensor, encode_tensor
from nesachain.protocol.steplog import step_digest
from nesachain.shard_exec.shard_files import block_hashes, load_stage, read_manifest
from nesachain.shard_exec.stage import StageRunner

__all__ = ["ShardReplayer"]


class ShardReplayer:
    def __init__(self, shard_dirs: dict[str, Path], chain_hashes: Callable[[str], list[str]]) -> None:
        self.shard_dirs = shard_dirs
        self.chain_hashes = chain_hashes
        self._stages: dict[tuple[str, int, int], StageRunner] = {}

    def models(self) -> list[str]:
        return sorted(self.shard_dirs)

    def prepare(self, model_id: str, start: int, end: int) -> None:
        self._stage(model_id, start, end)

    def _stage(self, model_id: str, start: int, end: int) -> StageRunner:
        key = (model_id, start, end)
        if key not in self._stages:
            shard_dir = self.shard_dirs.get(model_id)
            if shard_dir is None:
                raise NesaError(f"this verifier holds no shards of {model_id}")
            mine = block_hashes(read_manifest(shard_dir))
            if mine[start:end] != self.chain_hashes(model_id)[start:end]:
                raise NesaError(f"shards of {model_id} in {shard_dir} differ from the hashes registered on chain")
            self._stages[key] = load_stage(shard_dir, start, end)
        return self._stages[key]

    def digests_match(self, step: dict[str, Any], logged: dict[str, Any]) -> bool:
        ins = step_digest(step["in"], step.get("in_values") or {})
        outs = step_digest(step["out"], step.get("out_values") or {})
        return bool(ins == logged["in_digest"] and outs == logged["out_digest"])

    def decode_outputs(self, step: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {name: decode_tensor(frame) for name, frame in step["out"].items()}

    def replay(self, model_id: str, start: int, end: int, steps: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """The last step's outputs, recomputed from the steps' inputs (through the miner's compression).

        A decoder session's steps feed consecutive positions, so they run as one forward pass over
        all their tokens (a prefill with the KV cache's causal mask): the last token's output is the
        last step's, within float rounding of the step-by-step replay and about 10x faster
        (``bench/replay.py``). Anything else is replayed step by step."""
        runner = self._stage(model_id, start, end)
        decoded = [{name: decode_tensor(f) for name, f in st["in"].items()} for st in steps]
        first = next(iter(decoded[0].values()))
        batch = first.shape[0] if first.dim() > 0 else 1
        max_length = int(steps[-1]["position"]) + runner.n_tokens(decoded[-1])
        state = runner.new_state(batch, max(1, max_length))
        out: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            joined = _joined_hidden(runner, steps, decoded)
            if joined is not None:
                out, _ = runner.run({"hidden": joined}, {}, int(steps[0]["position"]), state)
                last = runner.n_tokens(decoded[-1])
                out = {"hidden": out["hidden"][:, -last:]}
            else:
                for st, tensors in zip(steps, decoded, strict=True):
                    out, _ = runner.run(tensors, st.get("in_values") or {}, int(st["position"]), state)
        return {name: _through(steps[-1]["out"].get(name), t) for name, t in out.items()}


def _joined_hidden(runner: StageRunner, steps: list[dict[str, Any]],
                   decoded: list[dict[str, torch.Tensor]]) -> torch.Tensor | None:
    """All steps' hidden states as one (B, ΣT, C) input, if they are a decoder's consecutive steps
    (only ``hidden``, no values, each starting where the previous ended, one batch size); else None."""
    if runner.kind != "decoder" or len(steps) < 2:
        return None
    if any(set(t) != {"hidden"} or st.get("in_values") for st, t in zip(steps, decoded, strict=True)):
        return None
    hidden = [t["hidden"] for t in decoded]
    if any(h.dim() != 3 or not h.is_floating_point() or h.shape[::2] != hidden[0].shape[::2] for h in hidden):
        return None
    pos = int(steps[0]["position"])
    for st, h in zip(steps, hidden, strict=True):
        if int(st["position"]) != pos:
            return None
        pos += int(h.shape[1])
    return torch.cat([h.float() for h in hidden], dim=1)


def _through(frame: bytes | None, t: torch.Tensor) -> torch.Tensor:
    """``t`` through the compression the miner's ``frame`` went through (none where the miner sent no frame):
    the frame's own quantizer (``requantize``: a coded frame's step, else the frame's scheme)."""
    if frame is None:
        return decode_tensor(encode_tensor(t, "none"))
    return requantize(frame, t)
