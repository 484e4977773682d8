"""`nesad start` (``nesachain.cli.node_cmds``): a bad listen address, and a state that is no database."""

from __future__ import annotations

import pytest

from tests.cli.cli_support import run


@pytest.mark.parametrize("abci", ["unix:///tmp/x.sock", "tcp://127.0.0.1:99999"])
def test_cli_start_rejects_bad_listen_address(tmp_path, capsys, abci):
    rc, _, err = run(capsys, "start", "--home", str(tmp_path), "--abci", abci)
    assert rc == 1 and "--abci must look like" in err and err.count("\n") == 1


def test_cli_start_with_a_state_that_is_no_database_is_one_line_and_leaves_it_alone(tmp_path, capsys):
    (tmp_path / "state.db").write_bytes(b"not sqlite")
    rc, _, err = run(capsys, "start", "--home", str(tmp_path), "--abci", "tcp://127.0.0.1:0")
    assert rc == 1 and err.startswith("error: cannot open the app's state") and err.count("\n") == 1, err
    assert (tmp_path / "state.db").read_bytes() == b"not sqlite"
    rc, _, err = run(capsys, "start", "--home", str(tmp_path / "state.db" / "sub"), "--abci", "tcp://127.0.0.1:0")
    assert rc == 1 and err.startswith("error: cannot open the app's state"), err  # a file where a folder must be
