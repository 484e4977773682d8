"""`nesad query inference verifier-stats [OPERATOR]`: each validator's verifier counts and verdict window, read
from a chain (in process) through the wallet's typed query."""

from __future__ import annotations

import json

from tests.abci.test_verdict_misses import MissChain
from tests.cli.cli_support import run
from tests.modules.staking.conftest import addr, key
from tests.wallet.fakes import FakeRPC


def test_cli_verifier_stats_prints_every_count_of_one_validator_or_all(capsys, monkeypatch) -> None:
    """Before: there was no such command (argparse refused it); the counts were only in a raw ABCI query."""
    c = MissChain()
    c.judged("abstain")
    monkeypatch.setattr("nesachain.cli.inference_cmds.rpc_from", lambda args: FakeRPC(c))
    rc, out, err = run(capsys, "query", "inference", "verifier-stats", addr(key(3)))
    assert rc == 0, err
    assert out.strip() == (f"{addr(key(3))}\tchallenges 3\tagreed 0\tdisagreed 0\tundecided 0\tabstained 3\t"
                           "missed 0\twindow: missed 0 of the last 3 (size 6)\trewards 0unes")
    rc, out, err = run(capsys, "query", "inference", "verifier-stats", "-o", "json")
    assert rc == 0, err
    shown = json.loads(out)
    assert shown["total"] == 4 and sorted(v["validator"] for v in shown["verifier_stats"]) == sorted(
        addr(key(i)) for i in range(4))
    assert {v["validator"]: v["agreed"] for v in shown["verifier_stats"]}[addr(key(0))] == 3
