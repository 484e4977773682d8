"""What the verifier's tests share: a chain view they script (``JudgeChain``), what an honest miner serving block 1
of the tiny Llama logs and retains (``honest_run``), a hostile miner that commits to exactly what it serves
(``consistent_run``), and the challenged session on chain (``session_for``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from nacl.signing import SigningKey

from nesachain.protocol.frames import decode_tensor, encode_tensor
from nesachain.protocol.steplog import step_digest, step_log_root
from nesachain.shard_exec.shard_files import block_hashes, load_stage, read_manifest
from nesachain.types.address import encode_address
from nesachain.verifier.replay import ShardReplayer
from nesachain.wallet.txs import TxOutcome
from tests.protocol.hostile_steplogs import frames_body

__all__ = ["CHAIN_ID", "MINER", "MODEL", "JudgeChain", "MinerRun", "consistent_run", "honest_run", "replayer_for",
           "session_for"]

CHAIN_ID = "nesa-verifier-test"
MINER = encode_address(b"\x31" * 20)
MODEL = "tiny-llama"


@dataclass
class JudgeChain:
    """What a verifier reads of the chain and sends to it: sessions as listed, one miner's endpoint (or
    ``miner_error`` raised where the node does not answer), each accepted tx in the current block."""

    key: SigningKey
    sessions_: list[dict[str, Any]]
    endpoint: str
    h: int = 10
    miner_error: Exception | None = None
    sent: list[Any] = field(default_factory=list)
    lookups: int = 0

    def sessions(self, status: str | None = None) -> list[dict[str, Any]]:
        return [s for s in self.sessions_ if status is None or s["status"] == status]

    def session(self, session_id: int) -> dict[str, Any] | None:
        return next((s for s in self.sessions_ if s["id"] == session_id), None)

    def height(self) -> int:
        return self.h

    def chain_id(self) -> str:
        return CHAIN_ID

    def miner(self, address: str) -> dict[str, Any] | None:
        self.lookups += 1
        if self.miner_error is not None:
            raise self.miner_error
        return {"endpoint": self.endpoint} if address == MINER else None

    def active_miners(self, model_id: str) -> list[dict[str, Any]]:
        return []

    def send(self, msgs: list[Any]) -> TxOutcome:
        self.sent.extend(msgs)
        return TxOutcome("H", self.h, 0, "", "", "deliver")


@dataclass
class MinerRun:
    """A miner's session as it serves it: ``wire`` holds each step's frames as ``/steps`` serves them; ``doc``
    the log as ``/log`` serves it; ``root`` and ``n`` what it revealed."""

    wire: list[dict[str, Any]]
    doc: dict[str, Any]

    @property
    def n(self) -> int:
        return len(self.doc["steps"])

    @property
    def root(self) -> str:
        return step_log_root(self.doc["steps"])[0].hex()

    def log_body(self) -> bytes:
        return json.dumps(self.doc).encode()

    def frames_body(self, k: int) -> bytes:
        return frames_body(self.wire[: k + 1])


def consistent_run(wire: list[dict[str, Any]]) -> MinerRun:
    """The log that ``wire``'s frames hash to: what a miner that commits to exactly what it serves reveals."""
    steps = [{"step": i, "position": w["position"], "n_tokens": 1, "in_digest": step_digest(w["in"], w["in_values"]),
              "out_digest": step_digest(w["out"], w["out_values"]), "at": 1.7e9 + i, "tensors_retained": True}
             for i, w in enumerate(wire)]
    return MinerRun(wire, {"session": "chain-7-0-0", "steps": steps})


def honest_run(shards: Path, prompt: int = 5, decode: int = 5, scheme: str = "mixed8") -> MinerRun:
    """What a miner serving block 1 (of 2) computes, logs and retains: a prefill, then one token per step."""
    stage = load_stage(shards, 1, 2)
    state = stage.new_state(1, prompt + decode)
    gen = torch.Generator().manual_seed(5)
    wire, pos = [], 0
    for n in [prompt] + [1] * decode:
        frame = encode_tensor(torch.randn(1, n, 64, generator=gen) * 3, scheme)  # as the miner received it
        out, _ = stage.run({"hidden": decode_tensor(frame)}, {}, pos, state)
        wire.append({"step": len(wire), "position": pos, "in": {"hidden": frame}, "in_values": {},
                     "out": {"hidden": encode_tensor(out["hidden"], scheme)}, "out_values": {}})
        pos += n
    return consistent_run(wire)


def session_for(run: MinerRun, k: int, *, sid: int = 7, max_tokens: int = 16, root: str | None = None,
                n_steps: int | None = None, commit_deadline: int = 20) -> dict[str, Any]:
    """The chain's record of session ``sid`` in its verdict phase, challenged on step ``k`` of hop 0 (blocks 1:2
    of the tiny Llama, served by MINER), as ``inference/session`` gives it."""
    hop = {"miner": MINER, "start": 1, "end": 2, "commitment": "", "root": run.root if root is None else root,
           "n_steps": run.n if n_steps is None else n_steps, "revealed": True, "stands_in_for": -1, "attempt": 0,
           "from_token": 0, "tokens": run.n, "failed": "", "paid": 0}
    return {"id": sid, "status": "challenging", "model_id": MODEL, "max_tokens": max_tokens, "tokens": run.n,
            "hops": [hop], "challenges": [{"hop": 0, "step": k, "commits": {}, "reveals": {}, "outcome": ""}],
            "verdict_commit_deadline": commit_deadline, "verdict_reveal_deadline": commit_deadline + 10}


def replayer_for(shards: Path, hashes: list[str] | None = None, **caps: int) -> ShardReplayer:
    """A replayer over ``shards`` whose chain registers ``hashes`` (by default the shards' own)."""
    mine = block_hashes(read_manifest(shards))
    return ShardReplayer({MODEL: shards}, lambda model_id: mine if hashes is None else hashes, **caps)
