"""`nesad model shard/info` handlers: output on stdout, one-line errors on stderr with a non-zero status."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shard_exec_support import Sharded

from nesachain.cli.main import build_parser


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_shard_cli_model_shard_and_info_print_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "toy"
    args = _parse(["model", "shard", "shard_exec_toy_models:build_toy", "--blocks", "2", "--out", str(out),
                   "--input-shape", "2,32"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "in 2 blocks" in text and "block 1:" in text and (out / "manifest.json").is_file()
    args = _parse(["model", "info", str(out)])
    assert args.func(args) == 0
    assert "sha256" in capsys.readouterr().out


def test_shard_cli_errors_are_one_line_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["model", "shard", "no-such-model", "--blocks", "2", "--out", str(tmp_path / "x")])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model") and err.count("\n") == 1
    args = _parse(["miner", "start", "--model", str(tmp_path / "missing"), "--blocks", "0:1"])
    assert args.func(args) == 1
    assert capsys.readouterr().err.startswith("error: cannot read")
    for bad in (":::", "127.0.0.1", "http://127.0.0.1:99999"):
        args = _parse(["miner", "info", bad])
        assert args.func(args) == 1
        assert "looks like host:port" in capsys.readouterr().err


@pytest.mark.parametrize(("model", "message"), [
    ("os:getcwd", "error: factory 'os:getcwd' returned a str, not a torch.nn.Module"),
    ("json:loads", "error: factory 'json:loads' failed: TypeError"),
    ("HF_FOLDER", "error: cannot load the Hugging Face folder"),  # a config.json and no weights
])
def test_model_shard_reports_a_bad_factory_or_folder_in_one_line(tmp_path: Path, model: str, message: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    if model == "HF_FOLDER":
        (tmp_path / "hf").mkdir()
        (tmp_path / "hf" / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}')
        model = str(tmp_path / "hf")
    args = _parse(["model", "shard", model, "--blocks", "2", "--out", str(tmp_path / "out"), "--input-shape", "1,4"])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


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


def test_model_shard_never_leaves_a_half_written_or_clobbered_folder(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def shard(out: Path, blocks: int, *extra: str) -> int:
        args = _parse(["model", "shard", "shard_exec_toy_models:build_toy", "--blocks", str(blocks), "--out", str(out),
                       "--input-shape", "2,32", *extra])
        return int(args.func(args))

    out = tmp_path / "toy"
    assert shard(out, 2) == 0
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    assert shard(out, 3) == 1
    assert "holds a shard folder already" in capsys.readouterr().err
    assert shard(out, 99, "--replace") == 1  # fails while cutting: the old folder stays as it was
    assert "cannot cut" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == before
    assert shard(out, 3, "--replace") == 0
    assert json.loads((out / "manifest.json").read_text())["n_blocks"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]  # no partial or old folder left beside it
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    assert shard(tmp_path / "notes", 2, "--replace") == 1  # not a shard folder: never replaced
    assert "holds no shard folder" in capsys.readouterr().err
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    assert shard(tmp_path / "notes" / "todo.txt", 2) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert shard(tmp_path / "toy2", 2, "--input-shape", "0,32") == 1  # the later flag wins
    assert "bad --input-shape '0,32'" in capsys.readouterr().err


def test_model_shard_tidies_what_a_killed_run_left(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def shard(out: Path, *extra: str) -> int:
        args = _parse(["model", "shard", "shard_exec_toy_models:build_toy", "--blocks", "2", "--out", str(out),
                       "--input-shape", "2,32", *extra])
        return int(args.func(args))

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead = int(gone.stdout)  # a process that has exited, as one killed mid-write has
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert shard(tmp_path / "toy") == 0
        manifest = (tmp_path / "toy" / "manifest.json").read_text()
        (tmp_path / f".toy.partial-{dead}").mkdir()  # killed while writing
        (tmp_path / f".toy.partial-{dead}" / "block_000.safetensors").write_bytes(b"half")
        (tmp_path / f".toy.old-{dead}").mkdir()  # killed after the swap, before removing the old folder
        (tmp_path / f".toy.old-{dead}" / "manifest.json").write_text(manifest)
        (tmp_path / f".toy.partial-{live.pid}").mkdir()  # another run, still writing
        assert shard(tmp_path / "toy", "--replace") == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".toy.partial-{live.pid}", "toy"]

        (tmp_path / "toy").rename(tmp_path / f".toy.old-{dead}")  # killed between the two renames of a swap
        assert shard(tmp_path / "toy") == 1  # the old folder is put back, and not replaced without --replace
        assert "holds a shard folder already" in capsys.readouterr().err
        assert (tmp_path / "toy" / "manifest.json").read_text() == manifest
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".toy.partial-{live.pid}", "toy"]
    finally:
        live.kill()
        live.wait()


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
