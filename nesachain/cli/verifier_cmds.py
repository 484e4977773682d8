"""`nesad verifier start`: a validator's verifier, re-executing challenged steps (see agents/verifier.py)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import structlog

from nesachain.cli.common import add_client_options, add_keyring_options, keyring_from, rpc_from
from nesachain.errors import ConfigError, NesaError

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
    from nesachain.agents.chain_view import ChainView
    from nesachain.agents.fetch import fetch_json, fetch_steps
    from nesachain.agents.replay import ShardReplayer
    from nesachain.agents.verifier import Verifier
    from nesachain.logging import configure

    if not args.poll > 0:
        raise ConfigError(f"--poll must be a number of seconds > 0, got {args.poll}")
    if not args.tolerance > 0:
        raise ConfigError(f"--tolerance must be > 0, got {args.tolerance}")
    configure()
    log = structlog.get_logger("nesachain.verifier")
    rpc = rpc_from(args)
    chain = ChainView(rpc, keyring_from(args).signing_key(args.key))

    def chain_hashes(model_id: str) -> list[str]:
        hashes: list[str] = rpc.abci_query("inference/model", {"model_id": model_id}).json()["block_hashes"]
        return hashes

    state = Path(args.state_file) if args.state_file else Path(args.home) / f"verifier-{args.key}.json"
    verifier = Verifier(chain, ShardReplayer(parse_shards(args.shards), chain_hashes), state,
                        fetch_json, fetch_steps, args.tolerance)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("verifier_start", operator=verifier.operator)
        passes = 0
        while not stop.is_set():
            try:
                if passes % 20 == 0:  # new miners get their blocks loaded within ~20 polls
                    await asyncio.to_thread(verifier.warm)
                passes += 1
                await asyncio.to_thread(verifier.tick)
            except NesaError as exc:
                log.warning("verifier_pass_failed", error=str(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=args.poll)
            except TimeoutError:
                pass

    asyncio.run(run())
    return 0
