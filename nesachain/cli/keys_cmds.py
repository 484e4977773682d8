"""`nesad keys add|list|show|export|import|delete`."""

from __future__ import annotations

import argparse
import sys

from nesachain.cli.common import add_keyring_options, add_output_option, emit, keyring_from
from nesachain.errors import KeyringError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="manage the wallet's keys")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)

    def leaf(name: str, help_: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = ksub.add_parser(name, help=help_)
        add_keyring_options(p)
        add_output_option(p)
        return p

    p = leaf("add", "create a new key")
    p.add_argument("name")
    p.set_defaults(func=_add)
    p = leaf("list", "list keys")
    p.set_defaults(func=_list)
    p = leaf("show", "show a key's address")
    p.add_argument("name")
    p.add_argument("--address", "-a", action="store_true", help="print only the address")
    p.set_defaults(func=_show)
    p = leaf("export", "print a key's private key (hex): keep it secret")
    p.add_argument("name")
    p.set_defaults(func=_export)
    p = leaf("import", "import a private key (hex) under a name")
    p.add_argument("name")
    p.add_argument("private_key", nargs="?", help="hex seed (default: read from stdin)")
    p.set_defaults(func=_import)
    p = leaf("delete", "delete a key")
    p.add_argument("name")
    p.set_defaults(func=_delete)


def _add(args: argparse.Namespace) -> int:
    info = keyring_from(args, confirm=True).add(args.name)
    emit(args, info.to_dict(), f"created key {info.name}\naddress: {info.address}")
    return 0


def _list(args: argparse.Namespace) -> int:
    infos = keyring_from(args).list()
    emit(args, [i.to_dict() for i in infos], "\n".join(f"{i.name}\t{i.address}" for i in infos) or "(no keys)")
    return 0


def _show(args: argparse.Namespace) -> int:
    info = keyring_from(args).show(args.name)
    emit(args, info.to_dict(), info.address if args.address else f"{info.name}\t{info.address}\t{info.pubkey.hex()}")
    return 0


def _export(args: argparse.Namespace) -> int:
    seed = keyring_from(args).export(args.name)
    print("warning: this is the private key; anyone holding it controls the account", file=sys.stderr)
    emit(args, {"name": args.name, "private_key": seed.hex()}, seed.hex())
    return 0


def _import(args: argparse.Namespace) -> int:
    text = args.private_key if args.private_key is not None else sys.stdin.readline()
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError:
        raise KeyringError("private key must be 64 hex characters") from None
    info = keyring_from(args, confirm=True).add(args.name, seed)
    emit(args, info.to_dict(), f"imported key {info.name}\naddress: {info.address}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    keyring_from(args).delete(args.name)
    emit(args, {"deleted": args.name}, f"deleted key {args.name}")
    return 0
