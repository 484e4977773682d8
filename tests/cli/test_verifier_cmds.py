"""`nesad verifier start` (``nesachain.cli.verifier_cmds``): a poll or tolerance it cannot run with."""

from __future__ import annotations

import pytest

from tests.cli.cli_support import run


@pytest.mark.parametrize(("flag", "value"), [("--poll", "0"), ("--tolerance", "nan")])
def test_cli_verifier_refuses_a_poll_or_tolerance_it_cannot_run_with(tmp_path, capsys, flag, value):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text("{}")
    rc, _, err = run(capsys, "verifier", "start", "op", "--shards", f"m={tmp_path / 'shards'}", flag, value,
                     "--home", str(tmp_path), "--keyring-backend", "test", "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith(f"error: {flag} must be") and err.count("\n") == 1, err
