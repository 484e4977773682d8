"""The hostile miners a verifier is tested against (``test_hostile_miners``): every answer of
``tests/protocol/hostile_steplogs`` around an honest run of block 1 of the tiny Llama (6 steps, step 4
challenged), and miners that commit to exactly what they serve, and serve what the blocks refuse or did not
compute. Built from the protocol's functions only, so that the same corpus also runs against older code."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from nesachain.protocol.frames import decode_tensor, encode_tensor
from tests.protocol.hostile_steplogs import frames_mutations, http_answers, log_mutations
from tests.protocol.steplog_server import Answer
from tests.verifier.support import MinerRun, consistent_run

__all__ = ["Case", "K", "corpus", "names"]

K = 4  # the challenged step; the run has 6


@dataclass
class Case:
    log: Answer
    frames: Answer
    expect: str  # "mismatch" at once, or "unanswered": retry, then mismatch near the deadline
    session: dict[str, Any] = field(default_factory=dict)  # what session_for is given


def _changed(run: MinerRun, j: int, **change: Any) -> MinerRun:
    return consistent_run([*run.wire[:j], {**run.wire[j], **change}, *run.wire[j + 1:]])


def consistent_cases(run: MinerRun) -> dict[str, tuple[MinerRun, dict[str, Any]]]:
    """Miners that commit to exactly what they serve, and serve what the blocks refuse or did not compute."""
    gen = torch.Generator().manual_seed(9)
    w = run.wire
    hidden = w[0]["in"]["hidden"]
    theirs = decode_tensor(w[K]["out"]["hidden"])
    cases: dict[str, tuple[MinerRun, dict[str, Any]]] = {
        "input frame garbage": (_changed(run, 0, **{"in": {"hidden": b"NT\x01\x00garbage"}}), {}),
        "input frame empty": (_changed(run, 0, **{"in": {"hidden": b""}}), {}),
        "input of another width": (_changed(run, 0, **{"in": {"hidden": encode_tensor(torch.randn(1, 5, 32))}}), {}),
        "input of integers": (_changed(run, 0, **{"in": {"hidden": encode_tensor(torch.arange(320).view(1, 5, 64))}}),
                              {}),
        "input 2-d": (_changed(run, 0, **{"in": {"hidden": encode_tensor(torch.randn(5, 64))}}), {}),
        "no input tensors": (_changed(run, 0, **{"in": {}}), {}),
        "input of another name": (_changed(run, 0, **{"in": {"x": hidden}}), {}),
        "batch of 2 at step k": (_changed(run, K, **{"in": {"hidden": encode_tensor(torch.randn(2, 1, 64))}}), {}),
        "positions from 3": (consistent_run([{**x, "position": x["position"] + 3} for x in w]), {}),
        "a position skipped": (consistent_run([{**x, "position": x["position"] + (i >= 2)} for i, x in enumerate(w)]),
                               {}),
        "output perturbed 1%": (_changed(run, K, out={"hidden": encode_tensor(
            theirs * (1 + 0.01 * torch.randn(theirs.shape, generator=gen)), "mixed8")}), {}),
        "output of another shape": (_changed(run, K, out={"hidden": encode_tensor(torch.randn(1, 2, 64))}), {}),
        "output garbage": (_changed(run, K, out={"hidden": b"NT\x01garbage"}), {}),
        "an extra output": (_changed(run, K, out={**w[K]["out"], "extra": w[K]["out"]["hidden"]}), {}),
        "no output": (_changed(run, K, out={}), {}),
        "inputs decode past the cap": (_changed(run, 1, **{"in": {"hidden": encode_tensor(torch.zeros(1, 20000, 64),
                                                                                            "mixed8")}}), {}),
        "revealed more steps than max_tokens": (run, {"max_tokens": run.n - 1}),
        "revealed another root": (run, {"root": "ab" * 32}),
        "revealed fewer steps": (run, {"n_steps": run.n - 1}),
    }
    return cases


def corpus(run: MinerRun, frames_cap: int) -> dict[str, Case]:
    """Every case by name: the log and frames answers, and whose fault it is."""
    honest_log = Answer(body=run.log_body(), content_type="application/json")
    honest_frames = Answer(body=run.frames_body(K), content_type="application/msgpack")
    log_cap = 4096 + 512 * run.n
    out: dict[str, Case] = {}
    for name, doc in log_mutations(run.doc):
        out[f"log: {name}"] = Case(Answer(body=json.dumps(doc).encode()), honest_frames, "mismatch")
    bodies = [("not json", b"<html>"), ("truncated json", run.log_body()[:-2]),
              ("deep json", b"[" * 3000 + b"]" * 3000),
              ("long integer", b'{"steps": [{"step": ' + b"7" * 5000 + b"}]}"), ("bad utf-8", b"\xff\xfe")]
    for name, body in bodies:
        out[f"log: {name}"] = Case(Answer(body=body), honest_frames, "mismatch")
    for name, body in frames_mutations(run.wire[: K + 1], run.wire[K + 1]):
        out[f"frames: {name}"] = Case(honest_log, Answer(body=body), "mismatch")
    for name, answer, kind in http_answers(run.log_body(), log_cap):
        out[f"log http: {name}"] = Case(answer, honest_frames, "mismatch" if kind == "invalid" else "unanswered")
    for name, answer, kind in http_answers(run.frames_body(K), frames_cap):
        out[f"frames http: {name}"] = Case(honest_log, answer, "mismatch" if kind == "invalid" else "unanswered")
    for name, (bad, session) in consistent_cases(run).items():
        out[f"consistent: {name}"] = Case(Answer(body=bad.log_body()), Answer(body=bad.frames_body(K)), "mismatch",
                                          {"root": bad.root, "n_steps": bad.n, **session})
    return out


def names() -> list[str]:
    """The corpus's names, from a made-up run of the same shape (the names do not depend on the data)."""
    gen = torch.Generator().manual_seed(0)
    wire = [{"step": i, "position": 4 + i if i else 0, "in": {"hidden": b"i%d" % i}, "in_values": {},
             "out": {"hidden": encode_tensor(torch.randn(1, 1, 64, generator=gen))}, "out_values": {}}
            for i in range(6)]
    return list(corpus(consistent_run(wire), 1))


