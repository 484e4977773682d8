"""`nesad start`: run the ABCI application that a CometBFT node connects to."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
from pathlib import Path
from urllib.parse import urlparse

import structlog

from nesachain.errors import ConfigError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("start", help="run the nesachain ABCI application for one CometBFT node")
    p.add_argument("--home", required=True, help="the app's data folder (state database, logs)")
    p.add_argument("--abci", default="tcp://127.0.0.1:26658",
                   help="address to listen on; CometBFT's proxy_app points here")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=_start)


def parse_listen(addr: str) -> tuple[str, int]:
    u = urlparse(addr if "://" in addr else "tcp://" + addr)
    try:
        port = u.port  # raises ValueError past 65535
    except ValueError:
        port = None
    if u.scheme != "tcp" or not u.hostname or port is None:
        raise ConfigError(f"--abci must look like tcp://127.0.0.1:26658 (a port in 0..65535), got {addr!r}")
    return u.hostname, port


def _start(args: argparse.Namespace) -> int:
    from nesachain.abci.app import NesaApp
    from nesachain.abci.chain import Chain
    from nesachain.abci.server import ABCIServer
    from nesachain.logging import configure
    from nesachain.store.commit import CommitStore

    host, port = parse_listen(args.abci)
    configure(args.log_level)
    home = Path(args.home)
    try:
        store = CommitStore(home / "state.db")
    except (OSError, sqlite3.Error) as exc:  # an unwritable --home, a state.db that is not a database
        raise ConfigError(f"cannot open the app's state in {home}: {exc}") from None
    chain = Chain(store)
    log = structlog.get_logger("nesachain.start")
    log.info("app_start", home=str(home), height=chain.height, app_hash=chain.app_hash.hex(), chain_id=chain.chain_id)
    server = ABCIServer(NesaApp(chain), host, port)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        await stop.wait()
        await server.close()

    try:
        asyncio.run(run())
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.abci}: {exc.strerror or exc}") from None
    finally:
        store.close()
        log.info("app_stop", height=chain.height)
    return 0
