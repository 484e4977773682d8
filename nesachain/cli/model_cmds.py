"""`nesad model shard|check|info`: cut a model into block files, check that a model shards exactly, and read a
shard folder.

    nesad model shard MODEL --blocks K --out DIR     per-block safetensors + manifest.json ([--replace] an old one)
    nesad model check MODEL [--blocks K]             the model whole and in K stages, in this process: identical?
    nesad model info DIR                             what a shard folder holds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nesachain.errors import NesaError

__all__ = ["register"]

CHECK_PROMPT = "The capital of France is Paris. The capital of Italy is"
MAX_NEW_TOKENS = 1024


def register(subparsers: Any) -> None:
    """Add the ``model`` command group to ``nesad``'s subparsers."""
    model = subparsers.add_parser("model", help="shard models into block files")
    msub = model.add_subparsers(dest="model_command", required=True)
    p = msub.add_parser("shard", help="cut a model into K blocks: per-block safetensors + manifest")
    p.add_argument("model", help="smollm2-135m, all-minilm-l6-v2, efficientnet-lite0, a Hugging Face folder (a "
                                 "causal LM, an encoder-decoder or an encoder), or package.module:factory "
                                 "(torch.fx-traceable)")
    p.add_argument("--blocks", type=int, required=True, help="number of blocks K")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--input-shape", help="example input shape for graph models, e.g. 1,3,224,224")
    p.add_argument("--replace", action="store_true",
                   help="replace the shard folder at --out (swapped in once the new one is complete)")
    p.set_defaults(func=model_shard)
    p = msub.add_parser("check", help="run a Hugging Face model whole and sharded into K stages in this process, "
                                      "and say whether the greedy tokens (or the encoder's outputs) are identical")
    p.add_argument("model", help="a Hugging Face folder, smollm2-135m or all-minilm-l6-v2")
    p.add_argument("--blocks", type=int, default=3, help="number of stages K (default 3)")
    p.add_argument("--new-tokens", type=int, default=16, help="greedy tokens to compare (default 16)")
    p.add_argument("--prompt", default=CHECK_PROMPT, help="the fixed prompt (tokenized with the folder's tokenizer; "
                                                          "without one, fixed token ids are used)")
    p.set_defaults(func=model_check)
    p = msub.add_parser("info", help="print a shard folder's manifest summary")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=model_info)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 1


def model_shard(args: argparse.Namespace) -> int:
    from nesachain.shard_exec.shard_files import write_shards
    from nesachain.shard_exec.sources import load_source

    if args.blocks < 1:
        return _fail("--blocks must be at least 1")
    try:
        manifest = write_shards(load_source(args.model, args.input_shape), args.out, args.blocks,
                                replace=args.replace)
    except NesaError as exc:
        return _fail(str(exc))
    _print_manifest(manifest, args.out)
    return 0


def _print_manifest(manifest: dict[str, Any], where: Path) -> None:
    print(f"model {manifest['model_id']} ({manifest['architecture']}, {manifest['dtype']}) "
          f"in {manifest['n_blocks']} blocks at {where}")
    for b in manifest["blocks"]:
        print(f"  block {b['index']}: units {b['units'][0]}:{b['units'][1]}  {b['bytes'] / 2**20:8.1f} MiB  "
              f"sha256 {b['sha256'][:16]}  {b['file']}")
    if manifest.get("client"):
        print(f"  client part: {manifest['client']['bytes'] / 2**20:.1f} MiB  {manifest['client']['file']}")


def model_check(args: argparse.Namespace) -> int:
    import tempfile

    import torch

    from nesachain.shard_exec.hf_check import check_shards
    from nesachain.shard_exec.hf_shard import example_ids
    from nesachain.shard_exec.shard_files import write_shards
    from nesachain.shard_exec.sources import load_source

    if args.blocks < 1:
        return _fail("--blocks must be at least 1")
    if not 1 <= args.new_tokens <= MAX_NEW_TOKENS:
        return _fail(f"--new-tokens must be in 1..{MAX_NEW_TOKENS}")
    torch.manual_seed(0)
    try:
        src = load_source(args.model)
        if src.factory is not None:
            return _fail(f"{args.model} is a graph model: `nesad model check` is for Hugging Face models")
        if src.tokenizer is not None:
            ids = src.tokenizer(args.prompt, return_tensors="pt").input_ids
            if ids.shape[1] < 1:
                return _fail("the prompt tokenizes to no tokens")
        else:
            ids = example_ids(src.model.config, 8, seed=2)
        with tempfile.TemporaryDirectory(prefix="nesad-check-") as tmp:
            manifest = write_shards(src, Path(tmp) / "shards", args.blocks)
            result = check_shards(src.model, Path(tmp) / "shards", ids, args.new_tokens)
    except NesaError as exc:
        return _fail(str(exc))
    stages = ", ".join(f"{b['units'][0]}:{b['units'][1]}" for b in manifest["blocks"])
    print(f"model {manifest['model_id']} ({manifest['architecture']}, {manifest['hf']['class']}) in "
          f"{result.n_stages} stages: layers {stages}")
    if result.kind == "encoder":
        print(f"encoder outputs for a batch of 2 x {ids.shape[1]} tokens: largest difference {result.max_diff:.3g} "
              f"of {result.scale:.3g}")
    else:
        print(f"prompt: {ids.shape[1]} tokens; {args.new_tokens} greedy tokens, largest logit difference "
              f"{result.max_diff:.3g} of {result.scale:.3g}")
        print(f"  whole:   {result.expected}")
        print(f"  sharded: {result.got}")
    print(f"identical: {'yes' if result.identical else 'no'}" + ("" if result.identical else f" ({result.detail})"))
    return 0 if result.identical else 1


def model_info(args: argparse.Namespace) -> int:
    from nesachain.shard_exec.shard_files import read_manifest

    try:
        _print_manifest(read_manifest(args.dir), args.dir)
    except NesaError as exc:
        return _fail(str(exc))
    return 0
