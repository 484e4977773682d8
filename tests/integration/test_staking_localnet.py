"""Staking on a real CometBFT localnet: a 5th validator joins by create-validator, signs, leaves
by undelegating its self-bond and gets its tokens back after the unbonding period. The supply
invariant is checked at every block while it runs.

Shared helpers for the other test_staking_* files live here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from nesachain.errors import RPCError
from nesachain.localnet.net import REPO, VALIDATOR_SELF_BOND, Localnet
from nesachain.types.address import address_from_pubkey
from nesachain.wallet import queries
from tests.integration.conftest import start_localnet

pytestmark = [pytest.mark.localnet, pytest.mark.slow]

T = TypeVar("T")
UNBONDING_BLOCKS = 6  # genesis/localnet.json


def nesad(net: Localnet, *args: str, node: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NESAD_HOME": str(net.root / "wallet"), "NESAD_KEYRING_BACKEND": "test",
           "NESAD_NODE": f"http://127.0.0.1:{net.ports(node).rpc}"}
    return subprocess.run([sys.executable, "-m", "nesachain.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def nesad_tx(net: Localnet, *args: str, node: int = 0) -> dict[str, Any]:
    res = nesad(net, "tx", *args, "-o", "json", node=node)
    assert res.returncode == 0, f"nesad tx {' '.join(args)}: {res.stdout}{res.stderr}"
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def wait_until(what: str, fn: Callable[[], T | None], timeout: float, poll: float = 0.3) -> T:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except RPCError as exc:
            last_exc = exc
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_exc})")


def fund(net: Localnet, name: str, amount: int = 10**11) -> str:
    ring = net.keyring()
    address = ring.add(name).address
    nesad_tx(net, "bank", "send", "faucet", address, f"{amount}unes")
    return address


def cons_address(home: Path) -> str:
    pv = json.loads((home / "config" / "priv_validator_key.json").read_text())
    return str(pv["address"]).upper()


def cometbft_powers(net: Localnet, height: int, node: int = 0) -> dict[str, int]:
    return {v["address"]: int(v["voting_power"]) for v in net.rpc(node).validators(height)}


def signers(net: Localnet, height: int, node: int = 0) -> set[str]:
    """Validators whose precommit for ``height`` is in block ``height + 1``'s last commit."""
    block = net.rpc(node).call("block", height=str(height + 1))["block"]
    return {s["validator_address"] for s in block["last_commit"]["signatures"] if s.get("signature")}


class InvariantWatcher:
    """Polls one node and checks balances + bonded + unbonding + miner bonds + fee pool == supply
    at every height it sees (one abci_query reads one committed state)."""

    def __init__(self, net: Localnet, node: int = 0) -> None:
        self.rpc = net.rpc(node, timeout=5)
        self.seen: dict[int, dict[str, Any]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                res = self.rpc.abci_query("staking/pool")
                if res.height not in self.seen:
                    pool = json.loads(res.value)
                    self.seen[res.height] = pool
                    if not pool["invariant_holds"]:
                        self.errors.append(f"height {res.height}: {pool}")
            except (RPCError, ValueError) as exc:
                if "cannot reach" not in str(exc):  # a node being restarted is not a failure
                    self.errors.append(f"query failed: {exc}")
            self._stop.wait(0.1)

    def __enter__(self) -> InvariantWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def assert_held(self, min_blocks: int) -> None:
        assert not self.errors, self.errors[:5]
        heights = sorted(self.seen)
        assert len(heights) >= min_blocks, f"watched only {len(heights)} heights"
        span = heights[-1] - heights[0] + 1
        print(f"supply invariant held at {len(heights)} of {span} heights {heights[0]}..{heights[-1]}")


@pytest.fixture
def net4(tmp_path: Path) -> Iterator[Localnet]:
    net = start_localnet(tmp_path / "net", n=4)
    try:
        yield net
    finally:
        net.down()


def test_staking_fifth_validator_joins_signs_leaves_and_gets_tokens_back(net4: Localnet) -> None:
    net = net4
    with InvariantWatcher(net) as watch:
        i = net.add_node()
        net.start(i)
        rpc = net.rpc(0)
        wait_until("node4 to sync", lambda: net.rpc(i).height() >= rpc.height() - 1, timeout=90)
        operator = fund(net, "operator4")
        key_file = str(net.home(i) / "config" / "priv_validator_key.json")
        bond = 20_000_000
        out = nesad_tx(net, "staking", "create-validator", "operator4", "--amount", f"{bond}unes",
                       "--moniker", "node4", "--priv-validator-key", key_file)
        assert out["code"] == 0, out
        h = out["height"]
        cons = cons_address(net.home(i))
        rpc.wait_height(h + 3, timeout=60)
        assert cons not in cometbft_powers(net, h + 1)
        assert cometbft_powers(net, h + 2)[cons] == bond // 1_000_000  # two heights later, power 20
        # it signs: its precommits appear in the following blocks' last commits
        wait_until("node4's signature in a commit", lambda: any(cons in signers(net, x) for x in
                                                                range(h + 2, rpc.height())), timeout=60)
        v = queries.validator(rpc, operator)
        assert v["status"] == "bonded" and v["power"] == 20 and v["moniker"] == "node4"
        text = nesad(net, "query", "staking", "validators")
        assert text.returncode == 0 and "node4" in text.stdout and "bonded" in text.stdout
        shown = json.loads(nesad(net, "query", "staking", "validator", "operator4", "-o", "json").stdout)
        assert shown["cons_address"] == cons and shown["last_power"] == 20
        dels = nesad(net, "query", "staking", "delegations", "operator4")
        assert dels.returncode == 0 and f"{bond}unes" in dels.stdout, dels.stdout
        params = nesad(net, "query", "staking", "params")
        assert params.returncode == 0 and f"unbonding_blocks: {UNBONDING_BLOCKS}" in params.stdout

        before = queries.balance(rpc, operator)["amount"]
        out = nesad_tx(net, "staking", "undelegate", "operator4", operator, f"{bond}unes")
        assert out["code"] == 0, out
        u = out["height"]
        rpc.wait_height(u + 3, timeout=60)
        assert cons not in cometbft_powers(net, u + 2)  # left the set
        fee = 1000
        assert queries.balance(rpc, operator)["amount"] == before - fee
        rpc.wait_height(u + UNBONDING_BLOCKS + 1, timeout=60)
        assert queries.balance(rpc, operator)["amount"] == before - fee + bond
        assert queries.unbonding(rpc, operator) == []
        # the chain went on without it
        rpc.wait_height(rpc.height() + 2, timeout=30)
    watch.assert_held(min_blocks=10)


def test_staking_genesis_set_matches_initchain(net4: Localnet) -> None:
    net = net4
    genesis = json.loads((net.home(0) / "config" / "genesis.json").read_text())
    want = {v["address"]: int(v["power"]) for v in genesis["validators"]}
    assert want == {cons_address(net.home(i)): VALIDATOR_SELF_BOND // 1_000_000 for i in range(4)}
    assert cometbft_powers(net, 1) == want
    vals = queries.validators(net.rpc(0))
    import base64

    assert {address_from_pubkey(base64.b64decode(v["pubkey"])).hex().upper(): v["last_power"] for v in vals} == want
