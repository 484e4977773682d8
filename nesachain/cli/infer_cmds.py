"""`nesad infer generate|embed`: run inference through a route of miners you name (no chain).

    nesad infer generate --model DIR --route …       stream a completion through a route of miners
    nesad infer embed --model DIR --route … TEXT…    sentence embeddings through a route
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from nesachain.cli.model_cmds import _fail
from nesachain.errors import NesaError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``infer`` command group to ``nesad``'s subparsers."""
    infer = subparsers.add_parser("infer", help="run inference through a route of miners")
    isub = infer.add_subparsers(dest="infer_command", required=True)
    p = isub.add_parser("generate", help="stream a completion (chat template applied)")
    _route_options(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--raw", action="store_true", help="do not apply the chat template")
    p.set_defaults(func=infer_generate)
    p = isub.add_parser("embed", help="sentence embeddings (first values and norms)")
    _route_options(p)
    p.add_argument("texts", nargs="+")
    p.set_defaults(func=infer_embed)


def _route_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="shard folder (client weights, tokenizer)")
    p.add_argument("--route", required=True, help="host:port@a:b,host:port@b:c,…")
    p.add_argument("--alt", action="append", default=[], help="alternate miner host:port@a:b (repeatable)")
    p.add_argument("--scheme", default="none", help="none, fp16, blockwise8 or mixed8")
    p.add_argument("--edge-scheme", help="scheme of the client's own two edges (default: --scheme)")
    p.add_argument("--no-push", action="store_true", help="client relays every hop (no miner-to-miner push)")
    p.add_argument("--timeout", type=float, default=30.0)


def infer_generate(args: argparse.Namespace) -> int:
    from nesachain.client.models import DecoderClient, GenerationStats, load_tokenizer
    from nesachain.client.route import parse_route
    from nesachain.shard_exec.sampling import Sampling

    if args.max_new_tokens < 1:
        return _fail(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if not args.timeout > 0:
        return _fail(f"--timeout must be a number of seconds > 0, got {args.timeout}")
    try:
        sampling = Sampling(args.temperature, 0, args.top_p, args.seed)
    except NesaError as exc:
        return _fail(str(exc))

    async def run() -> GenerationStats:
        client = DecoderClient.from_shard_dir(args.model)
        tok = load_tokenizer(args.model)
        if tok is None:
            raise NesaError("the shard folder has no tokenizer")
        text = args.prompt if args.raw else tok.apply_chat_template(
            [{"role": "user", "content": args.prompt}], tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        route = parse_route(args.route, args.alt, args.scheme, push=not args.no_push,
                            edge_scheme=args.edge_scheme)
        stats = GenerationStats()
        async for t in client.generate(route, ids, args.max_new_tokens, sampling, stop_at_eos=True,
                                       stats=stats, timeout=args.timeout):
            if t != client.head.eos_token_id:
                print(tok.decode([t]), end="", flush=True)
        print()
        return stats

    try:
        stats = asyncio.run(run())
    except NesaError as exc:
        return _fail(str(exc))
    for ev in stats.recoveries:
        print(f"recovered hop {ev.hop} at step {ev.step}: {ev.failed_url} -> {ev.new_url} "
              f"({ev.replayed_steps} steps replayed in {ev.seconds:.3f} s)", file=sys.stderr)
    print(f"[{stats.new_tokens} tokens, ttft {stats.ttft_s * 1000:.0f} ms, {stats.tokens_per_s:.1f} tokens/s]",
          file=sys.stderr)
    return 0


def infer_embed(args: argparse.Namespace) -> int:
    from nesachain.client.models import EncoderClient
    from nesachain.client.route import parse_route

    if not args.timeout > 0:
        return _fail(f"--timeout must be a number of seconds > 0, got {args.timeout}")

    async def run() -> Any:
        client = EncoderClient.from_shard_dir(args.model)
        route = parse_route(args.route, args.alt, args.scheme, push=not args.no_push,
                            edge_scheme=args.edge_scheme)
        return await client.embed(route, list(args.texts), timeout=args.timeout)

    try:
        emb = asyncio.run(run())
    except NesaError as exc:
        return _fail(str(exc))
    for text, row in zip(args.texts, emb, strict=True):
        head = " ".join(f"{v:+.4f}" for v in row[:6].tolist())
        print(f"{text[:40]!r}: dim={row.shape[0]} [{head} …]")
    if len(args.texts) > 1:
        sims = emb @ emb.T
        print("cosine similarities:")
        for i in range(len(args.texts)):
            print("  " + " ".join(f"{float(sims[i, j]):.3f}" for j in range(len(args.texts))))
    return 0
