"""`nesad tx inference request`: prompt in, verified answer out (``nesachain.client.request``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from nesachain.cli.common import add_client_options, add_keyring_options, emit, keyring_from, rpc_from
from nesachain.cli.inference_format import format_session
from nesachain.client.observed import ObservedSpeeds
from nesachain.client.request import RequestResult, await_settled, run_request
from nesachain.client.routing import PREFERENCES

__all__ = ["register"]


def register(isub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = isub.add_parser("request", help="run a prompt through the model's miners and settle it on chain")
    p.add_argument("client", help="key that opens the session and pays its escrow")
    p.add_argument("--model", required=True, help="model id on chain")
    p.add_argument("--shards", required=True, type=Path, help="local shard folder (client weights, tokenizer)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--prefer", choices=sorted(PREFERENCES), default="latency")
    p.add_argument("--scheme", default="none", help="activation compression: none, fp16, blockwise8, mixed8")
    p.add_argument("--raw", action="store_true", help="send the prompt as is (no chat template)")
    p.add_argument("--settle-timeout", type=float, default=180.0, help="seconds to wait for 'settled' (0: don't)")
    # several txs (open, close) with the wallet's fees and sequences: a single tx's --fee, --memo, --sequence,
    # --no-wait or --dry-run would mean nothing here, so they are not taken
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_request)


def _request(args: argparse.Namespace) -> int:
    rpc = rpc_from(args)
    key = keyring_from(args).signing_key(args.client)
    text = args.output == "text"

    def opened(r: RequestResult) -> None:
        hops = ", ".join(f"[{h.start},{h.end}) {h.miner}" for h in r.route.hops)
        print(f"session {r.session_id} opened at height {r.opened_height}; route {hops}; escrow {r.escrow}unes",
              file=sys.stderr)

    def token(piece: str) -> None:
        if text:
            print(piece, end="", flush=True)

    result = asyncio.run(run_request(rpc, key, args.shards, args.model, args.prompt, args.max_tokens,
                                     prefer=args.prefer, scheme=args.scheme, raw=args.raw, on_token=token,
                                     on_open=opened, observed=ObservedSpeeds.in_home(args.home)))
    if text:
        print()
    for hop, miner, from_token in result.stand_ins:
        print(f"hop {hop}: {miner} stood in from token {from_token} (failover); reported with the close",
              file=sys.stderr)
    print(f"[{len(result.tokens)} tokens, ttft {result.ttft_s * 1000:.0f} ms, {result.tokens_per_s:.1f} tokens/s; "
          f"session {result.session_id} closed at height {result.closed_height}]", file=sys.stderr)
    if args.settle_timeout == 0:
        emit(args, {"answer": result.answer, "session_id": result.session_id, "tokens": result.tokens},
             f"session {result.session_id}")
        return 0
    session = await_settled(rpc, result.session_id, args.settle_timeout,
                            lambda st: print(f"session {result.session_id}: {st}", file=sys.stderr))
    emit(args, {"answer": result.answer, "session": session, "tokens": result.tokens}, format_session(session))
    return 0 if session["status"] == "settled" else 1
