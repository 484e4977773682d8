"""`nesad query …` and `nesad status`: read the chain through CometBFT's RPC."""

from __future__ import annotations

import argparse
import base64
from typing import Any

from nesachain.cli.common import add_client_options, add_keyring_options, emit, rpc_from
from nesachain.cli.tx_cmds import resolve_address
from nesachain.errors import RPCError
from nesachain.wallet import queries

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    q = sub.add_parser("query", aliases=["q"], help="query chain state")
    qsub = q.add_subparsers(dest="query_module", required=True)

    bank = qsub.add_parser("bank", help="balances and supply")
    bsub = bank.add_subparsers(dest="bank_cmd", required=True)
    p = bsub.add_parser("balance", help="an address's balance")
    p.add_argument("address", help="address or key name")
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_balance)
    p = bsub.add_parser("supply", help="total supply and the fee pool")
    add_client_options(p)
    p.set_defaults(func=_supply)

    auth = qsub.add_parser("auth", help="accounts")
    asub = auth.add_subparsers(dest="auth_cmd", required=True)
    p = asub.add_parser("account", help="an account's next sequence")
    p.add_argument("address", help="address or key name")
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_account)

    p = qsub.add_parser("tx", help="a committed tx by hash")
    p.add_argument("hash")
    add_client_options(p)
    p.set_defaults(func=_tx)

    p = sub.add_parser("status", help="the node's height, app hash and chain id")
    add_client_options(p)
    p.set_defaults(func=_status)


def _balance(args: argparse.Namespace) -> int:
    addr = resolve_address(args, args.address)
    res = queries.balance(rpc_from(args), addr)
    emit(args, res, f"{res['amount']}{res['denom']}")
    return 0


def _supply(args: argparse.Namespace) -> int:
    res = queries.supply(rpc_from(args))
    emit(args, res, f"supply: {res['supply']}{res['denom']}\nfee pool: {res['fee_pool']}{res['denom']}")
    return 0


def _account(args: argparse.Namespace) -> int:
    addr = resolve_address(args, args.address)
    res = queries.account(rpc_from(args), addr)
    emit(args, res, f"{res['address']}\tsequence {res['sequence']}")
    return 0


def _tx(args: argparse.Namespace) -> int:
    res = rpc_from(args).tx(args.hash)
    if res is None:
        raise RPCError(f"tx {args.hash} not found (not committed, or the node does not index txs)")
    r = res["tx_result"]
    events: list[dict[str, Any]] = r.get("events", [])
    data = {
        "hash": res["hash"], "height": int(res["height"]), "code": int(r.get("code", 0)),
        "codespace": r.get("codespace", ""), "log": r.get("log", ""), "events": events,
        "tx": base64.b64decode(res["tx"]).hex(),
    }
    lines = [f"hash: {data['hash']}", f"height: {data['height']}", f"code: {data['code']} {data['codespace']}"]
    if data["log"]:
        lines.append(f"log: {data['log']}")
    for ev in events:
        attrs = ", ".join(f"{a['key']}={a['value']}" for a in ev.get("attributes", []))
        lines.append(f"event {ev['type']}: {attrs}")
    emit(args, data, "\n".join(lines))
    return 0


def _status(args: argparse.Namespace) -> int:
    st = rpc_from(args).status()
    sync = st["sync_info"]
    data = {
        "chain_id": st["node_info"]["network"],
        "moniker": st["node_info"]["moniker"],
        "height": int(sync["latest_block_height"]),
        "app_hash": sync["latest_app_hash"],
        "catching_up": sync["catching_up"],
        "validator_address": st["validator_info"]["address"],
        "voting_power": int(st["validator_info"]["voting_power"]),
    }
    emit(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))
    return 0
