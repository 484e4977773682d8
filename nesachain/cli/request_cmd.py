"""`nesad tx inference request`: prompt in, verified answer out.

Finds the model's active miners on chain, measures its own round trip to each, routes (the
personalised shortest path of client/routing.py), opens an escrowed session, streams the
completion through the miners (embeddings and LM head stay here), closes the session with the
number of tokens generated, then follows the session on chain until it settles.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from nesachain.cli.common import emit, keyring_from, rpc_from
from nesachain.cli.inference_format import format_session
from nesachain.cli.tx_cmds import add_tx_options
from nesachain.client.routing import PREFERENCES, MinerCandidate, NoRouteError, Route, find_route
from nesachain.client.rpc import CometRPC
from nesachain.client.txs import send_msgs
from nesachain.errors import ConfigError, NesaError, RPCError
from nesachain.modules.inference.keeper import max_cost
from nesachain.modules.inference.msgs import MsgCloseSession, MsgOpenSession

__all__ = ["candidates", "register"]


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
    add_tx_options(p)
    p.set_defaults(func=_request)


def _probe(endpoint: str) -> tuple[float, dict[str, Any]] | None:
    """(round trip in seconds, /info) of a miner, or None if it does not answer."""
    import json

    base = endpoint if "://" in endpoint else f"http://{endpoint}"
    try:
        t = time.perf_counter()
        with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
            r.read()
        rtt = time.perf_counter() - t
        with urllib.request.urlopen(f"{base}/info", timeout=2) as r:
            info: dict[str, Any] = json.loads(r.read())
    except (OSError, ValueError):
        return None
    return rtt, info


def candidates(rpc: CometRPC, model_id: str) -> tuple[list[MinerCandidate], dict[str, str]]:
    """The model's active miners that answer, with this client's RTT; and miner -> endpoint."""
    miners = rpc.abci_query("staking/miners", {"model_id": model_id, "status": "active"}).json()["miners"]
    out, endpoints = [], {}
    for m in miners:
        probe = _probe(m["endpoint"])
        if probe is None:
            continue
        rtt, info = probe
        rep = int(m["reputation"]) / 1_000_000
        out.append(MinerCandidate(m["miner"], m["block_start"], m["block_end"], max(m["throughput"], 1) / 1000,
                                  rep, int(info.get("queue", 0) or 0), 0, rtt))
        endpoints[m["miner"]] = m["endpoint"]
    return out, endpoints


def _ws(endpoint: str) -> str:
    return endpoint if endpoint.startswith("ws") else f"ws://{endpoint.removeprefix('http://')}/ws"


def _request(args: argparse.Namespace) -> int:
    from nesachain.agents.results import chain_session_base
    from nesachain.shard_exec.client import DecoderClient, GenerationStats, Sampling, load_tokenizer
    from nesachain.shard_exec.client.route import Hop as ExecHop
    from nesachain.shard_exec.client.route import Route as ExecRoute

    rpc = rpc_from(args)
    key = keyring_from(args).signing_key(args.client)
    model = rpc.abci_query("inference/model", {"model_id": args.model}).json()
    params = rpc.abci_query("inference/params").json()
    cands, endpoints = candidates(rpc, args.model)
    try:
        route: Route = find_route(cands, model["n_blocks"], PREFERENCES[args.prefer])
    except NoRouteError as exc:
        raise ConfigError(f"cannot route {args.model}: {exc}") from None
    escrow = max_cost(model["price"], model["n_blocks"], args.max_tokens, params["protocol_fee_ppm"])
    client_addr = keyring_from(args).show(args.client).address
    opened = send_msgs(rpc, key, [MsgOpenSession(client_addr, args.model, route.as_chain_route(), args.max_tokens,
                                                 escrow)], chain_id=args.chain_id, fee=args.fee)
    if not opened.ok:
        raise NesaError(f"opening the session was refused: code {opened.code} ({opened.codespace}): {opened.log}")
    sid = int(opened.responses()[0]["session_id"])
    hops_text = ", ".join(f"[{h.start},{h.end}) {h.miner_id}" for h in route.hops)
    print(f"session {sid} opened at height {opened.height}; route {hops_text}; escrow {escrow}unes", file=sys.stderr)
    exec_route = ExecRoute([ExecHop(_ws(endpoints[h.miner_id]), h.start, h.end,
                                    [_ws(endpoints[a]) for a in h.alternates]) for h in route.hops],
                           args.scheme, push=True)
    stats = GenerationStats()
    tokens: list[int] = []

    async def run() -> str:
        client = DecoderClient.from_shard_dir(args.shards)
        tok = load_tokenizer(args.shards)
        if tok is None:
            raise ConfigError(f"{args.shards} has no tokenizer")
        text = args.prompt if args.raw else tok.apply_chat_template(
            [{"role": "user", "content": args.prompt}], tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        async for t in client.generate(exec_route, ids, args.max_tokens, Sampling(), stop_at_eos=True, stats=stats,
                                       session_base=chain_session_base(sid)):
            tokens.append(t)
            if t != client.head.eos_token_id and args.output == "text":
                print(tok.decode([t]), end="", flush=True)
        answer: str = tok.decode([t for t in tokens if t != client.head.eos_token_id])
        return answer

    try:
        answer = asyncio.run(run())
    finally:
        closed = send_msgs(rpc, key, [MsgCloseSession(client_addr, sid, len(tokens))], chain_id=args.chain_id,
                           fee=args.fee)
    if args.output == "text":
        print()
    print(f"[{stats.new_tokens} tokens, ttft {stats.ttft_s * 1000:.0f} ms, {stats.tokens_per_s:.1f} tokens/s; "
          f"session closed at height {closed.height}]", file=sys.stderr)
    session = _await_settled(rpc, sid, args.settle_timeout)
    emit(args, {"answer": answer, "session": session, "tokens": tokens},
         format_session(session))
    return 0 if session["status"] == "settled" or args.settle_timeout == 0 else 1


def _await_settled(rpc: CometRPC, sid: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        s: dict[str, Any] = rpc.abci_query("inference/session", {"session_id": sid}).json()
        if s["status"] != last:
            print(f"session {sid}: {s['status']}", file=sys.stderr)
            last = s["status"]
        if s["status"] == "settled" or time.monotonic() > deadline:
            return s
        try:
            time.sleep(1.0)
        except KeyboardInterrupt:
            raise RPCError(f"stopped waiting; follow it with `nesad query inference session {sid}`") from None
