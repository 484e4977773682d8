"""Inference on chain, end to end, on a real localnet: 4 validators with verifiers, SmolLM2-135M
in 30 blocks served by 3 miners. One swarm for the module; phases swap
miners for a cheating one, one that never reveals and one that refuses challenge data."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nesachain.client.request import await_settled, run_request
from nesachain.localnet.net import REPO, Localnet
from nesachain.localnet.swarm import ensure_shards, start_miner, start_verifier, wait_active_miners
from nesachain.modules.bank.msgs import MsgSend
from nesachain.wallet import queries
from nesachain.wallet.txs import send_msgs
from tests.integration.conftest import free_base_port

pytestmark = [pytest.mark.localnet, pytest.mark.slow]

MODEL = "smollm2-135m"
PROMPT = "What is the capital of France?"
RANGES = [(0, 10), (10, 20), (20, 30)]


@pytest.fixture(scope="module")
def shards() -> Path:
    return ensure_shards(MODEL, 30, REPO / ".cache" / "shards" / MODEL)


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory, shards: Path):
    net = Localnet(tmp_path_factory.mktemp("e2e"), base_port=free_base_port(6), chain_id="nesa-e2e-1")
    net.init(shards={MODEL: shards})
    try:
        net.up(wait_height=2)
        net.guard()
        for i, r in enumerate(RANGES):
            start_miner(net, i, shards, r)
        for i in range(4):
            start_verifier(net, i, {MODEL: shards})
        wait_active_miners(net, MODEL, 3)
        yield net
    finally:
        net.down()


def nesad(net: Localnet, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NESAD_HOME": str(net.root / "wallet"), "NESAD_KEYRING_BACKEND": "test",
           "NESAD_NODE": f"http://127.0.0.1:{net.ports(0).rpc}"}
    return subprocess.run([sys.executable, "-m", "nesachain.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


def local_greedy(shards: Path, prompt: str, n: int) -> list[int]:
    from nesachain.client import load_tokenizer
    from nesachain.models import load_smollm2

    model, _ = load_smollm2()
    tok = load_tokenizer(shards)
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=tok.eos_token_id)
    return [int(t) for t in out[0, ids.shape[1] :]]


def pool(net: Localnet) -> dict:
    return queries.pool(net.rpc(0))


FAULTY_MINER = str(REPO / "tests" / "support" / "faulty_miner.py")


def swap_miner(net: Localnet, old: int, new: int, shards: Path, blocks: tuple[int, int], fault: str,
               extra: tuple[str, ...] = ()) -> None:
    """Replace miner ``old`` by a new miner ``new`` with ``fault`` (``tests/support/faulty_miner.py``)."""
    net.kill(f"miner{old}")
    start_miner(net, new, shards, blocks, program=(FAULTY_MINER, fault), extra=extra)
    wait_miner_active(net, new)


def wait_miner_active(net: Localnet, i: int) -> None:
    """Wait until miner ``i`` is registered and active on chain."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        miners = {m["miner"]: m for m in queries.miners(net.rpc(0), MODEL)}
        new_addr = net.keyring().show(f"miner{i}").address
        if new_addr in miners and miners[new_addr]["status"] == "active":
            return
        time.sleep(1)
    raise AssertionError(f"miner{i} did not become active")


