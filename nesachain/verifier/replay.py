"""The verifier's recomputation: a challenged miner's steps replayed on this node's own copy of
the blocks, loaded from its shard folder with every file's sha256 checked against the manifest
and the manifest's hashes checked against the ones registered on chain.

Whose fault a failure is: this verifier's own (no shards of the model, a copy that differs from the chain's or
cannot be read, a replay over its own limits on tokens or state) is ``CannotCheck``; the miner's (frames that
do not decode, decode to more than the cap, or that the blocks refuse: wrong shapes, dtypes, positions) is
``MinerFault``. The frames reaching here hash to the digests the miner committed to, so a step the blocks
refuse is one the miner could not have computed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import torch

from nesachain.errors import NesaError
from nesachain.kernels import KernelError, requantize
from nesachain.protocol.errors import WireError
from nesachain.protocol.frames import decode_tensor, encode_tensor
from nesachain.protocol.messages import ErrorCode
from nesachain.shard_exec.shard_files import block_hashes, load_stage, read_manifest
from nesachain.shard_exec.stage import StageRunner
from nesachain.verifier.errors import CannotCheck, MinerFault

__all__ = ["DEFAULT_MAX_DECODED_BYTES", "DEFAULT_MAX_REPLAY_TOKENS", "DEFAULT_MAX_STATE_BYTES", "ShardReplayer"]

DEFAULT_MAX_DECODED_BYTES: Final = 1 << 30  # all of a replay's input tensors, decoded
DEFAULT_MAX_REPLAY_TOKENS: Final = 16_384  # tokens one replay runs through the blocks
DEFAULT_MAX_STATE_BYTES: Final = 1 << 30  # the KV cache one replay allocates


class ShardReplayer:
    def __init__(self, shard_dirs: dict[str, Path], chain_hashes: Callable[[str], list[str]],
                 max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES, max_tokens: int = DEFAULT_MAX_REPLAY_TOKENS,
                 max_state_bytes: int = DEFAULT_MAX_STATE_BYTES) -> None:
        self.shard_dirs = shard_dirs
        self.chain_hashes = chain_hashes
        self.max_decoded_bytes = max_decoded_bytes
        self.max_tokens = max_tokens
        self.max_state_bytes = max_state_bytes
        self._stages: dict[tuple[str, int, int], StageRunner] = {}
        self._lock = threading.Lock()  # judges run in a pool: one load of each block range

    def models(self) -> list[str]:
        return sorted(self.shard_dirs)

    def prepare(self, model_id: str, start: int, end: int) -> None:
        self._stage(model_id, start, end)

    def _stage(self, model_id: str, start: int, end: int) -> StageRunner:
        """Blocks [start, end) of ``model_id``, loaded once. ``CannotCheck`` where this verifier's copy is
        missing, unreadable or not the chain's; its node's ``RPCError`` as it comes (a later pass may do better)."""
        key = (model_id, start, end)
        stage = self._stages.get(key)
        if stage is not None:
            return stage
        with self._lock:  # one load at a time
            if key in self._stages:
                return self._stages[key]
            shard_dir = self.shard_dirs.get(model_id)
            if shard_dir is None:
                raise CannotCheck(f"this verifier holds no shards of {model_id}")
            try:
                mine = block_hashes(read_manifest(shard_dir))
            except (NesaError, KeyError, TypeError) as exc:
                raise CannotCheck(f"cannot read this verifier's shards of {model_id} in {shard_dir}: {exc}") from None
            chain = self.chain_hashes(model_id)
            if not 0 <= start < end <= len(mine) or mine[start:end] != chain[start:end]:
                raise CannotCheck(f"this verifier's shards of {model_id} in {shard_dir} differ from the hashes "
                                  f"registered on chain for blocks {start}:{end}")
            try:
                self._stages[key] = load_stage(shard_dir, start, end)
            except Exception as exc:  # its own files (safetensors, torch and the OS raise their own kinds)
                raise CannotCheck(f"cannot load blocks {start}:{end} of {model_id}: {exc!r}") from None
            return self._stages[key]

    def decode_outputs(self, step: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The miner's output tensors of ``step`` (``MinerFault`` if they do not decode within the cap)."""
        budget = [self.max_decoded_bytes]
        return {name: _decode(frame, budget, "an output") for name, frame in step["out"].items()}

    def replay(self, model_id: str, start: int, end: int,
               steps: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """The last step's outputs, recomputed from the steps' inputs (through the miner's compression).

        A decoder session's steps feed consecutive positions, so they run as one forward pass over
        all their tokens (a prefill with the KV cache's causal mask): the last token's output is the
        last step's, within float rounding of the step-by-step replay and about 10x faster
        (``bench/replay.py``). Anything else is replayed step by step. Every input is decoded within
        ``max_decoded_bytes`` before anything runs, and the KV cache is sized from the tokens the frames
        hold (never from a position the miner states)."""
        runner = self._stage(model_id, start, end)
        if not steps:
            raise CannotCheck("no steps to replay")
        budget = [self.max_decoded_bytes]
        decoded = [{name: _decode(f, budget, "an input") for name, f in st["in"].items()} for st in steps]
        if not decoded[0]:
            raise MinerFault("step 0 has no input tensors")
        first = next(iter(decoded[0].values()))
        batch = first.shape[0] if first.dim() > 0 else 1
        tokens = sum(runner.n_tokens(t) for t in decoded)
        if tokens > self.max_tokens:
            raise CannotCheck(f"replaying {tokens} tokens is over this verifier's cap of {self.max_tokens}")
        state_bytes = runner.session_bytes(batch, max(1, tokens))
        if state_bytes > self.max_state_bytes:
            raise CannotCheck(f"a replay state of {state_bytes} bytes is over this verifier's cap of "
                              f"{self.max_state_bytes}")
        try:
            state = runner.new_state(batch, max(1, tokens))
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
        except WireError as exc:
            raise MinerFault(f"blocks {start}:{end} refuse the miner's inputs: {exc}") from None
        except KernelError as exc:
            raise MinerFault(f"the miner's output frames do not fit the replay: {exc}") from None
        except MemoryError:
            raise CannotCheck("this verifier ran out of memory replaying", retry=True) from None


def _decode(frame: bytes, budget: list[int], what: str) -> torch.Tensor:
    """``frame`` decoded, its bytes taken from ``budget[0]``; ``MinerFault`` if it does not decode or
    does not fit."""
    try:
        t = decode_tensor(frame, max_bytes=budget[0])
    except WireError as exc:
        if exc.code == ErrorCode.TOO_LARGE:
            raise MinerFault(f"the frames decode to more than the cap ({exc.message})") from None
        raise MinerFault(f"{what} frame does not decode: {exc.message}") from None
    budget[0] -= t.numel() * t.element_size()
    return t


def _joined_hidden(runner: StageRunner, steps: Sequence[Mapping[str, Any]],
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
        return decode_tensor(encode_tensor(t, "none"), max_bytes=1 << 40)
    return requantize(frame, t)
