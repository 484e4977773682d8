"""bench/accuracy.py --write-readme: tables land between their markers, or the README is left alone."""

from __future__ import annotations

import importlib.util
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


def test_write_readme_replaces_only_the_runs_tables(tmp_path: Path) -> None:
    bench = _bench()
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- accuracy:smollm2 -->\nold smol\n<!-- /accuracy:smollm2 -->\nmiddle\n"
                      "<!-- accuracy:effnet -->\nold effnet\n<!-- /accuracy:effnet -->\nend\n")
    results = {"fp32 | local": {"kl": 0.0}, "mixed8 | 3 shards": {"kl": 0.00016}}
    body = bench.table("SmolLM2", results, [("kl", "KL", ".5f")])
    assert "| KL | 0.00000 | " in body and "0.00016" in body and body.count("\n") == 4
    bench.write_readme(readme, {"smollm2": body}, "bench/accuracy.py --only smollm2")
    text = readme.read_text()
    assert "old smol" not in text and "`bench/accuracy.py --only smollm2`" in text and body in text
    assert "old effnet" in text and text.startswith("intro\n") and text.endswith("end\n")


def test_write_readme_without_markers_changes_nothing(tmp_path: Path) -> None:
    bench = _bench()
    readme = tmp_path / "README.md"
    original = "intro\n<!-- accuracy:smollm2 -->\nold\n<!-- /accuracy:smollm2 -->\n"
    readme.write_text(original)
    with pytest.raises(SystemExit, match="accuracy:minilm"):
        bench.write_readme(readme, {"smollm2": "new", "minilm": "new"}, "cmd")
    assert readme.read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]
