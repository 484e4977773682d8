"""`python -m nesachain.localnet logs` (what localnet/logs.sh runs), without starting a localnet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _localnet(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nesachain.localnet", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=60)


def test_localnet_logs_prints_the_last_lines_of_a_nodes_log(tmp_path: Path) -> None:
    (tmp_path / "node1").mkdir()
    (tmp_path / "node1" / "cometbft.log").write_text("".join(f"line {i}\n" for i in range(5)))
    res = _localnet(tmp_path, "logs", "--node", "1", "--lines", "2")
    assert res.returncode == 0 and res.stdout == "line 3\nline 4\n", res.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--node", "9"], "error: --node must be in 0..3, got 9"),
    (["--lines", "0"], "error: --lines must be at least 1, got 0"),
    (["--app"], "error: no log to show: "),  # nothing was ever started under this root
])
def test_localnet_logs_bad_node_or_missing_log_is_one_error_line(tmp_path: Path, args: list[str],
                                                                  message: str) -> None:
    res = _localnet(tmp_path, "logs", *args)
    assert res.returncode == 1 and res.stderr.startswith(message) and res.stderr.count("\n") == 1, res.stderr
    assert res.stdout == "" and not any(tmp_path.iterdir())  # nothing written
