"""The verifier (``nesachain.verifier.verdicts``) against a fake chain view and a fake replayer: what it
commits, reveals and judges, and the relative deviation it judges by."""

from __future__ import annotations

from typing import Any

import torch
from nacl.signing import SigningKey

from nesachain.modules.inference.msgs import MsgCommitVerdict, MsgRevealVerdict
from nesachain.modules.inference.types import verdict_commitment
from nesachain.protocol.steplog import step_log_root
from nesachain.types.address import decode_address
from nesachain.verifier.verdicts import Verifier, relative_deviation
from nesachain.wallet.txs import account_of
from tests.wallet.fakes import RACED, STEPS, FakeChain, session


class FakeReplayer:
    def __init__(self, out: torch.Tensor, digests_ok: bool = True) -> None:
        self.out, self.ok = out, digests_ok

    def models(self):
        return ["toy"]

    def prepare(self, model_id, start, end):
        pass

    def replay(self, model_id, start, end, steps):
        return {"hidden": self.out}

    def decode_outputs(self, step):
        return {"hidden": step["theirs"]}

    def digests_match(self, step, logged):
        return self.ok


def challenged(root: bytes) -> dict[str, Any]:
    s = session("challenging", challenges=[{"hop": 0, "step": 2, "commits": {}, "reveals": {}, "outcome": ""}])
    s["hops"][0].update(root=root.hex(), n_steps=4, revealed=True)
    return s


def verifier(tmp_path, chain, theirs, mine, *, serve=True, ok=True, log=True):
    return Verifier(chain, FakeReplayer(mine, ok), tmp_path / "v.json",  # type: ignore[arg-type]
                    fetch_json=lambda url: {"steps": STEPS} if log else None,
                    fetch_steps=lambda url: ({i: {"step": i, "in": {}, "out": {}, "theirs": theirs} for i in range(3)}
                                             if serve and url.endswith("/steps?upto=2") else None))


def test_verifier_keeps_a_salt_until_its_reveal_is_taken(tmp_path):
    root, _ = step_log_root(STEPS)
    chain = FakeChain(SigningKey(b"\x06" * 32), [challenged(root)])
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(0))
    v = verifier(tmp_path, chain, x, x)
    assert v.tick() == 1
    chain.sessions_[0]["challenges"][0]["commits"][account_of(chain.key)] = chain.sent[0].commitment.hex()
    chain.h, chain.refuse = 21, [RACED]
    assert v.tick() == 1 and len(chain.sent) == 1 and "7/0" in v._state  # lost the race: kept
    assert v.tick() == 1 and isinstance(chain.sent[1], MsgRevealVerdict) and v._state == {}
    v._state["3/0"] = {"verdict": "match", "salt": "00"}  # its session has settled meanwhile
    assert v.tick() == 0 and v._state == {} and chain.looked_up == [3]


def test_verifier_match_within_tolerance_and_commit_then_reveal(tmp_path):
    root, _ = step_log_root(STEPS)
    chain = FakeChain(SigningKey(b"\x06" * 32), [challenged(root)])
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(0))
    v = verifier(tmp_path, chain, x, x * (1 + 1e-6))
    assert v.tick() == 1 and isinstance(chain.sent[0], MsgCommitVerdict)
    op = account_of(chain.key)
    assert chain.sent[0].commitment != b""
    chain.sessions_[0]["challenges"][0]["commits"][op] = chain.sent[0].commitment.hex()
    assert v.tick() == 0  # still in the commit window: nothing to reveal yet
    chain.h = 21
    assert v.tick() == 1
    reveal = chain.sent[1]
    assert isinstance(reveal, MsgRevealVerdict) and reveal.verdict == "match"
    assert verdict_commitment(7, 0, decode_address(op), "match", reveal.salt) == chain.sent[0].commitment


def test_relative_deviation_sees_1pct_noise_even_when_one_channel_dominates():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 1, 576, generator=gen)
    x[..., 7] = 25_000.0  # a residual-stream outlier channel, as in SmolLM2
    for seed in range(50):
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        z[..., 7] = 0.0  # the worst case for a norm-based error: no noise where the norm lives
        assert relative_deviation(x, x + 0.01 * x.abs() * z) > 4e-3
    assert relative_deviation(x, x * (1 + 1e-7)) < 1e-6
    assert relative_deviation(x, x[..., :10]) == float("inf")


def test_verifier_flags_perturbed_unserved_and_inconsistent_data(tmp_path):
    root, _ = step_log_root(STEPS)
    x = torch.randn(1, 1, 576, generator=torch.Generator().manual_seed(1))
    noisy = x * (1 + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2)))
    cases = [
        (dict(theirs=noisy, mine=x), "relative deviation"),
        (dict(theirs=x, mine=x, serve=False), "not served"),
        (dict(theirs=x, mine=x, ok=False), "do not match the logged digests"),
        (dict(theirs=x, mine=x, log=False), "no log"),
    ]
    for kwargs, reason in cases:
        chain = FakeChain(SigningKey(b"\x06" * 32), [challenged(root)])
        v = verifier(tmp_path, chain, **kwargs)
        verdict, why = v.judge(chain.sessions_[0], chain.sessions_[0]["challenges"][0])
        assert verdict == "mismatch" and reason in why, (kwargs.keys(), why)
    chain = FakeChain(SigningKey(b"\x06" * 32), [challenged(b"\x00" * 32)])  # revealed root differs from the log
    verdict, why = verifier(tmp_path, chain, x, x).judge(chain.sessions_[0], chain.sessions_[0]["challenges"][0])
    assert verdict == "mismatch" and "revealed root" in why
