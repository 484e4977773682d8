"""`nesad model …`, `nesad miner …`, `nesad infer …`: shard a model, serve blocks, run inference.

    nesad model shard MODEL --blocks K --out DIR     per-block safetensors + manifest.json ([--replace] an old one)
    nesad model info DIR                             what a shard folder holds
    nesad miner start --model DIR --blocks a:b       serve blocks [a, b) on 127.0.0.1 (prints its URL)
    nesad miner start --model DIR --num-blocks N --owner … --miner-key …   N blocks where the chain needs them
    nesad miner info URL                             a miner's /info document
    nesad infer generate --model DIR --route …       stream a completion through a route of miners
    nesad infer embed --model DIR --route … TEXT…    sentence embeddings through a route

Handlers return an exit status; user output goes to stdout, errors as one line to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from nesachain.cli.common import add_keyring_options
from nesachain.errors import NesaError
from nesachain.logging import configure

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``model``, ``miner`` and ``infer`` command groups to ``nesad``'s subparsers."""
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

    miner = subparsers.add_parser("miner", help="serve a block range of a sharded model")
    nsub = miner.add_subparsers(dest="miner_command", required=True)
    p = nsub.add_parser("start", help="start a miner (runs until SIGINT/SIGTERM)")
    p.add_argument("--model", type=Path, required=True, help="shard folder (from `nesad model shard`)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--blocks", help="block range a:b")
    where.add_argument("--num-blocks", type=int,
                       help="serve this many blocks where the chain needs them, and move when the swarm gains "
                            "(needs --owner)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--max-length", type=int, default=4096, help="max tokens per session")
    p.add_argument("--memory-budget-mb", type=float, default=1024.0, help="KV-cache budget of all sessions")
    p.add_argument("--max-sessions", type=int, default=256)
    p.add_argument("--session-timeout", type=float, default=300.0, help="idle seconds before a session closes")
    p.add_argument("--max-tensor-mb", type=float, default=64.0, help="largest tensor accepted")
    p.add_argument("--no-warm-ahead", dest="warm_ahead", action="store_false",
                   help="do not warm the compute path just before a steady session's next step is due")
    p.add_argument("--exit-with-parent", nargs="?", type=int, const=0, default=None, metavar="PID",
                   help="stop when the process that started this miner exits (for scripts and tests); a script "
                        "that passes its own PID is covered even if it dies before the miner has started")
    # test-only misbehaviour, hidden from --help: a cheating miner, one that withholds reveals or data
    p.add_argument("--test-perturb", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--test-no-reveal", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--test-refuse-data", action="store_true", help=argparse.SUPPRESS)
    chain = p.add_argument_group("on chain (omit --owner to serve off chain)")
    chain.add_argument("--owner", help="key that bonds the miner and signs its txs (enables the chain side)")
    chain.add_argument("--miner-key", help="the miner's own key (distinct from the owner's)")
    chain.add_argument("--model-id", help="model id on chain (default: the manifest's)")
    chain.add_argument("--bond", default="1000000", help="unes to bond (default 1000000)")
    chain.add_argument("--node", default=os.environ.get("NESAD_NODE", "http://127.0.0.1:26657"))
    chain.add_argument("--state-file", help="where result salts are kept (default: HOME/miner-<key>.json)")
    add_keyring_options(chain)
    p.set_defaults(func=miner_start)
    p = nsub.add_parser("info", help="print a miner's /info")
    p.add_argument("url", help="host:port or http://host:port")
    p.set_defaults(func=miner_info)

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


