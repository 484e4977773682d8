"""Miners and verifiers beside a localnet's validators (what `make localnet` and the end-to-end
tests run): each miner serves a block range of a sharded model and lives on chain (bond,
heartbeats, result commitments); each validator runs a verifier over its own copy of the shards."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nesachain.client.request import probe_miner
from nesachain.errors import ConfigError, RPCError
from nesachain.localnet.net import Localnet
from nesachain.wallet import queries

__all__ = ["ensure_shards", "miner_port", "shards_ready", "start_miner", "start_verifier", "wait_active_miners"]


def miner_port(net: Localnet, i: int) -> int:
    return net.base_port + 10 * net.n + 100 + i


NESAD = ("-m", "nesachain.cli.main")


def _cli(net: Localnet, *args: str, program: Sequence[str] = NESAD) -> list[str]:
    return [sys.executable, *program, *args, "--home", str(net.root / "wallet"), "--keyring-backend", "test"]


def start_miner(net: Localnet, i: int, shard_dir: Path, blocks: tuple[int, int] | int, *, owner: str | None = None,
                model_id: str | None = None, extra: tuple[str, ...] = (), program: Sequence[str] = NESAD) -> str:
    """Start miner i (key ``miner<i>``, owned by ``operator<i>`` unless given) on ``blocks`` (start, end), or
    on as many blocks as an int says, chosen and rebalanced by its chain agent; returns host:port. ``program``
    is what Python runs with ``miner start …`` (tests run a misbehaving miner through it)."""
    ring = net.keyring()
    if not any(k.name == f"miner{i}" for k in ring.list()):
        ring.add(f"miner{i}")
    port = miner_port(net, i)
    where = ("--num-blocks", str(blocks)) if isinstance(blocks, int) else ("--blocks", f"{blocks[0]}:{blocks[1]}")
    cmd = [*_cli(net, "miner", "start", "--model", str(shard_dir), *where,
                 "--port", str(port), "--threads", "1", "--memory-budget-mb", "256",
                 "--owner", owner or f"operator{i % net.n}", "--miner-key", f"miner{i}",
                 "--node", f"http://127.0.0.1:{net.ports(i % net.n).rpc}", program=program), *extra]
    if model_id:
        cmd += ["--model-id", model_id]
    net.spawn(f"miner{i}", cmd, net.root / f"miner{i}.log")
    return f"127.0.0.1:{port}"


def start_verifier(net: Localnet, i: int, shards: dict[str, Path], program: Sequence[str] = NESAD) -> None:
    """Validator i's verifier, signing with ``operator<i>``."""
    cmd = _cli(net, "verifier", "start", f"operator{i}", "--node", f"http://127.0.0.1:{net.ports(i).rpc}",
               "--poll", "0.5", *[a for m, d in shards.items() for a in ("--shards", f"{m}={d}")], program=program)
    net.spawn(f"verifier{i}", cmd, net.root / f"verifier{i}.log")


def wait_active_miners(net: Localnet, model_id: str, n: int, timeout: float = 180.0) -> list[dict[str, object]]:
    """Wait until ``n`` miners of ``model_id`` are active on chain and answer at their endpoints (a
    restarted localnet's chain lists the miners of its last run as active while they still load)."""
    deadline = time.monotonic() + timeout
    rpc = net.rpc(0)
    while time.monotonic() < deadline:
        for name in [k for k in net.pids() if k.startswith("miner")]:
            if not net.recorded_alive(name):
                log = (net.root / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
                raise ConfigError(f"{name} exited: {' | '.join(log)}")
        try:
            miners = queries.miners(rpc, model_id, "active")
        except RPCError:
            miners = []
        miners = [m for m in miners if probe_miner(str(m["endpoint"])) is not None]
        if len(miners) >= n:
            return miners
        time.sleep(1.0)
    raise ConfigError(f"fewer than {n} active, answering miners for {model_id} after {timeout:.0f}s")


def shards_ready(out: Path, blocks: int) -> bool:
    """Whether ``out`` already holds a shard folder of ``blocks`` blocks, in the format this nesachain writes."""
    import json

    from nesachain.shard_exec.shard_files import FORMAT

    manifest = out / "manifest.json"
    if not manifest.exists():
        return False
    m = json.loads(manifest.read_text())
    return bool(m.get("n_blocks") == blocks and m.get("format") == FORMAT)


def ensure_shards(model: str, blocks: int, out: Path) -> Path:
    """Shard ``model`` into ``blocks`` blocks under ``out`` unless a matching manifest is there."""
    if shards_ready(out, blocks):
        return out
    from nesachain.shard_exec.shard_files import write_shards
    from nesachain.shard_exec.sources import load_source

    write_shards(load_source(model, None), out, blocks, replace=True)
    return out
