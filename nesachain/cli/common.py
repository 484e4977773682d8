"""Options every `nesad` command shares, and how commands print results and errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from nesachain.errors import ConfigError
from nesachain.wallet.keyring import Keyring
from nesachain.wallet.rpc import CometRPC

__all__ = ["add_client_options", "add_keyring_options", "emit", "keyring_from", "rpc_from", "subcommands"]


def default_home() -> str:
    return os.environ.get("NESAD_HOME", str(Path.home() / ".nesad"))


def add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", default=os.environ.get("NESAD_NODE", "http://127.0.0.1:26657"),
                   help="CometBFT RPC address (env NESAD_NODE)")
    p.add_argument("--chain-id", default=os.environ.get("NESAD_CHAIN_ID"),
                   help="chain id to sign for (default: asked from the node)")
    add_output_option(p)


def add_output_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", choices=("text", "json"), default="text", help="output format")


def add_keyring_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", default=default_home(), help="wallet home folder (env NESAD_HOME)")
    p.add_argument("--keyring-backend", choices=("file", "test"),
                   default=os.environ.get("NESAD_KEYRING_BACKEND", "file"),
                   help="file: encrypted with a passphrase; test: PLAINTEXT, for localnets only")


def keyring_from(args: argparse.Namespace, *, confirm: bool = False) -> Keyring:
    passphrase = os.environ.get("NESAD_KEYRING_PASSPHRASE")
    if args.keyring_backend == "file" and passphrase is None:
        if not sys.stdin.isatty():
            raise ConfigError("the file keyring needs NESAD_KEYRING_PASSPHRASE when not run in a terminal")
        import getpass

        passphrase = getpass.getpass("keyring passphrase: ")
        if confirm and getpass.getpass("repeat passphrase: ") != passphrase:
            raise ConfigError("passphrases differ")
    return Keyring(args.home, args.keyring_backend, passphrase)


def rpc_from(args: argparse.Namespace) -> CometRPC:
    return CometRPC(args.node)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print a result as JSON (``--output json``) or as the given human text."""
    if getattr(args, "output", "text") == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


def subcommands(sub: argparse._SubParsersAction, name: str) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """The subcommand set of the existing top-level command ``name`` (so modules can add to `tx`, `query`)."""
    parser = sub.choices.get(name)
    if parser is None:
        raise RuntimeError(f"register after the `{name}` command exists")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError(f"`{name}` has no subcommands")
