"""The miner's result agent (``nesachain.miner.results``) against a fake chain view: what it commits and
reveals, the salts it keeps until a reveal is taken, and the log a stand-in commits."""

from __future__ import annotations

from nacl.signing import SigningKey

from nesachain.miner.results import ResultAgent
from nesachain.modules.inference.msgs import MsgCommitResult, MsgRevealResult
from nesachain.modules.inference.types import result_commitment
from nesachain.protocol.steplog import step_log_root
from nesachain.types.address import decode_address
from tests.wallet.fakes import LATE, MINER, RACED, STEPS, FakeChain, session


def test_result_agent_commits_root_then_reveals_what_it_committed(tmp_path):
    chain = FakeChain(SigningKey(b"\x05" * 32), [session("committing")])
    agent = ResultAgent(chain, MINER, lambda name: STEPS, tmp_path / "s.json")  # type: ignore[arg-type]
    assert agent.tick() == 1
    commit = chain.sent[0]
    assert isinstance(commit, MsgCommitResult)
    chain.sessions_[0]["hops"][0]["commitment"] = commit.commitment.hex()
    # a restarted agent still knows the salt
    agent2 = ResultAgent(chain, MINER, lambda name: STEPS, tmp_path / "s.json")  # type: ignore[arg-type]
    assert agent2.tick() == 1
    reveal = chain.sent[1]
    assert isinstance(reveal, MsgRevealResult)
    root, _ = step_log_root(STEPS)
    assert (reveal.root, reveal.n_steps) == (root, 4)
    assert result_commitment(7, decode_address(MINER), reveal.root, 4, reveal.salt) == commit.commitment


def test_result_agent_keeps_a_salt_until_its_reveal_is_taken_and_drops_those_of_past_sessions(tmp_path):
    """A reveal that lost a sequence race to another tx of the owner (another miner's agent) is sent
    again next pass; a salt whose session left the commit-reveal phase is dropped."""
    chain = FakeChain(SigningKey(b"\x05" * 32), [session("committing"), session("committing", id=8)])
    agent = ResultAgent(chain, MINER, lambda name: STEPS, tmp_path / "s.json")  # type: ignore[arg-type]
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


def test_result_agent_of_a_stand_in_commits_the_log_of_its_failover_session(tmp_path):
    other = {"miner": "nesa1other", "start": 0, "end": 2, "commitment": "", "root": "", "n_steps": 0,
             "revealed": False, "stands_in_for": -1, "attempt": 0, "tokens": 1}
    s = session("committing")
    s["hops"] = [other, {**s["hops"][0], "stands_in_for": 0, "attempt": 2, "tokens": 3}]
    chain = FakeChain(SigningKey(b"\x05" * 32), [s])
    names: list[str] = []
    agent = ResultAgent(chain, MINER, lambda name: names.append(name) or STEPS,  # type: ignore[arg-type]
                        tmp_path / "s.json")
    assert agent.tick() == 1 and isinstance(chain.sent[0], MsgCommitResult)
    assert names == ["chain-7-0-2"]  # the client's 2nd failover session of hop 0
    s["hops"][1]["tokens"] = 0  # took over after the last token: nothing to commit, nothing to pay
    chain.sent.clear()
    agent = ResultAgent(chain, MINER, lambda name: STEPS, tmp_path / "t.json")  # type: ignore[arg-type]
    assert agent.tick() == 0


def test_result_agent_without_a_step_log_commits_nothing(tmp_path, capsys):
    """An agent whose log store no longer holds a session's log (or never did) claims no work for it: no commit,
    no salt kept, one warning. Before: it committed the root of an empty log and revealed n_steps = 0, which the
    chain paid in full and never challenged."""
    chain = FakeChain(SigningKey(b"\x05" * 32), [session("committing")])
    for log in (None, []):
        agent = ResultAgent(chain, MINER, lambda name, log=log: log, tmp_path / "s.json")  # type: ignore[arg-type]
        assert agent.tick() == 0 and agent.tick() == 0
        assert chain.sent == [] and agent._state == {}
    said = capsys.readouterr()  # structlog writes to stdout, or to stderr once a CLI entry point configured it
    assert (said.out + said.err).count("result_no_step_log") == 2  # once per agent, not once a pass
