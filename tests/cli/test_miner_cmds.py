"""`nesad miner start|info` (``nesachain.cli.miner_cmds``): one-line errors on stderr with a non-zero status
for settings no miner can serve with, and a miner started with --exit-with-parent that stops with its parent."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shard_exec_support import Sharded

from nesachain.cli.main import build_parser


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_miner_start_and_info_errors_are_one_line_on_stderr(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["miner", "start", "--model", str(tmp_path / "missing"), "--blocks", "0:1"])
    assert args.func(args) == 1
    assert capsys.readouterr().err.startswith("error: cannot read")
    for bad in (":::", "127.0.0.1", "http://127.0.0.1:99999"):
        args = _parse(["miner", "info", bad])
        assert args.func(args) == 1
        assert "looks like host:port" in capsys.readouterr().err


def test_miner_start_num_blocks_needs_the_chain_and_excludes_blocks(tiny_gpt2: Sharded,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["miner", "start", "--model", str(tiny_gpt2.dir), "--num-blocks", "1"])
    assert args.func(args) == 1
    assert capsys.readouterr().err.startswith("error: --num-blocks lets the chain choose the blocks: it needs --owner")
    with pytest.raises(SystemExit) as exc:
        _parse(["miner", "start", "--model", str(tiny_gpt2.dir), "--num-blocks", "1", "--blocks", "0:1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        _parse(["miner", "start", "--model", str(tiny_gpt2.dir)])  # one of the two is required


@pytest.mark.parametrize(("flags", "message"), [
    (["--port", "70000"], "--port must be in 0..65535"),
    (["--max-length", "0"], "--max-length must be >= 1"),
    (["--memory-budget-mb", "-5"], "--memory-budget-mb must be > 0"),
    (["--session-timeout", "nan"], "--session-timeout must be > 0 seconds"),
    (["--max-tensor-mb", "0"], "--max-tensor-mb must be > 0"),
    (["--keep-settled-logs", "-1"], "--keep-settled-logs must be >= 0 seconds and finite"),
    (["--keep-settled-logs", "inf"], "--keep-settled-logs must be >= 0 seconds and finite"),
    (["--memory-budget-mb", "1e-9"], "miner settings: memory_budget must be > 0"),  # rounds to 0 bytes
    (["--exit-with-parent", str(os.getpid())],  # alive, but not the parent of this (pytest's) process
     f"--exit-with-parent: process {os.getpid()} is not this miner's parent"),
])
def test_miner_start_refuses_settings_no_miner_can_serve_with(tiny_gpt2: Sharded, flags: list[str], message: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["miner", "start", "--model", str(tiny_gpt2.dir), "--blocks", "0:1", *flags])
    assert args.func(args) == 1  # before loading or binding anything: a miner would start and serve forever
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


def test_miner_with_exit_with_parent_stops_when_its_parent_is_killed(tiny_gpt2: Sharded) -> None:
    """A script SIGKILLed before it could stop its miners: the one started with --exit-with-parent stops
    by itself, and so does one given the script's PID that is still starting when the script dies; the one
    started without keeps serving (and is stopped here, by its pid)."""
    import selectors
    import signal
    import time

    from nesachain.localnet.net import pid_running as _running

    parent_code = f"""
import os, signal, subprocess, sys
base = [sys.executable, "-m", "nesachain.cli.main", "miner", "start", "--model", {str(tiny_gpt2.dir)!r},
        "--blocks", "0:1", "--port", "0", "--threads", "1"]
procs = [subprocess.Popen(base + extra, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
         for extra in (["--exit-with-parent"], [])]
for p in procs:
    assert p.stdout.readline().startswith("miner listening")
late = subprocess.Popen(base + ["--exit-with-parent", str(os.getpid())], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)  # its Python is still starting when this script dies
print(*(p.pid for p in procs), late.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
                              cwd=str(Path(__file__).resolve().parents[2]))
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(parent.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=120), "the miners did not start within 120 s"
        pids = [int(x) for x in parent.stdout.readline().split()]
        assert len(pids) == 3
        assert parent.wait(timeout=30) == -signal.SIGKILL
        deadline = time.monotonic() + 30
        while (_running(pids[0]) or _running(pids[2])) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(pids[0]), "the miner started with --exit-with-parent outlived its parent"
        assert not _running(pids[2]), "the miner given its parent's PID outlived a parent that died first"
        assert _running(pids[1])
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while any(_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:  # stubborn: SIGKILL, still by pid
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
