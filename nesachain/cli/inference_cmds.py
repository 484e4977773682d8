"""`nesad tx inference …` and `nesad query inference …` (the request command is in request_cmd.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nesachain.cli import request_cmd
from nesachain.cli.common import add_client_options, add_keyring_options, emit, rpc_from, subcommands
from nesachain.cli.inference_format import format_result
from nesachain.cli.tx_cmds import add_tx_options, broadcast, parse_amount, resolve_address
from nesachain.errors import ConfigError, RPCError
from nesachain.modules.inference.msgs import MsgCloseSession, MsgRegisterModel
from nesachain.modules.inference.types import SESSION_FILTERS
from nesachain.wallet import queries

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    register_tx(subcommands(sub, "tx"))
    register_query(subcommands(sub, "query"))


def register_tx(tsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    inf = tsub.add_parser("inference", help="models and inference sessions")
    isub = inf.add_subparsers(dest="inference_cmd", required=True)
    p = isub.add_parser("register-model", help="register a sharded model (block hashes from its manifest)")
    p.add_argument("owner", help="key that owns the model and pays the deposit")
    p.add_argument("shard_dir", help="folder written by `nesad model shard` (holds manifest.json)")
    p.add_argument("--model-id", help="id on chain (default: the manifest's model_id)")
    p.add_argument("--price", required=True, help="unes per token per block")
    p.add_argument("--deposit", required=True, help="unes locked while the model is registered")
    add_tx_options(p)
    p.set_defaults(func=_register_model)
    p = isub.add_parser("close-session", help="close a session you opened, reporting the tokens generated")
    p.add_argument("client", help="key that opened the session")
    p.add_argument("session_id", type=int)
    p.add_argument("tokens", type=int)
    add_tx_options(p)
    p.set_defaults(func=_close)
    request_cmd.register(isub)


def register_query(qsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    inf = qsub.add_parser("inference", help="models and sessions")
    isub = inf.add_subparsers(dest="inference_cmd", required=True)
    p = isub.add_parser("models", help="registered models")
    add_client_options(p)
    p.set_defaults(func=_models)
    p = isub.add_parser("model", help="one model")
    p.add_argument("model_id")
    add_client_options(p)
    p.set_defaults(func=lambda a: _show(a, "model", queries.model(rpc_from(a), a.model_id)))
    p = isub.add_parser("session", help="one session: route, commitments, challenges, verdicts, payments")
    p.add_argument("session_id", type=int)
    add_client_options(p)
    p.set_defaults(func=_session)
    p = isub.add_parser("sessions", help="sessions, oldest first")
    p.add_argument("--status", choices=SESSION_FILTERS,
                   help="only sessions in this phase (unsettled: any but settled)")
    p.add_argument("--miner", help="only sessions whose route or stand-ins name this miner (address or key name)")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_sessions)
    p = isub.add_parser("params", help="inference params")
    add_client_options(p)
    p.set_defaults(func=lambda a: _show(a, "params", queries.inference_params(rpc_from(a))))
    p = isub.add_parser("verifier-stats", help="what validators' verifiers did with challenges: agreed, disagreed, "
                        "undecided, abstained, missed, rewards, and misses in the verdict window")
    p.add_argument("operator", nargs="?", help="one validator's operator (address or key name); all if left out")
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_verifier_stats)


def _models(args: argparse.Namespace) -> int:
    found = queries.models(rpc_from(args))
    return _show(args, "models", {"models": found, "total": len(found)})


def _session(args: argparse.Namespace) -> int:
    res = queries.session(rpc_from(args), args.session_id)
    if res is None:
        raise RPCError(f"session {args.session_id} not found")
    return _show(args, "session", res)


def _sessions(args: argparse.Namespace) -> int:
    miner = resolve_address(args, args.miner) if args.miner else None
    return _show(args, "sessions", queries.sessions_page(rpc_from(args), args.status, miner, args.limit, args.offset))


def _verifier_stats(args: argparse.Namespace) -> int:
    rpc = rpc_from(args)
    if args.operator:
        found = [queries.verifier_stats(rpc, resolve_address(args, args.operator))]
    else:
        found = queries.verifier_stats_all(rpc)
    return _show(args, "verifier_stats", {"verifier_stats": found, "total": len(found)})


def _show(args: argparse.Namespace, name: str, res: dict[str, Any]) -> int:
    emit(args, res, format_result(name, res))
    return 0


def _register_model(args: argparse.Namespace) -> int:
    path = Path(args.shard_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        hashes = [b["sha256"] for b in sorted(manifest["blocks"], key=lambda b: b["index"])]
        model_id = args.model_id or manifest["model_id"]
        arch = manifest.get("architecture") or "unknown"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read a shard manifest at {path}: {exc}") from None
    owner = resolve_address(args, args.owner)
    msg = MsgRegisterModel(owner, model_id, arch, len(hashes), hashes, parse_price(args.price),
                           parse_amount(args.deposit))
    return broadcast(args, args.owner, [msg])


def parse_price(text: str) -> int:
    digits = text.removesuffix("unes")
    if not digits.isdigit():
        raise ConfigError(f"price {text!r} must be a whole number of unes")
    return int(digits)


def _close(args: argparse.Namespace) -> int:
    client = resolve_address(args, args.client)
    return broadcast(args, args.client, [MsgCloseSession(client, args.session_id, args.tokens)])
