"""Shard folders: one safetensors file per block plus ``manifest.json``.

    manifest.json          {"format": 2, "model_id", "architecture", "dtype", "n_blocks",
                            "blocks": [{"index", "file", "sha256", "bytes", "units": [lo, hi),
                                        "layers": {"encoder": [lo, hi), "decoder": [lo, hi)} (encoder-decoders)}],
                            "client": {"file", "sha256", "bytes"} | null,
                            "hf": {"class", "config", "attn_implementation", "plan", "aliases"} | null,
                            "graph": {"factory", "digest", "inputs", "units", "bounds", "live", "specs"} | null,
                            "tokenizer": "tokenizer" | null}
    block_NNN.safetensors  block NNN's weights (HF: keys "<layer>.<param>", or "<encoder|decoder>.<layer>.<param>";
                           graph: the stage's state dict)
    client.safetensors     what the client keeps: every weight of an HF model outside its layers, under its own name
    tokenizer/             the tokenizer, when the model has one

``units`` are layer indices for HF models (an encoder-decoder's count the layers of both stacks, block after
block; ``hf_shard``) and graph-unit indices for fx models. A miner reads and hashes only the block files it
serves (``load_stage``); a mismatching sha256 is refused. An HF model's folder is written only after its
stages, loaded from the new files, reproduced the whole model on a few example tokens (``hf_check``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from nesachain.protocol.errors import WireError
from nesachain.shard_exec.errors import ManifestError, ShardExecError
from nesachain.shard_exec.hugepages import in_huge_pages
from nesachain.shard_exec.sources import Source, build_from_factory
from nesachain.shard_exec.stage import StageRunner

__all__ = ["MANIFEST", "block_hashes", "block_range_problem", "load_client_state", "load_stage", "read_manifest",
           "write_shards"]

MANIFEST = "manifest.json"
FORMAT = 2
CHECK_TOKENS = 4  # new tokens the sharded model must reproduce before its folder is put in place


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return {"file": path.name, "sha256": _sha256(path), "bytes": path.stat().st_size}


def write_shards(src: Source, out_dir: Path, k: int, *, replace: bool = False) -> dict[str, Any]:
    """Cut ``src`` into ``k`` blocks under ``out_dir``; returns the manifest written.

    The folder is written beside ``out_dir`` and renamed into place once complete, so a failure or
    Ctrl-C leaves no half-written shard folder. ``out_dir`` must be absent or empty; with ``replace``
    it may also be a shard folder (one with a manifest), swapped out once the new one is complete."""
    out_dir = out_dir.absolute()
    _clear_leftovers(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ManifestError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MANIFEST).is_file():
            raise ManifestError(f"{out_dir} is not empty and holds no shard folder: choose another folder")
        if not replace:
            raise ManifestError(f"{out_dir} holds a shard folder already: choose another folder, or --replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        manifest = _write_graph(src, work, k) if src.factory is not None else _write_hf(src, work, k)
        manifest["format"] = FORMAT
        if src.tokenizer is not None:
            src.tokenizer.save_pretrained(str(work / "tokenizer"))
            manifest["tokenizer"] = "tokenizer"
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if src.factory is None:
            _verify_hf(src, work)
        _swap_in(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already unless something failed
    return manifest


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _clear_leftovers(out_dir: Path) -> None:
    """Tidy what a killed (SIGKILL, power loss) ``write_shards`` of the same ``out_dir`` left beside it.

    A ``.partial-PID`` folder is never complete: removed. An ``.old-PID`` folder is the previous shard
    folder, moved aside for a swap: removed if the new folder is in place, put back if ``out_dir`` is
    missing, else kept. Folders of a process that still runs are left alone."""
    if not out_dir.parent.is_dir():
        return
    for kind in ("partial", "old"):
        prefix = f".{out_dir.name}.{kind}-"
        for path in sorted(out_dir.parent.iterdir()):
            pid = path.name[len(prefix):] if path.name.startswith(prefix) else ""
            if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
                continue
            if kind == "partial" or (out_dir / MANIFEST).is_file():
                shutil.rmtree(path, ignore_errors=True)
            elif not out_dir.exists() and (path / MANIFEST).is_file():
                path.rename(out_dir)


def _swap_in(work: Path, out_dir: Path) -> None:
    """Rename the finished folder ``work`` to ``out_dir``, moving an existing one aside first."""
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if not out_dir.exists():
        work.rename(out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    out_dir.rename(old)
    try:
        work.rename(out_dir)
    except BaseException:
        old.rename(out_dir)  # put the old folder back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_hf(src: Source, out_dir: Path, k: int) -> dict[str, Any]:
    from nesachain.shard_exec.hf_shard import hf_kind, write_hf

    return write_hf(src.model, src.kind or hf_kind(src.model), src.model_id, out_dir, k, _save)


def _verify_hf(src: Source, work: Path) -> None:
    """Refuse a folder whose stages do not reproduce the whole model (see ``hf_check``)."""
    from nesachain.shard_exec.errors import PartitionError
    from nesachain.shard_exec.hf_check import check_shards
    from nesachain.shard_exec.hf_shard import example_ids

    try:
        result = check_shards(src.model, work, example_ids(src.model.config, 6, seed=1), CHECK_TOKENS)
    except (ShardExecError, WireError) as exc:
        raise PartitionError(f"the sharded model cannot run: {exc}") from exc
    except Exception as exc:  # the model's own code, run cut into stages: any failure is the reason to refuse
        raise PartitionError(f"the sharded model fails where the whole model runs: {type(exc).__name__}: {exc}"
                             ) from exc
    if not result.identical:
        raise PartitionError(f"the sharded model does not reproduce the whole model (largest difference "
                             f"{result.max_diff:.3g} of {result.scale:.3g}; tokens {result.got} against "
                             f"{result.expected}): {result.detail}")


def _write_graph(src: Source, out_dir: Path, k: int) -> dict[str, Any]:
    from nesachain.shard_exec.fx_graph import graph_digest, plan_stages, profile, split, trace

    assert src.factory is not None and src.example_inputs is not None  # checked by the caller's branch
    gm = trace(src.model)
    prof = profile(gm, src.example_inputs)
    bounds = plan_stages(prof, k)
    live = {b: prof.live[b] for b in bounds}
    stages = split(gm, live, prof.units, bounds)
    blocks = []
    for i, st in enumerate(stages):
        entry = _save(dict(st.module.state_dict()), out_dir / f"block_{i:03d}.safetensors")
        blocks.append({"index": i, "units": [bounds[i], bounds[i + 1]], **entry})
    return {
        "format": FORMAT, "model_id": src.model_id, "architecture": "fx-graph", "dtype": "float32",
        "n_blocks": k, "blocks": blocks, "tokenizer": None, "hf": None, "client": None,
        "graph": {"factory": src.factory, "digest": graph_digest(gm), "inputs": prof.inputs,
                  "units": prof.units, "bounds": bounds, "live": {str(b): v for b, v in live.items()},
                  "specs": prof.specs, "cut_bytes": [prof.cut_bytes[b] for b in bounds]},
    }


def block_hashes(manifest: dict[str, Any]) -> list[str]:
    """The sha256 of each block file, in block order (what a model registers on chain, and what a client
    sends when it opens a session so that a miner with other weights refuses)."""
    return [b["sha256"] for b in sorted(manifest["blocks"], key=lambda b: b["index"])]


def read_manifest(shard_dir: Path) -> dict[str, Any]:
    """Parse and sanity-check ``manifest.json``."""
    path = shard_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    if isinstance(manifest, dict) and manifest.get("format") == 1:
        raise ManifestError(f"{path} was written by an older nesachain (format 1): shard the model again")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ManifestError(f"{path} is not a format-{FORMAT} shard manifest")
    blocks = manifest.get("blocks")
    if not isinstance(blocks, list) or len(blocks) != manifest.get("n_blocks"):
        raise ManifestError(f"{path}: blocks do not match n_blocks")
    return manifest


def _read_block(shard_dir: Path, entry: dict[str, Any]) -> dict[str, torch.Tensor]:
    path = shard_dir / entry["file"]
    if not path.is_file():
        raise ManifestError(f"block file {path} is missing")
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise ManifestError(f"block file {path} has sha256 {digest[:16]}…, manifest says {entry['sha256'][:16]}…")
    return load_file(str(path))


def parse_range(text: str, n_blocks: int) -> tuple[int, int]:
    """``"a:b"`` -> (a, b) with 0 <= a < b <= n_blocks."""
    try:
        lo_s, hi_s = text.split(":")
        lo, hi = int(lo_s), int(hi_s)
    except ValueError as exc:
        raise ManifestError(f"a block range looks like 0:2, got {text!r}") from exc
    problem = block_range_problem(lo, hi, n_blocks)
    if problem:
        raise ManifestError(problem)
    return lo, hi


def block_range_problem(start: int, end: int, n_blocks: int) -> str | None:
    """What is wrong with blocks [start, end) of a model of ``n_blocks``, or None."""
    if start >= end:
        return f"block range {start}:{end} is empty: its start must be below its end"
    if start < 0 or end > n_blocks:
        return f"block range {start}:{end} is outside 0:{n_blocks}"
    return None


def load_stage(shard_dir: Path, start: int, end: int) -> StageRunner:
    """Load blocks [start, end) only (hashes checked), their weights in huge pages where the platform
    allows (``hugepages``), and build their runner."""
    manifest = read_manifest(shard_dir)
    problem = block_range_problem(start, end, manifest["n_blocks"])
    if problem:
        raise ManifestError(problem)
    entries = manifest["blocks"][start:end]
    if manifest["architecture"] == "fx-graph":
        return _load_graph_stage(shard_dir, manifest, start, end)
    from nesachain.shard_exec.hf_model import HFSpec
    from nesachain.shard_exec.hf_stages import build_hf_stage

    spec = HFSpec.from_manifest(manifest)
    state: dict[str, torch.Tensor] = {}
    for entry in entries:
        state.update(_read_block(shard_dir, entry))
    return build_hf_stage(spec, entries, in_huge_pages(state))


def _load_graph_stage(shard_dir: Path, manifest: dict[str, Any], start: int, end: int) -> StageRunner:
    from torch import nn

    from nesachain.shard_exec.fx_graph import graph_digest, split, trace
    from nesachain.shard_exec.graph_stage import GraphStage
    g = manifest["graph"]
    with torch.device("meta"):
        model = build_from_factory(g["factory"])
    gm = trace(model)
    if graph_digest(gm) != g["digest"]:
        raise ManifestError(f"factory {g['factory']} traces to a different graph than the one sharded")
    live = {int(b): v for b, v in g["live"].items()}
    stages = split(gm, live, g["units"], g["bounds"])[start:end]
    holder = nn.ModuleList([st.module for st in stages])
    state: dict[str, torch.Tensor] = {}
    for i, entry in enumerate(manifest["blocks"][start:end]):
        state.update({f"{i}.{key}": v for key, v in _read_block(shard_dir, entry).items()})
    _materialize(holder, in_huge_pages(state), f"graph stages {start}:{end}")
    for st in stages:
        leftover = [n for n, t in [*st.module.named_parameters(), *st.module.named_buffers()] if t.is_meta]
        if leftover:
            raise ManifestError(f"graph stage keeps tensors that are not weights: {leftover[:3]}")
    return GraphStage(stages, g["specs"])


def _materialize(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Move a meta module to CPU and load ``state`` into it, every key and shape checked."""
    module.to_empty(device="cpu")
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ManifestError(f"{what}: missing weights {missing[:5]}, unexpected {extra[:5]}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ManifestError(f"{what}: {key} has shape {tuple(value.shape)}, "
                                f"expected {tuple(expected[key].shape)}")
    module.load_state_dict(state, strict=True, assign=True)
    module.eval()


def load_client_state(shard_dir: Path) -> dict[str, torch.Tensor]:
    """The client part's weights (hash checked); empty for graph models."""
    manifest = read_manifest(shard_dir)
    if manifest.get("client") is None:
        return {}
    return in_huge_pages(_read_block(shard_dir, manifest["client"]))
