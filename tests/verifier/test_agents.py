"""Result and verifier agents against a fake chain view: what they commit, reveal and judge."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from nacl.signing import SigningKey

from nesachain.miner.results import ResultAgent
from nesachain.modules.inference.msgs import MsgCommitResult, MsgCommitVerdict, MsgRevealResult, MsgRevealVerdict
from nesachain.modules.inference.types import result_commitment, verdict_commitment
from nesachain.protocol.steplog import step_log_root
from nesachain.types.address import decode_address, encode_address
from nesachain.verifier.verdicts import Verifier, relative_deviation
from nesachain.wallet.txs import TxOutcome, account_of

MINER = encode_address(b"\x31" * 20)
STEPS = [{"step": i, "position": i, "in_digest": hashlib.sha256(b"i%d" % i).hexdigest(),
          "out_digest": hashlib.sha256(b"o%d" % i).hexdigest()} for i in range(4)]


@dataclass
class FakeChain:
    key: SigningKey
    sessions_: list[dict[str, Any]]
    h: int = 10
    sent: list[Any] = field(default_factory=list)
    refuse: list[TxOutcome] = field(default_factory=list)  # the next sends' outcomes (then: taken)
    looked_up: list[int] = field(default_factory=list)

    def sessions(self, status: str | None = None):
        return [s for s in self.sessions_ if status is None or s["status"] == status]

    def session(self, session_id: int) -> dict[str, Any] | None:
        self.looked_up.append(session_id)
        return next((s for s in self.sessions_ if s["id"] == session_id), None)

    def height(self) -> int:
        return self.h

    def miner(self, address: str) -> dict[str, Any]:
        return {"endpoint": "miner:7000"}

    def send(self, msgs):
        if self.refuse:
            return self.refuse.pop(0)
        self.sent.extend(msgs)
        return TxOutcome("H", self.h, 0, "", "", "deliver")


RACED = TxOutcome("H", 0, 3, "sdk", "account x expects sequence 9, tx has 8: invalid sequence", "check")
LATE = TxOutcome("H", 11, 14, "inference", "reveal deadline was height 10", "deliver")


def session(status: str, **over: Any) -> dict[str, Any]:
    hop = {"miner": MINER, "start": 0, "end": 2, "commitment": "", "root": "", "n_steps": 0, "revealed": False,
           "stands_in_for": -1, "attempt": 0, "tokens": 4}
    s = {"id": 7, "status": status, "tokens": 4, "model_id": "toy", "hops": [hop], "challenges": [],
         "verdict_commit_deadline": 20, "verdict_reveal_deadline": 30}
    s.update(over)
    return s


def test_result_agent_commits_root_then_reveals_what_it_committed(tmp_path):
    chain = FakeChain(SigningKey(b"\x05" * 32), [session("committing")])
    agent = ResultAgent(chain, MINER, "http://miner:7000", tmp_path / "s.json",  # type: ignore[arg-type]
                        fetch=lambda url: {"steps": STEPS})
    assert agent.tick() == 1
    commit = chain.sent[0]
    assert isinstance(commit, MsgCommitResult)
    chain.sessions_[0]["hops"][0]["commitment"] = commit.commitment.hex()
    # a restarted agent still knows the salt
    agent2 = ResultAgent(chain, MINER, "http://miner:7000", tmp_path / "s.json",  # type: ignore[arg-type]
                         fetch=lambda url: {"steps": STEPS})
    assert agent2.tick() == 1
    reveal = chain.sent[1]
    assert isinstance(reveal, MsgRevealResult)
    root, _ = step_log_root(STEPS)
    assert (reveal.root, reveal.n_steps) == (root, 4)
    assert result_commitment(7, decode_address(MINER), reveal.root, reveal.salt) == commit.commitment


def test_result_agent_keeps_a_salt_until_its_reveal_is_taken_and_drops_those_of_past_sessions(tmp_path):
    """A reveal that lost a sequence race to another tx of the owner (another miner's agent) is sent
    again next pass; a salt whose session left the commit-reveal phase is dropped."""
    chain = FakeChain(SigningKey(b"\x05" * 32), [session("committing"), session("committing", id=8)])
    agent = ResultAgent(chain, MINER, "http://miner:7000", tmp_path / "s.json",  # type: ignore[arg-type]
                        fetch=lambda url: {"steps": STEPS})
    assert agent.tick() == 1 and len(chain.sent) == 2  # both commits in one tx
    for s, commit in zip(chain.sessions_, chain.sent, strict=True):
        s["hops"][0]["commitment"] = commit.commitment.hex()
    chain.sent.clear()
    chain.refuse = [RACED]
    assert agent.tick() == 1 and chain.sent == []  # the reveals' tx lost the race
    assert agent.tick() == 1 and sorted(m.session_id for m in chain.sent) == [7, 8]  # sent again, then kept
    assert agent._state == {}
    # a batch the chain refuses for another reason goes again one reveal a tx: the late one alone fails
    chain.sessions_ += [session("committing", id=9), session("committing", id=10), session("settled", id=11)]
    chain.sent.clear()
    assert agent.tick() == 1  # commits 9 and 10 (11 is settled)
    for s, commit in zip(chain.sessions_[2:], chain.sent, strict=False):
        s["hops"][0]["commitment"] = commit.commitment.hex()
    agent._state["11"] = {"root": "00", "salt": "00", "n_steps": 1}  # a salt left from a session now settled
    chain.sent.clear()
    chain.refuse = [LATE, LATE]
    assert agent.tick() == 3 and [m.session_id for m in chain.sent] == [10]  # one tx, then each alone
    assert agent._state == {} and chain.looked_up == [11]


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


def test_result_agent_of_a_stand_in_commits_the_log_of_its_failover_session(tmp_path):
    other = {"miner": "nesa1other", "start": 0, "end": 2, "commitment": "", "root": "", "n_steps": 0,
             "revealed": False, "stands_in_for": -1, "attempt": 0, "tokens": 1}
    s = session("committing")
    s["hops"] = [other, {**s["hops"][0], "stands_in_for": 0, "attempt": 2, "tokens": 3}]
    chain = FakeChain(SigningKey(b"\x05" * 32), [s])
    urls: list[str] = []
    agent = ResultAgent(chain, MINER, "http://miner:7000", tmp_path / "s.json",  # type: ignore[arg-type]
                        fetch=lambda url: urls.append(url) or {"steps": STEPS})
    assert agent.tick() == 1 and isinstance(chain.sent[0], MsgCommitResult)
    assert urls == ["http://miner:7000/sessions/chain-7-0-2/log"]  # the client's 2nd failover session of hop 0
    s["hops"][1]["tokens"] = 0  # took over after the last token: nothing to commit, nothing to pay
    chain.sent.clear()
    assert ResultAgent(chain, MINER, "http://miner:7000", tmp_path / "t.json",  # type: ignore[arg-type]
                       fetch=lambda url: {"steps": STEPS}).tick() == 0


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
