"""`nesad verifier start`: a validator's verifier, re-executing challenged steps (``nesachain.verifier``)."""

from __future__ import annotations

import argparse
import asyncio
import math
from pathlib import Path

from nesachain.cli.common import add_client_options, add_keyring_options, keyring_from, rpc_from
from nesachain.errors import ConfigError

__all__ = ["parse_shards", "register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    v = sub.add_parser("verifier", help="re-execute sampled shard steps and vote on them (validators)")
    vsub = v.add_subparsers(dest="verifier_cmd", required=True)
    p = vsub.add_parser("start", help="run the verifier until SIGINT/SIGTERM")
    p.add_argument("key", help="the validator's operator key (signs verdicts)")
    p.add_argument("--shards", action="append", default=[], metavar="MODEL_ID=DIR",
                   help="this verifier's own shard folder of a model (repeatable)")
    p.add_argument("--state-file", help="where verdict salts are kept (default: HOME/verifier-<key>.json)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between passes over the chain")
    p.add_argument("--tolerance", type=float, default=2e-3, help="median relative deviation still judged a match")
    p.add_argument("--fetch-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="each read of a miner's step log or frames, start to end (keep it under the verdict window)")
    p.add_argument("--max-frames-mb", type=float, default=256.0,
                   help="the largest frames answer read from a miner (MiB); a larger one is a mismatch")
    p.add_argument("--max-replay-tokens", type=int, default=16_384,
                   help="the most tokens one replay runs; over it this verifier abstains")
    p.add_argument("--workers", type=int, default=4, help="challenges judged at once")
    p.add_argument("--margin-blocks", type=int, default=3,
                   help="blocks before the commit deadline when a miner that has not answered is judged mismatch")
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_start)


def parse_shards(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        model_id, sep, folder = item.partition("=")
        if not sep or not model_id or not (Path(folder) / "manifest.json").is_file():
            raise ConfigError(f"--shards {item!r} must be MODEL_ID=DIR with DIR/manifest.json")
        out[model_id] = Path(folder)
    return out


def _start(args: argparse.Namespace) -> int:
    from nesachain.logging import configure
    from nesachain.verifier.judge import Limits
    from nesachain.verifier.run import build_verifier, run_verifier

    if not args.poll > 0:
        raise ConfigError(f"--poll must be a number of seconds > 0, got {args.poll}")
    if not args.tolerance > 0:
        raise ConfigError(f"--tolerance must be > 0, got {args.tolerance}")
    if not 0 < args.fetch_timeout < math.inf:
        raise ConfigError(f"--fetch-timeout must be a number of seconds > 0, got {args.fetch_timeout}")
    if not 0 < args.max_frames_mb <= 1 << 20:
        raise ConfigError(f"--max-frames-mb must be in (0, {1 << 20}], got {args.max_frames_mb}")
    for flag, value, low in (("--max-replay-tokens", args.max_replay_tokens, 1), ("--workers", args.workers, 1),
                             ("--margin-blocks", args.margin_blocks, 0)):
        if value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    limits = Limits(fetch_timeout_s=args.fetch_timeout, max_frames_bytes=int(args.max_frames_mb * 2**20),
                    workers=args.workers, margin_blocks=args.margin_blocks)
    limits.validate()
    configure()
    state = Path(args.state_file) if args.state_file else Path(args.home) / f"verifier-{args.key}.json"
    verifier = build_verifier(rpc_from(args), keyring_from(args).signing_key(args.key), parse_shards(args.shards),
                              state, args.tolerance, limits, args.max_replay_tokens)
    asyncio.run(run_verifier(verifier, args.poll))
    return 0
