"""`nesad model check` (``nesachain.cli.model_cmds``): the whole model against K stages in process, on the
architectures of ``tests/shard_exec/hf_zoo.py``; its verdict is the parametrized test's (``test_hf_zoo.py``):
identical for what shards, a refusal with the reason for what cannot be cut."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hf_zoo import ARCHS, REFUSED, save

from nesachain.cli.main import build_parser


def _run(argv: list[str]) -> int:
    args: argparse.Namespace = build_parser().parse_args(argv)
    return int(args.func(args))


@pytest.mark.parametrize("name", ["gemma2", "qwen2_moe", "t5", "electra"])
def test_model_check_says_identical_for_an_architecture_that_shards(name: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = save(ARCHS[name], tmp_path / name)
    assert _run(["model", "check", str(folder), "--blocks", "3"]) == 0
    out = capsys.readouterr().out
    assert "in 3 stages" in out and out.rstrip().endswith("identical: yes")
    if ARCHS[name].kind != "encoder":
        whole = next(line for line in out.splitlines() if line.strip().startswith("whole:"))
        sharded = next(line for line in out.splitlines() if line.strip().startswith("sharded:"))
        assert whole.split(":", 1)[1].strip() == sharded.split(":", 1)[1].strip() and whole.count(",") == 15


@pytest.mark.parametrize("name", ["albert", "mpnet"])
def test_model_check_refuses_what_cannot_be_cut_with_the_reason(name: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    arch, reason = REFUSED[name]
    folder = save(arch, tmp_path / name)
    assert _run(["model", "check", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and reason in err and err.count("\n") == 1


@pytest.mark.parametrize(("flags", "message"), [(["--blocks", "0"], "--blocks must be at least 1"),
                                                (["--new-tokens", "0"], "--new-tokens must be in 1..")])
def test_model_check_refuses_bad_flags_before_loading(flags: list[str], message: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["model", "check", str(tmp_path / "nothing"), *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_model_check_of_a_graph_model_or_a_missing_folder_is_one_line_on_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["model", "check", "shard_exec_toy_models:build_toy"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "graph model" in err and err.count("\n") == 1
    assert _run(["model", "check", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model") and err.count("\n") == 1
