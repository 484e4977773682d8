"""A cheating miner among honest ones, under load: are its challenges decided, and what do the verifiers pay?

Starts a 4-validator localnet (every result challenged) with verifiers and SmolLM2's 30 blocks on 3 honest miners
(0:10, 10:20, 20:30) and one more miner on 10:20 that adds 1 % noise to its outputs. Then N verified sessions at
once (default 20), ``--cheated`` of them (default 5) routed through the cheating miner for 10:20, the others
through the honest one, and waits until every session has settled.

Target: every challenge of the cheating miner decided "mismatch" (none undecided or contested), no honest miner
flagged. Reported: outcomes, the verifiers' CPU seconds per challenge judged, and the time from a session's close
to its settlement (p50, p95).

    .venv/bin/python bench/adversarial.py [--sessions 20] [--cheated 5] [--max-tokens 4] [--write-docs]

``--write-docs`` puts the table into docs/benchmarks.md between ``<!-- bench:adversarial -->`` and
``<!-- /bench:adversarial -->`` (``bench/report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Lines, add_write_docs_flag, write_section  # bench/report.py: docs/benchmarks.md

from nesachain.client.request import await_settled, candidates
from nesachain.client.routing import find_route
from nesachain.localnet.net import REPO, Localnet
from nesachain.localnet.swarm import ensure_shards, start_miner, start_verifier, wait_active_miners
from nesachain.modules.bank.msgs import MsgSend
from nesachain.modules.inference.msgs import MsgCloseSession, MsgOpenSession
from nesachain.modules.inference.types import max_cost
from nesachain.protocol.auth import sign_open
from nesachain.protocol.sessions import chain_session_base
from nesachain.wallet import queries
from nesachain.wallet.txs import account_of, send_msgs

MODEL = "smollm2-135m"
FAULTY_MINER = str(REPO / "tests" / "support" / "faulty_miner.py")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def session(net: Localnet, client: Any, tok: Any, key: Any, through: str, max_tokens: int,
                  i: int) -> tuple[int, float]:
    """Open (route with hop 1 on ``through``), generate, close: (session id, time of the close)."""
    from nesachain.shard_exec.sampling import Sampling

    rpc = net.rpc(i % net.n)
    keep = {c.miner for c in candidates(rpc, MODEL) if c.start != 10 or c.miner == through}
    route = find_route([c for c in candidates(rpc, MODEL) if c.miner in keep], 30)
    assert route.hops[1].miner == through, route
    escrow = max_cost(1, 30, max_tokens, queries.inference_params(rpc)["protocol_fee_ppm"])
    opened = await asyncio.to_thread(send_msgs, rpc, key, [MsgOpenSession(account_of(key), MODEL,
                                                                          route.as_chain_route(), max_tokens, escrow)])
    assert opened.ok, opened.log
    sid, chain_id = int(opened.responses()[0]["session_id"]), rpc.chain_id()
    route = route.authorized(lambda hop, attempt, url: sign_open(key, chain_id, sid, hop, attempt,
                                                                 route.miner_at(url) or ""))
    ids = tok(f"Say a number: {i}", add_special_tokens=False, return_tensors="pt").input_ids
    base = chain_session_base(sid)
    tokens = [t async for t in client.generate(route, ids, max_tokens, Sampling(), session_base=base)]
    closed = await asyncio.to_thread(send_msgs, rpc, key, [MsgCloseSession(account_of(key), sid, len(tokens))])
    assert closed.ok, closed.log
    return sid, time.monotonic()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--cheated", type=int, default=5, help="sessions routed through the cheating miner")
    ap.add_argument("--max-tokens", type=int, default=4)
    add_write_docs_flag(ap)
    args = ap.parse_args()
    shards = ensure_shards(MODEL, 30, REPO / ".cache" / "shards" / MODEL)
    net = Localnet(Path(tempfile.mkdtemp(prefix="bench-adversarial-")), base_port=18756, chain_id="nesa-bench-adv")
    net.init(shards={MODEL: shards})
    try:
        net.up(wait_height=2)
        net.guard()
        for i, r in enumerate([(0, 10), (10, 20), (20, 30)]):
            start_miner(net, i, shards, r)
        start_miner(net, 3, shards, (10, 20), program=(FAULTY_MINER, "perturb=0.01"))
        for i in range(4):
            start_verifier(net, i, {MODEL: shards})
        wait_active_miners(net, MODEL, 4)
        ring = net.keyring()
        honest, cheater = ring.show("miner1").address, ring.show("miner3").address
        keys = [ring.add(f"bench-client{i}") for i in range(args.sessions)]
        funded = send_msgs(net.rpc(0), ring.signing_key("faucet"),
                           [MsgSend(ring.show("faucet").address, k.address, 10**7) for k in keys])
        assert funded.ok, funded.log
        from nesachain.client.models import DecoderClient, load_tokenizer

        client, tok = DecoderClient.from_shard_dir(shards), load_tokenizer(shards)
        verifiers = [net.pids()[f"verifier{i}"] for i in range(4)]
        cpu0 = sum(cpu_seconds(p) for p in verifiers)

        async def all_sessions() -> list[tuple[int, float]]:
            return await asyncio.gather(*(session(net, client, tok, ring.signing_key(k.name),
                                                  cheater if i < args.cheated else honest, args.max_tokens, i)
                                          for i, k in enumerate(keys)))

        t0 = time.monotonic()
        opened = asyncio.run(all_sessions())
        settled: list[dict[str, Any]] = []
        latency: list[float] = []
        for sid, closed_at in opened:
            s = await_settled(net.rpc(0), sid, 600)
            assert s["status"] == "settled", s["status"]
            settled.append(s)
            latency.append(time.monotonic() - closed_at)
        wall = time.monotonic() - t0
        cpu = sum(cpu_seconds(p) for p in verifiers) - cpu0
    finally:
        net.down()
        shutil.rmtree(net.root, ignore_errors=True)
    cheats: dict[str, int] = {}
    flagged = challenges = 0
    for s in settled:
        for c in s["challenges"]:
            challenges += 1
            if c["miner"] == cheater:
                cheats[c["outcome"] or "pending"] = cheats.get(c["outcome"] or "pending", 0) + 1
            elif c["outcome"] in ("mismatch", "contested"):
                flagged += 1
    latency.sort()
    p95 = latency[min(len(latency) - 1, round(0.95 * (len(latency) - 1)))]
    md = Lines()
    md(f"SmolLM2-135M on 3 honest miners and one that adds 1 % noise (10:20); {args.sessions} verified sessions at "
       f"once, {args.cheated} through the cheating miner, {args.max_tokens} tokens each; a 4-validator localnet "
       "(every result challenged) with 4 verifiers, all on this machine.")
    md()
    md("| sessions | cheating miner's challenges | honest miners flagged | challenges | verifier CPU s per challenge "
       "judged | close to settled p50 s | p95 s | all settled after s |")
    md("|---:|---|---:|---:|---:|---:|---:|---:|")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(cheats.items()))
    md(f"| {args.sessions} | {outcomes} | {flagged} | {challenges} | {cpu / max(1, 4 * challenges):.2f} | "
       f"{statistics.median(latency):.1f} | {p95:.1f} | {wall:.0f} |")
    md()
    target = cheats.get("mismatch", 0) == sum(cheats.values()) == args.cheated and flagged == 0
    md(f"Target (every cheating challenge \"mismatch\", none undecided; no honest miner flagged): "
       f"{'met' if target else 'not met'}.")
    if args.write_docs:
        write_section("adversarial", md.text())


if __name__ == "__main__":
    main()
