"""`nesad tx miner register|update` (``nesachain.cli.staking_cmds``): the chain's stateless checks run
before the node is contacted."""

from __future__ import annotations

import pytest

from tests.cli.cli_support import run


@pytest.mark.parametrize(("flag", "value", "code"), [
    ("--endpoint", "::bad", "code 28 (staking)"),
    ("--throughput", "0", "code 29 (staking)"),
    ("--blocks", "2:2", "code 21 (staking)"),
])
def test_cli_tx_runs_the_chains_stateless_checks_before_contacting_the_node(tmp_path, capsys, flag, value, code):
    """Like the Cosmos SDK's ValidateBasic in the client: the node (a closed port here) is never asked,
    and the error carries the code CheckTx would have answered."""
    home = ["--home", str(tmp_path), "--keyring-backend", "test"]
    for name in ("owner", "miner"):
        assert run(capsys, "keys", "add", name, *home)[0] == 0

    def register(**changed: str) -> tuple[int, str, str]:
        opts = {"--endpoint": "127.0.0.1:7001", "--throughput": "1000", "--blocks": "0:2", **changed}
        return run(capsys, "tx", "miner", "register", "owner", "--miner-key", "miner", "--bond", "100unes",
                   "--model", "m", "--memory-mb", "512", *[x for kv in opts.items() for x in kv], *home,
                   "--node", "http://127.0.0.1:1")

    rc, _, err = register(**{flag: value})
    assert rc == 1 and err.startswith("error: not sent: the chain would refuse it with " + code), err
    assert err.count("\n") == 1
    rc, _, err = register()  # the same command with good values does go to the node
    assert rc == 1 and err.startswith("error: cannot reach node"), err
    # an update checks what it was given before it asks the node for the miner's other fields
    rc, _, err = run(capsys, "tx", "miner", "update", "owner", "miner", flag, value, *home, "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith("error: not sent: the chain would refuse it with " + code), err
    rc, _, err = run(capsys, "tx", "miner", "update", "owner", "miner", "--endpoint", "127.0.0.1:7002", *home,
                     "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith("error: cannot reach node"), err
