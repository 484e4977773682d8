"""`nesad miner start|info`: run a miner (``nesachain.miner.start``), or read a running one's /info.

    nesad miner start --model DIR --blocks a:b       serve blocks [a, b) on 127.0.0.1 (prints its URL)
    nesad miner start --model DIR --num-blocks N --owner … --miner-key …   N blocks where the chain needs them
    nesad miner info URL                             a miner's /info document
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nesachain.cli.common import add_keyring_options, keyring_from
from nesachain.cli.model_cmds import _fail
from nesachain.cli.tx_cmds import parse_amount
from nesachain.errors import ConfigError, NesaError

if TYPE_CHECKING:
    from nesachain.miner.start import MinerSettings

__all__ = ["miner_settings", "print_ready", "register"]


def register(subparsers: Any) -> None:
    """Add the ``miner`` command group to ``nesad``'s subparsers."""
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
    p.add_argument("--max-sessions-per-client", type=int, default=32,
                   help="open sessions one client account (off chain: one peer address) may hold")
    p.add_argument("--max-connections-per-peer", type=int, default=32, help="WebSockets one peer address may hold")
    p.add_argument("--idle-connection-timeout", type=float, default=30.0,
                   help="seconds before a WebSocket that holds no session and sends nothing is closed")
    p.add_argument("--push-allow", action="append", default=[], metavar="HOST[:PORT]",
                   help="off chain: where sessions may push their outputs (repeatable; on chain the route decides)")
    p.add_argument("--exit-with-parent", nargs="?", type=int, const=0, default=None, metavar="PID",
                   help="stop when the process that started this miner exits (for scripts and tests); a script "
                        "that passes its own PID is covered even if it dies before the miner has started")
    chain = p.add_argument_group("on chain (omit --owner to serve off chain)")
    chain.add_argument("--owner", help="key that bonds the miner and signs its txs (enables the chain side)")
    chain.add_argument("--miner-key", help="the miner's own key (distinct from the owner's)")
    chain.add_argument("--model-id", help="model id on chain (default: the manifest's)")
    chain.add_argument("--bond", default="1000000", help="unes to bond (default 1000000)")
    chain.add_argument("--node", default=os.environ.get("NESAD_NODE", "http://127.0.0.1:26657"))
    chain.add_argument("--state-file", help="where result salts are kept (default: HOME/miner-<key>.json)")
    chain.add_argument("--log-dir", type=Path, help="where chain sessions' step logs are kept until they settle "
                                                    "(default: HOME/miner-<key>-logs)")
    chain.add_argument("--log-quota-mb", type=float, default=4096.0,
                       help="step-log store size past which new chain sessions are refused")
    chain.add_argument("--keep-settled-logs", type=float, default=0.0, metavar="SECONDS",
                       help="keep a session's step logs this long after it settles (for audits; default 0: "
                            "pruned at the next pass)")
    add_keyring_options(chain)
    p.set_defaults(func=miner_start)
    p = nsub.add_parser("info", help="print a miner's /info")
    p.add_argument("url", help="host:port or http://host:port")
    p.set_defaults(func=miner_info)


