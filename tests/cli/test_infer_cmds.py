"""`nesad infer generate` (``nesachain.cli.infer_cmds``): bad sampling settings refused before any miner is
dialled, and a completion on stdout that a failover does not change (reported on stderr only)."""

from __future__ import annotations

import argparse

import pytest
from shard_exec_support import MinerProc, Sharded

from nesachain.cli.main import build_parser


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize(("flags", "message"), [
    (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    (["--temperature", "-1"], "temperature must be a finite number >= 0"),
    (["--top-p", "1.5"], "top_p must be in (0, 1]"),
    (["--timeout", "0"], "--timeout must be a number of seconds > 0"),
])
def test_infer_generate_refuses_bad_sampling_before_connecting(tiny_gpt2: Sharded, flags: list[str], message: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["infer", "generate", "--model", str(tiny_gpt2.dir), "--route", "127.0.0.1:1@0:2",
                   "--prompt", "hi", *flags])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and "miner" not in err, err  # nothing was dialled


def test_nesad_infer_generate_keeps_stdout_for_the_completion_when_a_miner_is_down(
        smol: Sharded, smol_miners: list[MinerProc]) -> None:
    """`nesad infer generate` over a route whose middle miner is down, with the live one as alternate: stdout
    holds the same completion as the route without the fault; the failover is reported on stderr only."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a loopback port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}@1:2"
    m0, m1, m2 = smol_miners

    def generate(route: str, *extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "nesachain.cli.main", "infer", "generate", "--model", str(smol.dir),
               "--route", route, "--prompt", "Name a colour.", "--max-new-tokens", "6", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)

    clean = generate(f"{m0.hop()},{m1.hop()},{m2.hop()}")
    failed = generate(f"{m0.hop()},{dead},{m2.hop()}", "--alt", m1.hop())
    assert clean.returncode == 0 and failed.returncode == 0, failed.stderr
    assert clean.stdout.strip() and failed.stdout == clean.stdout, (clean.stdout, failed.stdout)
    assert dead.split("@")[0] in failed.stderr and m1.addr in failed.stderr, failed.stderr
