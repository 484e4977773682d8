"""`nesad model shard|info`: cut a model into block files, and read a shard folder.

    nesad model shard MODEL --blocks K --out DIR     per-block safetensors + manifest.json ([--replace] an old one)
    nesad model info DIR                             what a shard folder holds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nesachain.errors import NesaError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``model`` command group to ``nesad``'s subparsers."""
    model = subparsers.add_parser("model", help="shard models into block files")
    msub = model.add_subparsers(dest="model_command", required=True)
    p = msub.add_parser("shard", help="cut a model into K blocks: per-block safetensors + manifest")
    p.add_argument("model", help="smollm2-135m, all-minilm-l6-v2, efficientnet-lite0, an HF folder, "
                                 "or package.module:factory (torch.fx-traceable)")
    p.add_argument("--blocks", type=int, required=True, help="number of blocks K")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--input-shape", help="example input shape for graph models, e.g. 1,3,224,224")
    p.add_argument("--replace", action="store_true",
                   help="replace the shard folder at --out (swapped in once the new one is complete)")
    p.set_defaults(func=model_shard)
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


def model_info(args: argparse.Namespace) -> int:
    from nesachain.shard_exec.shard_files import read_manifest

    try:
        _print_manifest(read_manifest(args.dir), args.dir)
    except NesaError as exc:
        return _fail(str(exc))
    return 0
