"""Miners on a real localnet: three register for a model's blocks (nesad tx miner register), two
keep heartbeating through run_chain_agent, the third is rebalanced by its agent from a duplicated
range to the uncovered one and then stops: it turns inactive after the heartbeat timeout. An
unbonded miner's bond comes back after the unbonding period. Supply invariant at every block."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nesachain.localnet.net import Localnet
from nesachain.miner.chain_agent import ChainAgent, MinerSpec, run_chain_agent
from nesachain.wallet import queries
from tests.integration.conftest import start_localnet
from tests.integration.test_staking_localnet import InvariantWatcher, fund, nesad, nesad_tx, wait_until

pytestmark = [pytest.mark.localnet, pytest.mark.slow]

MODEL = "smollm2-135m"
HEARTBEAT_TIMEOUT = 8  # genesis/localnet.json
MINER_UNBONDING = 6
BOND = 2_000_000


@pytest.fixture
def net4(tmp_path: Path) -> Iterator[Localnet]:
    net = start_localnet(tmp_path / "net", n=4)
    try:
        yield net
    finally:
        net.down()


class AgentsThread:
    """run_chain_agent for some miners, on an event loop in a background thread."""

    def __init__(self, net: Localnet, miners: list[tuple[str, str, MinerSpec]]) -> None:
        self.net = net
        self.miners = miners
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            url = f"http://127.0.0.1:{self.net.ports(0).rpc}"
            ring = self.net.keyring()
            results = await asyncio.gather(*(run_chain_agent(url, ring, owner, miner, spec, stop=self.stop,
                                                             poll_s=0.3) for owner, miner, spec in self.miners),
                                           return_exceptions=True)
            self.errors += [r for r in results if isinstance(r, BaseException)]

        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(main())

    def __enter__(self) -> AgentsThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=60)


def miner_row(net: Localnet, address: str) -> dict[str, Any]:
    out: dict[str, Any] = queries.miner(net.rpc(0), address)
    return out


def test_staking_miners_register_heartbeat_rebalance_and_time_out(net4: Localnet) -> None:
    net = net4
    rpc = net.rpc(0)
    ring = net.keyring()
    with InvariantWatcher(net) as watch:
        owners = [fund(net, f"owner{i}") for i in range(3)]
        miners = [ring.add(f"miner{i}").address for i in range(3)]
        for i, blocks in enumerate(["0:10", "10:20", "0:10"]):  # miner2 duplicates miner0's range
            out = nesad_tx(net, "miner", "register", f"owner{i}", "--miner-key", f"miner{i}",
                           "--endpoint", f"127.0.0.1:{7100 + i}", "--bond", f"{BOND}unes", "--model", MODEL,
                           "--blocks", blocks, "--memory-mb", "4096", "--throughput", "1000")
            assert out["code"] == 0, out
        listing = nesad(net, "query", "miner", "list", "--model", MODEL)
        assert listing.returncode == 0 and listing.stdout.count("active") == 3, listing.stdout
        assert [miner_row(net, m)["owner"] for m in miners] == owners

        spec = {"model_id": MODEL, "bond": BOND, "memory_mb": 4096, "throughput": 1000}
        keep = [(f"owner{i}", f"miner{i}", MinerSpec(endpoint=f"127.0.0.1:{7100 + i}", blocks=b, **spec))  # type: ignore[arg-type]
                for i, b in ((0, (0, 10)), (1, (10, 20)))]
        with AgentsThread(net, keep) as agents:
            # miner2's agent (not pinned) sees blocks 20..29 uncovered and moves there
            agent2 = ChainAgent.from_keyring(f"http://127.0.0.1:{net.ports(0).rpc}", ring, "owner2", "miner2",
                                             MinerSpec(endpoint="127.0.0.1:7102", num_blocks=10, **spec))  # type: ignore[arg-type]
            assert agent2.maybe_rebalance() == (20, 30)
            row = miner_row(net, miners[2])
            assert (row["block_start"], row["block_end"]) == (20, 30)
            assert agent2.maybe_rebalance() is None
            # one heartbeat and one endpoint change by hand, then it stops heartbeating
            beat = nesad_tx(net, "miner", "heartbeat", "owner2", "miner2")
            assert beat["code"] == 0 and miner_row(net, miners[2])["last_heartbeat"] == beat["height"]
            upd = nesad_tx(net, "miner", "update", "owner2", "miner2", "--endpoint", "127.0.0.1:7202")
            assert upd["code"] == 0
            row = miner_row(net, miners[2])
            assert (row["endpoint"], row["block_start"], row["block_end"]) == ("127.0.0.1:7202", 20, 30)
            last = row["last_heartbeat"]
            assert last == upd["height"]  # an update counts as a heartbeat
            inactive = wait_until("miner2 to turn inactive",
                                  lambda: (lambda r: r if r["status"] == "inactive" else None)(
                                      miner_row(net, miners[2])), timeout=90)
            assert inactive["last_heartbeat"] == last
            assert rpc.height() >= last + HEARTBEAT_TIMEOUT + 1
            found = rpc.call("block_search", query=f"miner_inactive.miner='{miners[2]}'")
            assert int(found["total_count"]) == 1
            h = int(found["blocks"][0]["block"]["header"]["height"])
            assert h == last + HEARTBEAT_TIMEOUT + 1
            # the agents kept the other two active all along
            assert [miner_row(net, m)["status"] for m in miners[:2]] == ["active", "active"]
        assert not agents.errors, agents.errors

        listing = nesad(net, "query", "miner", "list", "--status", "inactive")
        assert listing.returncode == 0 and miners[2] in listing.stdout
        shown = nesad(net, "query", "miner", "show", "miner0")
        assert shown.returncode == 0 and "reputation_decimal: 1.000000" in shown.stdout

        before = queries.balance(rpc, owners[0])["amount"]
        out = nesad_tx(net, "miner", "unbond", "owner0", "miner0")
        assert out["code"] == 0
        assert miner_row(net, miners[0])["status"] == "unbonding"
        rpc.wait_height(out["height"] + MINER_UNBONDING + 1, timeout=60)
        assert queries.balance(rpc, owners[0])["amount"] == before - 1000 + BOND
    watch.assert_held(min_blocks=15)