def miner_start(args: argparse.Namespace) -> int:
    from nesachain.shard_exec.miner.config import MinerConfig
    from nesachain.shard_exec.miner.main import serve_forever
    from nesachain.shard_exec.shard_files import parse_range, read_manifest

    parent = None
    if args.exit_with_parent is not None:
        parent = args.exit_with_parent or os.getppid()
        if os.getppid() != parent:  # the script died before this line ran, or a wrong PID
            why = "has already exited" if not Path(f"/proc/{parent}").exists() else \
                f"is not this miner's parent (process {os.getppid()} is)"
            return _fail(f"--exit-with-parent: process {parent} {why}")
    limits = [("--port", args.port, 0 <= args.port <= 65535, "in 0..65535"),
              ("--threads", args.threads, args.threads >= 0, ">= 0"),
              ("--max-length", args.max_length, args.max_length >= 1, ">= 1"),
              ("--max-sessions", args.max_sessions, args.max_sessions >= 1, ">= 1"),
              ("--memory-budget-mb", args.memory_budget_mb, args.memory_budget_mb > 0, "> 0"),
              ("--session-timeout", args.session_timeout, args.session_timeout > 0, "> 0 seconds"),
              ("--max-tensor-mb", args.max_tensor_mb, args.max_tensor_mb > 0, "> 0")]
    for flag, value, ok, rule in limits:
        if not ok or value != value:  # value != value: nan
            return _fail(f"{flag} must be {rule}, got {value}")
    try:
        manifest = read_manifest(args.model)
        registrar = _chain_registrar(args, manifest)
        if args.blocks is not None:
            start, end = parse_range(args.blocks, manifest["n_blocks"])
        elif registrar is None:
            raise NesaError("--num-blocks lets the chain choose the blocks: it needs --owner and --miner-key")
        else:
            start, end = registrar.initial_blocks(manifest["n_blocks"])
        cfg = MinerConfig(
            shard_dir=args.model, start=start, end=end, host=args.host, port=args.port, threads=args.threads,
            max_length=args.max_length, memory_budget=int(args.memory_budget_mb * 2**20),
            max_sessions=args.max_sessions, session_idle_timeout=args.session_timeout,
            max_tensor_bytes=int(args.max_tensor_mb * 2**20),
            max_message_bytes=max(int(args.max_tensor_mb * 2**20) * 2, 8 << 20), test_perturb=args.test_perturb,
            test_refuse_data=args.test_refuse_data, warm_ahead=args.warm_ahead,
        )

        def ready(info: dict[str, Any]) -> None:
            print(f"miner listening url={info['url']} model={info['model_id']} "
                  f"blocks={info['blocks'][0]}:{info['blocks'][1]} units={info['units'][0]}:{info['units'][1]} "
                  f"tokens_per_s={info['throughput_tokens_per_s']:.1f} "
                  f"param_mib={info['param_bytes'] / 2**20:.1f} rss_mib={info['rss_bytes'] / 2**20:.1f}",
                  flush=True)

        asyncio.run(serve_forever(cfg, ready, registrar=registrar, parent=parent))
    except NesaError as exc:
        return _fail(str(exc))
    return 0


def _chain_registrar(args: argparse.Namespace, manifest: dict[str, Any]) -> Any:
    """The chain side of a miner (registration, heartbeats, result commitments), or None off chain."""
    if args.owner is None:
        return None
    if args.miner_key is None:
        raise NesaError("--owner needs --miner-key (the miner's own key, distinct from the owner's)")
    from nesachain.cli.common import keyring_from
    from nesachain.cli.tx_cmds import parse_amount
    from nesachain.miner.registrar import ChainRegistrar

    state = Path(args.state_file) if args.state_file else Path(args.home) / f"miner-{args.miner_key}.json"
    return ChainRegistrar(args.node, keyring_from(args), args.owner, args.miner_key,
                          args.model_id or manifest["model_id"], parse_amount(args.bond),
                          int(args.memory_budget_mb), state, withhold_reveals=args.test_no_reveal,
                          num_blocks=args.num_blocks)


def miner_info(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    from nesachain.shard_exec.client.route import check_endpoint

    try:
        check_endpoint(args.url)
    except NesaError as exc:
        return _fail(str(exc))
    base = args.url if args.url.startswith("http") else f"http://{args.url}"
    try:
        with urllib.request.urlopen(f"{base.rstrip('/')}/info", timeout=10) as resp:
            info = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return _fail(f"cannot read {base}/info: {exc}")
    print(json.dumps(info, indent=1, sort_keys=True))
    return 0


def infer_generate(args: argparse.Namespace) -> int:
    from nesachain.shard_exec.client import DecoderClient, GenerationStats, Sampling, load_tokenizer, parse_route

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
    from nesachain.shard_exec.client import EncoderClient, parse_route

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nesad")
    register(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args()
    configure(json=False)  # as nesad's main: logs on stderr, stdout for the command's output
    sys.exit(ns.func(ns))