def miner_settings(args: argparse.Namespace) -> MinerSettings:
    """What ``nesad miner start``'s flags ask for (ConfigError naming a flag that no miner can serve with)."""
    from nesachain.miner.start import MinerSettings, OnChain  # loads the server: only for this command

    parent = None
    if args.exit_with_parent is not None:
        parent = args.exit_with_parent or os.getppid()
        if os.getppid() != parent:  # the script died before this line ran, or a wrong PID
            why = "has already exited" if not Path(f"/proc/{parent}").exists() else \
                f"is not this miner's parent (process {os.getppid()} is)"
            raise ConfigError(f"--exit-with-parent: process {parent} {why}")
    limits = [("--port", args.port, 0 <= args.port <= 65535, "in 0..65535"),
              ("--threads", args.threads, args.threads >= 0, ">= 0"),
              ("--max-length", args.max_length, args.max_length >= 1, ">= 1"),
              ("--max-sessions", args.max_sessions, args.max_sessions >= 1, ">= 1"),
              ("--memory-budget-mb", args.memory_budget_mb, args.memory_budget_mb > 0, "> 0"),
              ("--session-timeout", args.session_timeout, args.session_timeout > 0, "> 0 seconds"),
              ("--max-tensor-mb", args.max_tensor_mb, args.max_tensor_mb > 0, "> 0"),
              ("--max-sessions-per-client", args.max_sessions_per_client, args.max_sessions_per_client >= 1, ">= 1"),
              ("--max-connections-per-peer", args.max_connections_per_peer, args.max_connections_per_peer >= 1,
               ">= 1"),
              ("--log-quota-mb", args.log_quota_mb, args.log_quota_mb > 0, "> 0"),
              ("--keep-settled-logs", args.keep_settled_logs, 0 <= args.keep_settled_logs < float("inf"),
               ">= 0 seconds and finite"),
              ("--idle-connection-timeout", args.idle_connection_timeout, args.idle_connection_timeout > 0,
               "> 0 seconds")]
    for flag, value, ok, rule in limits:
        if not ok or value != value:  # value != value: nan
            raise ConfigError(f"{flag} must be {rule}, got {value}")
    server = {"host": args.host, "port": args.port, "threads": args.threads, "max_length": args.max_length,
              "memory_budget": int(args.memory_budget_mb * 2**20), "max_sessions": args.max_sessions,
              "session_idle_timeout": args.session_timeout, "max_tensor_bytes": int(args.max_tensor_mb * 2**20),
              "max_message_bytes": max(int(args.max_tensor_mb * 2**20) * 2, 8 << 20), "warm_ahead": args.warm_ahead,
              "max_sessions_per_client": args.max_sessions_per_client,
              "max_connections_per_peer": args.max_connections_per_peer,
              "idle_connection_timeout": args.idle_connection_timeout,
              "log_quota_bytes": int(args.log_quota_mb * 2**20), "push_allow": tuple(args.push_allow)}
    chain = None
    if args.owner is not None:
        if args.miner_key is None:
            raise ConfigError("--owner needs --miner-key (the miner's own key, distinct from the owner's)")
        state = Path(args.state_file) if args.state_file else Path(args.home) / f"miner-{args.miner_key}.json"
        chain = OnChain(args.node, keyring_from(args), args.owner, args.miner_key, parse_amount(args.bond), state,
                        args.model_id, args.log_dir, args.keep_settled_logs)
    return MinerSettings(args.model, args.blocks, args.num_blocks, server, chain, parent)


def print_ready(info: dict[str, Any]) -> None:
    """The line a started miner prints (scripts wait for it)."""
    print(f"miner listening url={info['url']} model={info['model_id']} "
          f"blocks={info['blocks'][0]}:{info['blocks'][1]} units={info['units'][0]}:{info['units'][1]} "
          f"tokens_per_s={info['throughput_tokens_per_s']:.1f} "
          f"param_mib={info['param_bytes'] / 2**20:.1f} rss_mib={info['rss_bytes'] / 2**20:.1f}", flush=True)


def miner_start(args: argparse.Namespace) -> int:
    from nesachain.miner.start import start_miner

    try:
        start_miner(miner_settings(args), print_ready)
    except NesaError as exc:
        return _fail(str(exc))
    return 0


def miner_info(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    from nesachain.protocol.endpoints import http_url

    try:
        http_url(args.url)
    except NesaError as exc:
        return _fail(str(exc))
    base = http_url(args.url)
    try:
        with urllib.request.urlopen(f"{base.rstrip('/')}/info", timeout=10) as resp:
            info = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return _fail(f"cannot read {base}/info: {exc}")
    print(json.dumps(info, indent=1, sort_keys=True))
    return 0
