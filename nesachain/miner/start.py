"""A miner's process (``nesad miner start``): its shard server and, on chain, its registrar beside it.

The CLI only turns flags into a ``MinerSettings``; everything a miner does from there is here:

    start_miner(settings, on_ready)    read the shard folder, pick the blocks (given, or chosen on chain),
                                        serve until SIGINT/SIGTERM, its parent's exit, or the chain is done
                                        with it (unbonded, and every session it served settled)

``server_class`` and ``result_agent`` let tests run a misbehaving miner (``tests/support/faulty_miner.py``);
no production entry point passes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nesachain.errors import NesaError
from nesachain.miner.registrar import ChainRegistrar
from nesachain.miner.results import ResultAgent
from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.main import serve_forever
from nesachain.shard_exec.server.server import MinerServer
from nesachain.shard_exec.shard_files import parse_range, read_manifest
from nesachain.wallet.keyring import Keyring

__all__ = ["MinerSettings", "OnChain", "start_miner"]


@dataclass(frozen=True)
class OnChain:
    """What a miner needs to live on chain: a node, its owner's account (bonds, signs) and its own key."""

    node: str
    keyring: Keyring
    owner: str
    miner_key: str
    bond: int
    state_file: Path  # where result salts are kept across restarts
    model_id: str | None = None  # None: the shard manifest's
    log_dir: Path | None = None  # the step-log store (None: beside the state file, <state file stem>-logs)
    keep_settled_logs_s: float = 0.0  # how long a settled session's step log stays before it is pruned


@dataclass(frozen=True)
class MinerSettings:
    """A miner's start: its shard folder, where it serves (``blocks`` "a:b", or ``num_blocks`` chosen on
    chain), its server's settings (``MinerConfig``'s fields but the blocks) and, optionally, its chain side."""

    shard_dir: Path
    blocks: str | None = None
    num_blocks: int | None = None
    server: dict[str, Any] = field(default_factory=dict)
    chain: OnChain | None = None
    parent: int | None = None  # stop when this process is no longer the miner's parent


def start_miner(settings: MinerSettings, on_ready: Callable[[dict[str, Any]], None], *,
                server_class: type[MinerServer] = MinerServer,
                result_agent: type[ResultAgent] = ResultAgent) -> None:
    """Serve until stopped; ``on_ready(info)`` once the miner listens (and, on chain, is registered).
    NesaError for a start that cannot go ahead (a bad shard folder or range, a refused registration)."""
    manifest = read_manifest(settings.shard_dir)
    registrar = _registrar(settings, manifest, result_agent)
    if settings.blocks is not None:
        start, end = parse_range(settings.blocks, manifest["n_blocks"])
    elif registrar is None:
        raise NesaError("--num-blocks lets the chain choose the blocks: it needs --owner and --miner-key")
    else:
        start, end = registrar.initial_blocks(manifest["n_blocks"])
    server = dict(settings.server)
    if settings.chain is not None:
        chain = settings.chain
        server["log_dir"] = chain.log_dir or chain.state_file.with_name(f"{chain.state_file.stem}-logs")
    cfg = MinerConfig(shard_dir=settings.shard_dir, start=start, end=end, **server)
    asyncio.run(serve_forever(cfg, on_ready, registrar=registrar, parent=settings.parent, server_class=server_class))


def _registrar(settings: MinerSettings, manifest: dict[str, Any],
               result_agent: type[ResultAgent]) -> ChainRegistrar | None:
    """The chain side of a miner (registration, heartbeats, result commitments), or None off chain."""
    chain = settings.chain
    if chain is None:
        return None
    memory_mb = int(settings.server.get("memory_budget", MinerConfig.memory_budget) // 2**20)
    return ChainRegistrar(chain.node, chain.keyring, chain.owner, chain.miner_key,
                          chain.model_id or manifest["model_id"], chain.bond, memory_mb, chain.state_file,
                          num_blocks=settings.num_blocks, result_agent=result_agent,
                          keep_settled_logs_s=chain.keep_settled_logs_s)
