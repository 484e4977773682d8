"""The chain foundation on a real 4-validator CometBFT localnet."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nesachain.localnet.net import REPO, Localnet
from nesachain.wallet import queries

pytestmark = pytest.mark.localnet


def nesad(net: Localnet, *args: str, node: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NESAD_HOME": str(net.root / "wallet"), "NESAD_KEYRING_BACKEND": "test",
           "NESAD_NODE": f"http://127.0.0.1:{net.ports(node).rpc}"}
    return subprocess.run([sys.executable, "-m", "nesachain.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def common_app_hash(net: Localnet, nodes: list[int], height: int) -> set[str]:
    for i in nodes:
        net.rpc(i).wait_height(height + 1, timeout=90)
    return {net.rpc(i).app_hash_at(height) for i in nodes}


def test_localnet_cli_send_all_nodes_agree_and_tx_search_finds_it(localnet):
    net = localnet
    new = json.loads(nesad(net, "keys", "add", "bob", "-o", "json").stdout)
    faucet = net.keyring().show("faucet").address
    res = nesad(net, "tx", "bank", "send", "faucet", "bob", "12345unes", "-o", "json")
    assert res.returncode == 0, res.stderr + res.stdout
    out = json.loads(res.stdout)
    assert out["code"] == 0 and out["height"] > 0
    for i in range(4):  # every node answers the new balance through abci_query
        net.rpc(i).wait_height(out["height"] + 1, timeout=60)
        assert queries.balance(net.rpc(i), new["address"])["amount"] == 12345
    assert len(common_app_hash(net, [0, 1, 2, 3], out["height"])) == 1
    found = net.rpc(2).tx_search(f"message.sender='{faucet}'")
    assert out["hash"] in {t["hash"] for t in found}
    text = nesad(net, "query", "bank", "balance", "bob")
    assert text.returncode == 0 and text.stdout.strip() == "12345unes"


def test_localnet_cli_rejections_are_one_line_with_nonzero_exit(localnet):
    res = nesad(localnet, "tx", "bank", "send", "faucet", "operator1", "999999999999999999")
    assert res.returncode == 1
    assert "rejected in CheckTx: code 5 (sdk)" in res.stdout and "insufficient funds" in res.stdout
    res = nesad(localnet, "tx", "bank", "send", "faucet", "operator1", "10", "--fee", "1")
    assert res.returncode == 1 and "insufficient fee" in res.stdout
    res = nesad(localnet, "tx", "bank", "send", "faucet", "operator1", "10", "--chain-id", "wrong-chain")
    assert res.returncode == 1 and "invalid chain-id" in res.stdout
    res = nesad(localnet, "status", "--node", "http://127.0.0.1:1")
    assert res.returncode == 1 and res.stderr.startswith("error: cannot reach node") and res.stderr.count("\n") == 1


def test_localnet_kill9_validator_rest_commit_and_it_catches_up(localnet):
    net = localnet
    net.kill_node(3)
    net.kill_app(3)
    h0 = net.rpc(0).height()
    net.rpc(0).wait_height(h0 + 4, timeout=60)  # 3 of 4 validators keep committing
    net.start(3)
    target = net.rpc(0).height()
    net.rpc(3).wait_height(target, timeout=90)
    assert len(common_app_hash(net, [0, 1, 2, 3], target)) == 1


def test_localnet_kill9_app_alone_cometbft_replays_and_hash_matches(localnet):
    net = localnet
    net.rpc(0).wait_height(net.rpc(0).height() + 1)
    net.kill_app(2)
    # CometBFT stops itself when its app's connection breaks ("Did the application crash?")
    stopped = net.wait_exit(2, "node", timeout=30)
    if not stopped:
        net.kill_node(2)
    net.start(2)
    target = net.rpc(0).height() + 2
    net.rpc(2).wait_height(target, timeout=90)
    assert len(common_app_hash(net, [0, 1, 2, 3], target)) == 1
    log = (net.home(2) / "cometbft.log").read_text()
    assert "Did the application crash?" in log or "ABCI Handshake" in log
