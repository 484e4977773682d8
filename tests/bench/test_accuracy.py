"""bench/accuracy.py --write-docs: tables land between their markers in docs/benchmarks.md (through the bench
scripts' one helper, bench/report.py), or the file is left alone."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_accuracy", REPO / "bench" / "accuracy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOC = ("intro\n<!-- bench:accuracy-smollm2 -->\nold smol\n<!-- /bench:accuracy-smollm2 -->\nmiddle\n"
       "<!-- bench:accuracy-effnet -->\nold effnet\n<!-- /bench:accuracy-effnet -->\nend\n")


def test_write_docs_replaces_only_the_runs_tables(tmp_path: Path) -> None:
    bench = _bench()
    docs = tmp_path / "benchmarks.md"
    docs.write_text(DOC)
    results = {"fp32 | local": {"kl": 0.0}, "mixed8 | 3 shards": {"kl": 0.00016}}
    body = bench.table("SmolLM2", results, [("kl", "KL", ".5f")])
    assert "| KL | 0.00000 | " in body and "0.00016" in body and body.count("\n") == 4
    bench.write_docs({"smollm2": body}, ".venv/bin/python bench/accuracy.py --only smollm2", docs)
    text = docs.read_text()
    assert "old smol" not in text and body in text
    head = text.split("<!-- bench:accuracy-smollm2 -->\n")[1].splitlines()[0]
    assert re.fullmatch(r"Measured on \d{4}-\d\d-\d\d, .+ cores.*, torch .+: "
                        r"`\.venv/bin/python bench/accuracy\.py --only smollm2`", head), head
    assert "old effnet" in text and text.startswith("intro\n") and text.endswith("end\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benchmarks.md"]


def test_write_docs_without_markers_changes_nothing(tmp_path: Path) -> None:
    bench = _bench()
    docs = tmp_path / "benchmarks.md"
    docs.write_text(DOC)
    with pytest.raises(SystemExit, match="bench:accuracy-minilm"):
        bench.write_docs({"smollm2": "new", "minilm": "new"}, "cmd", docs)
    assert docs.read_text() == DOC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benchmarks.md"]


def test_the_repositorys_benchmarks_page_has_one_pair_of_markers_per_table() -> None:
    _bench()  # puts bench/ on sys.path, as running a bench script does
    report = sys.modules.get("report") or importlib.import_module("report")
    text = report.DOCS.read_text()
    names = re.findall(r"<!-- bench:([\w-]+) -->", text)
    assert {"accuracy-smollm2", "accuracy-minilm", "accuracy-effnet"} <= set(names)
    for name in names:
        assert text.count(f"<!-- bench:{name} -->") == 1 and text.count(f"<!-- /bench:{name} -->") == 1, name
        assert text.index(f"<!-- bench:{name} -->") < text.index(f"<!-- /bench:{name} -->"), name
    assert report.replace_sections(text, {names[0]: "x"}, "head").count("\nx\n") == 1


def test_command_line_names_the_script_from_the_repository_root() -> None:
    _bench()
    report = sys.modules.get("report") or importlib.import_module("report")
    line = report.command_line([str(REPO / "bench" / "accuracy.py"), "--only", "effnet", "--fashion", "300"])
    assert line.endswith("bench/accuracy.py --only effnet --fashion 300"), line