def test_request_cli_matches_local_greedy_settles_and_pays_exactly(swarm, shards, tmp_path):
    net = swarm
    faucet = net.keyring().show("faucet").address
    before = queries.balance(net.rpc(0), faucet)["amount"]
    # a shard folder with other weights in one block, and an unknown scheme: refused before anything is sent
    other = tmp_path / "other"
    other.mkdir()
    for f in shards.iterdir():
        (other / f.name).symlink_to(f)
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["blocks"][5]["sha256"] = "0" * 64
    (other / "manifest.json").unlink()
    (other / "manifest.json").write_text(json.dumps(manifest))
    # … and so are an empty prompt, max tokens the chain refuses, and more tokens than the miners hold
    for folder, extra, message in [
        (other, [], "does not hold smollm2-135m as registered on chain"),
        (shards, ["--scheme", "int3"], "unknown compression scheme 'int3'"),
        (shards, ["--prompt=", "--raw"], "the prompt is empty"),
        (shards, ["--max-tokens", "0"], "not sent: the chain would refuse it with code 18 (inference): max_tokens"),
        (shards, ["--max-tokens", "5000"], "prompt + 5000 new tokens"),
    ]:
        res = nesad(net, "tx", "inference", "request", "faucet", "--model", MODEL, "--shards", str(folder),
                    "--prompt", PROMPT, "--max-tokens", "12", *extra)
        assert res.returncode == 1 and message in res.stderr and "opened" not in res.stderr, res.stderr[-2000:]
    assert queries.count_sessions(net.rpc(0)) == 0
    assert queries.balance(net.rpc(0), faucet)["amount"] == before
    res = nesad(net, "tx", "inference", "request", "faucet", "--model", MODEL, "--shards", str(shards),
                "--prompt", PROMPT, "--max-tokens", "12", "-o", "json")
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    s = out["session"]
    assert out["tokens"] == local_greedy(shards, PROMPT, 12)
    assert "Paris" in out["answer"]
    assert s["status"] == "settled" and s["tokens"] == len(out["tokens"])
    paid = 0
    for hop in s["hops"]:
        assert not hop["failed"] and hop["paid"] == (hop["end"] - hop["start"]) * s["tokens"] * s["price"]
        paid += hop["paid"]
    assert s["fee"] == paid * 20_000 // 1_000_000 and s["refund"] == s["escrow"] - paid - s["fee"]
    assert all(c["outcome"] == "match" for c in s["challenges"]) and len(s["challenges"]) == 3
    after = queries.balance(net.rpc(0), faucet)["amount"]
    assert before - after == paid + s["fee"] + 2 * 1000  # + the open and close tx fees
    assert pool(net)["invariant_holds"]
    seen = json.loads((net.root / "wallet" / "observed_miners.json").read_text())  # what routing checks next time
    assert sorted(seen) == sorted(h["miner"] for h in s["hops"]) and all(v["s_per_block"] > 0 for v in seen.values())
    listed = nesad(net, "query", "inference", "sessions", "--status", "settled", "--miner", s["hops"][0]["miner"],
                   "-o", "json")
    assert listed.returncode == 0 and [x["id"] for x in json.loads(listed.stdout)["sessions"]] == [s["id"]]
    listed = nesad(net, "query", "inference", "sessions", "--status", "unsettled")
    assert listed.returncode == 0 and listed.stdout.strip() == "(no sessions)", listed.stdout


def test_kill9_mid_request_the_alternate_is_paid_for_the_tokens_it_served(swarm, shards):
    net = swarm
    ring = net.keyring()
    start_miner(net, 6, shards, RANGES[1])  # a second miner for blocks 10:20
    wait_active_miners(net, MODEL, 4)
    names = {ring.show(f"miner{i}").address: f"miner{i}" for i in (1, 6)}
    prompt, n, kill_after = "Tell me about the history of Rome.", 16, 6
    routes = []
    count = [0]

    def on_token(_: str) -> None:
        count[0] += 1
        if count[0] == kill_after:
            net.kill(names[routes[0].hops[1].miner])  # SIGKILL the route's miner for 10:20

    try:
        r = asyncio.run(run_request(net.rpc(0), ring.signing_key("faucet"), shards, MODEL, prompt, n,
                                    on_token=on_token, on_open=lambda res: routes.append(res.route)))
        dead = routes[0].hops[1].miner
        stand_in = next(a for a in names if a != dead)
        assert r.tokens == local_greedy(shards, prompt, n)  # the failover changed no token
        assert r.stand_ins == [(1, stand_in, kill_after)]
        s = await_settled(net.rpc(0), r.session_id, 300)
        assert s["status"] == "settled", s
        hops = {h["miner"]: h for h in s["hops"]}
        assert hops[dead]["tokens"] == kill_after and hops[dead]["failed"] == "no_commit" and hops[dead]["paid"] == 0
        h = hops[stand_in]
        assert (h["stands_in_for"], h["from_token"], h["tokens"]) == (1, kill_after, n - kill_after)
        assert not h["failed"] and h["paid"] == 10 * (n - kill_after) * s["price"]
        outcomes = {c["miner"]: c["outcome"] for c in s["challenges"]}
        assert outcomes[stand_in] == "match"  # challenged (the localnet's rate is 100 %): its failover log checks out
        assert pool(net)["invariant_holds"]
    finally:
        for name in names.values():  # the next tests route 10:20 through their own miner
            net.kill(name)


