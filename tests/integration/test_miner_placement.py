"""`nesad miner start --num-blocks N` on a real localnet: the miner starts on the blocks nobody serves,
and when another miner duplicates them its chain agent moves it (MsgUpdateMiner) and the running
server loads the uncovered blocks; a generation over the three miners then gives local greedy tokens.
Restarted, it comes back on the blocks it is registered for; an impossible N is a one-line error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from nesachain.client import load_tokenizer
from nesachain.localnet.net import REPO, Localnet
from nesachain.localnet.swarm import ensure_shards, start_miner, wait_active_miners
from nesachain.shard_exec.reference import local_generate
from nesachain.wallet import queries
from tests.integration.conftest import free_base_port, generate_in_session
from tests.integration.test_staking_localnet import wait_until

pytestmark = [pytest.mark.localnet, pytest.mark.slow]

MODEL = "smollm2-135m"


def info(addr: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{addr}/info", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def served_blocks(addr: str) -> list[int] | None:
    """The blocks a miner's /info reports, or None while it does not answer (starting)."""
    try:
        return list(info(addr)["blocks"])
    except OSError:  # urllib's URLError included
        return None


def chain_blocks(net: Localnet, name: str) -> tuple[int, int]:
    row = queries.miner(net.rpc(0), net.keyring().show(name).address)
    return int(row["block_start"]), int(row["block_end"])


def test_miner_with_num_blocks_fills_the_gap_then_moves_when_duplicated(tmp_path: Path) -> None:
    shards = ensure_shards(MODEL, 30, REPO / ".cache" / "shards" / MODEL)
    net = Localnet(tmp_path / "net", base_port=free_base_port(6), chain_id="nesa-place-1")
    net.init(shards={MODEL: shards})
    try:
        net.up(wait_height=2)
        net.guard()
        start_miner(net, 0, shards, (0, 10))
        wait_active_miners(net, MODEL, 1)
        addr2 = start_miner(net, 2, shards, 10)  # --num-blocks 10: the agent chooses
        wait_active_miners(net, MODEL, 2)
        first = chain_blocks(net, "miner2")
        assert first in ((10, 20), (20, 30)), first
        assert info(addr2)["blocks"] == list(first)
        other = (20, 30) if first == (10, 20) else (10, 20)

        addr1 = start_miner(net, 1, shards, first)  # duplicates miner2; `other` is left uncovered
        wait_active_miners(net, MODEL, 3)
        wait_until(f"miner2 to move to {other} on chain and in its server",
                   lambda: chain_blocks(net, "miner2") == other and served_blocks(addr2) == list(other),
                   timeout=120, poll=1.0)
        assert info(addr1)["blocks"] == list(first)

        tok = load_tokenizer(shards)
        ids = tok("The capital of France is", add_special_tokens=False, return_tensors="pt").input_ids
        from nesachain.models import load_smollm2

        model, _ = load_smollm2()
        expected, _, _ = local_generate(model, ids, 8)
        assert generate_in_session(net, shards, MODEL, ids, 8) == expected  # through miner0, miner1 and miner2

        net.kill("miner2", signal.SIGTERM)
        logged = (net.root / "miner2.log").stat().st_size  # the log is appended to
        start_miner(net, 2, shards, 10)

        def restarted() -> str:
            with open(net.root / "miner2.log", "rb") as log:
                log.seek(logged)
                return log.read().decode(errors="replace")

        # it prints "miner listening" once the chain has it again (a heartbeat), just after /info answers
        wait_until("miner2 to serve again", lambda: served_blocks(addr2) == list(other)
                   and "miner listening" in restarted(), timeout=120, poll=1.0)
        assert chain_blocks(net, "miner2") == other
        assert "miner_blocks_moved" not in restarted()

        bad = subprocess.run([sys.executable, "-m", "nesachain.cli.main", "miner", "start", "--model", str(shards),
                              "--num-blocks", "40", "--owner", "operator2", "--miner-key", "miner2",
                              "--node", f"http://127.0.0.1:{net.ports(0).rpc}", "--home", str(net.root / "wallet"),
                              "--keyring-backend", "test"], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
            "error: --num-blocks must be in 1..30, got 40"), bad.stderr

        net.keyring().add("miner9")  # a bond below min_miner_bond: the chain refuses, and the miner stops
        poor = subprocess.run([sys.executable, "-m", "nesachain.cli.main", "miner", "start", "--model", str(shards),
                               "--blocks", "0:1", "--port", "0", "--bond", "1unes", "--owner", "operator3",
                               "--miner-key", "miner9", "--node", f"http://127.0.0.1:{net.ports(0).rpc}",
                               "--home", str(net.root / "wallet"), "--keyring-backend", "test"],
                              capture_output=True, text=True, cwd=REPO, timeout=180)
        last = poor.stderr.strip().splitlines()[-1]
        assert poor.returncode == 1 and last.startswith("error: ") and "bond" in last, poor.stderr[-2000:]
        assert "miner listening" not in poor.stdout
    finally:
        net.down()
