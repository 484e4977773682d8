"""`nesad model shard|info` (``nesachain.cli.model_cmds``): output on stdout, one-line errors on stderr with a
non-zero status, and a shard folder never left half-written or clobbered."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nesachain.cli.main import build_parser


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_model_shard_and_info_print_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "toy"
    args = _parse(["model", "shard", "shard_exec_toy_models:build_toy", "--blocks", "2", "--out", str(out),
                   "--input-shape", "2,32"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "in 2 blocks" in text and "block 1:" in text and (out / "manifest.json").is_file()
    args = _parse(["model", "info", str(out)])
    assert args.func(args) == 0
    assert "sha256" in capsys.readouterr().out


def test_model_shard_of_an_unknown_model_is_one_line_on_stderr(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["model", "shard", "no-such-model", "--blocks", "2", "--out", str(tmp_path / "x")])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model") and err.count("\n") == 1


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