def test_perturbing_miner_slashed_then_20_concurrent_sessions_complete_honest_never_flagged(swarm, shards):
    net = swarm
    # twice the floor (min_miner_bond 1 NES): one slash leaves it routable for the concurrent sessions below
    swap_miner(net, 1, 3, shards, (10, 20), "perturb=0.01", extra=("--bond", "2000000"))
    cheater = net.keyring().show("miner3").address
    res = nesad(net, "tx", "inference", "request", "faucet", "--model", MODEL, "--shards", str(shards),
                "--prompt", PROMPT, "--max-tokens", "6", "-o", "json")
    assert res.returncode == 0, res.stderr[-2000:]
    s = json.loads(res.stdout)["session"]
    hop = next(h for h in s["hops"] if h["miner"] == cheater)
    assert hop["failed"] == "challenge_mismatch" and hop["paid"] == 0
    m = queries.miner(net.rpc(0), cheater)
    assert m["bond"] == 1_800_000 and int(m["reputation"]) == 800_000  # slash_fraction 10 %, R' = R * 0.8
    assert m["status"] == "active"  # still above the bond floor
    for h in s["hops"]:
        if h["miner"] != cheater:
            assert not h["failed"] and h["paid"] > 0

    ring = net.keyring()
    clients = [ring.add(f"client{i}") for i in range(20)]
    funded = send_msgs(net.rpc(0), ring.signing_key("faucet"),
                       [MsgSend(ring.show("faucet").address, c.address, 10**7) for c in clients])
    assert funded.ok, funded.log
    from nesachain.client import DecoderClient

    client = DecoderClient.from_shard_dir(shards)

    async def all_requests():
        return await asyncio.gather(*(run_request(net.rpc(i % 4), ring.signing_key(f"client{i}"), shards, MODEL,
                                                  f"Say a number: {i}", 4, client=client) for i in range(20)))

    t0 = time.monotonic()
    results = asyncio.run(all_requests())
    sessions = [await_settled(net.rpc(0), r.session_id, 300) for r in results]
    minutes = (time.monotonic() - t0) / 60
    print(f"\n20 concurrent sessions settled in {minutes * 60:.0f} s: {20 / minutes:.1f} sessions/minute")
    outcomes: dict[str, int] = {}
    for s in sessions:
        assert s["status"] == "settled", s
        by_miner = {c["miner"]: c["outcome"] for c in s["challenges"]}
        for hop in s["hops"]:
            if hop["miner"] == cheater:
                outcomes[by_miner[cheater]] = outcomes.get(by_miner[cheater], 0) + 1
                assert by_miner[cheater] != "match"
                # never paid: "mismatch" (slashed), "contested" (> 1/3 said mismatch) or undecided for
                # max_undecided_rounds rounds (undecided never pays)
                assert hop["paid"] == 0 and hop["failed"].startswith("challenge_")
            else:  # never flagged: paid, and no challenge of theirs ends in "mismatch" or "contested"
                assert not hop["failed"] and hop["paid"] > 0
                assert by_miner[hop["miner"]] not in ("mismatch", "contested")
    print(f"cheater's last challenge in the concurrent sessions: {outcomes}"
          " (contested: > 1/3 of the power said mismatch in time; undecided: fewer, in every round)")
    assert pool(net)["invariant_holds"]
    assert all(net.running(n) for n in net.pids() if n.startswith(("app", "node", "verifier")))


def test_miner_that_never_reveals_or_refuses_data_is_penalized_and_unpaid(swarm, shards):
    net = swarm
    ring = net.keyring()
    if any(k.name == "miner3" for k in ring.list()):  # the perturbing miner of the test above
        cheater = queries.miner(net.rpc(0), ring.show("miner3").address)
        # slashed in session after session below the bond floor: inactive, so nobody may route through it
        assert cheater["bond"] < 1_000_000 and cheater["status"] == "inactive", cheater
        net.kill("miner3")
    start_miner(net, 7, shards, (10, 20))  # an honest miner for blocks 10:20
    wait_miner_active(net, 7)
    swap_miner(net, 0, 4, shards, (0, 10), "no-reveal")
    swap_miner(net, 2, 5, shards, (20, 30), "refuse-data")
    silent, refusing = net.keyring().show("miner4").address, net.keyring().show("miner5").address
    res = nesad(net, "tx", "inference", "request", "faucet", "--model", MODEL, "--shards", str(shards),
                "--prompt", PROMPT, "--max-tokens", "4", "-o", "json")
    assert res.returncode == 0, res.stderr[-2000:]
    s = json.loads(res.stdout)["session"]
    hops = {h["miner"]: h for h in s["hops"]}
    assert hops[silent]["failed"] == "no_reveal" and hops[silent]["paid"] == 0
    assert hops[refusing]["failed"] == "challenge_mismatch" and hops[refusing]["paid"] == 0
    m = queries.miner(net.rpc(0), silent)
    assert int(m["reputation"]) == 800_000
    # the slash took the refusing miner's 1 NES bond below the floor: inactive until its owner tops it up
    m = queries.miner(net.rpc(0), refusing)
    assert (m["bond"], m["status"]) == (900_000, "inactive")
    assert pool(net)["invariant_holds"]
