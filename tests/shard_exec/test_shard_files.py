"""Shard folders: the manifest, a partial load of one block range, block ranges, and the checks that refuse
a tampered block, a changed manifest or a factory that traces to another graph
(``nesachain.shard_exec.shard_files``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from shard_exec_support import Sharded

from nesachain.shard_exec.errors import ManifestError
from nesachain.shard_exec.shard_files import load_stage, parse_range


def test_shard_folder_manifest_and_partial_load(tiny_gpt2: Sharded) -> None:
    m = tiny_gpt2.manifest
    assert m["architecture"] == "hf-decoder" and m["dtype"] == "float32" and m["format"] == 2
    assert [s["path"] for s in m["hf"]["plan"]["stacks"]] == ["transformer.h"]  # found, not looked up
    assert [b["units"] for b in m["blocks"]] == [[0, 2], [2, 4]]
    layers = tiny_gpt2.model.transformer.h
    whole = sum(t.numel() * t.element_size() for t in [*layers.parameters(), *layers.buffers()])
    runner = load_stage(tiny_gpt2.dir, 1, 2)
    assert runner.param_bytes == whole // 2


def test_block_ranges_that_are_malformed_empty_or_outside_are_refused_with_the_reason() -> None:
    assert parse_range("0:30", 30) == (0, 30) and parse_range("29:30", 30) == (29, 30)
    for text, reason in [("abc", "looks like 0:2"), ("1:2:3", "looks like 0:2"), ("5:3", "is empty"),
                         ("4:4", "is empty"), ("0:31", "outside 0:30"), ("-1:2", "outside 0:30")]:
        with pytest.raises(ManifestError, match=reason):
            parse_range(text, 30)


def test_shard_folder_tampered_block_is_refused(tiny_gpt2: Sharded, tmp_path: Path) -> None:
    d = tmp_path / "copy"
    shutil.copytree(tiny_gpt2.dir, d)
    path = d / "block_001.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    load_stage(d, 0, 1)  # untouched block still loads
    with pytest.raises(ManifestError, match="sha256"):
        load_stage(d, 1, 2)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["format"] = 99
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError):
        load_stage(d, 0, 1)


def test_graph_factory_that_traces_differently_is_refused(toy: Sharded, tmp_path: Path) -> None:
    d = tmp_path / "toy"
    shutil.copytree(toy.dir, d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["graph"]["factory"] = "nesachain.models.efficientnet:build_efficientnet_lite0"
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="different graph"):
        load_stage(d, 0, 1)
