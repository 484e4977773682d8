"""End-to-end latency of a verified request, and the chain's overhead.

Starts its own 4-validator localnet with verifiers and 3 SmolLM2 miners (blocks 0:10, 10:20,
20:30), then for the same prompt and route measures, N times each:
  - off chain: the pipeline alone (time to first token, to the last token);
  - on chain: open session tx + the same pipeline + close tx (time to first token, to the last
    token), and the time until the session is "settled" (commitments, challenges, verdicts).

    .venv/bin/python bench/e2e.py [--runs 3] [--max-tokens 16] [--write-docs]

``--write-docs`` puts the table into docs/benchmarks.md between ``<!-- bench:e2e -->`` and
``<!-- /bench:e2e -->`` (``bench/report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Lines, add_write_docs_flag, write_section  # bench/report.py: docs/benchmarks.md

from nesachain.client.request import await_settled, candidates, run_request
from nesachain.client.routing import find_route
from nesachain.localnet.net import REPO, Localnet
from nesachain.localnet.swarm import ensure_shards, start_miner, start_verifier, wait_active_miners

MODEL = "smollm2-135m"
PROMPT = "Write one sentence about the sea."


async def off_chain(net: Localnet, shards: Path, client, max_tokens: int) -> tuple[float, float]:
    """The pipeline alone: a session already open on chain (untimed, as chain miners serve chain sessions only),
    then the same generation through the same miners, timed; then closed (untimed)."""
    from nesachain.client import GenerationStats, Sampling, load_tokenizer
    from nesachain.modules.inference.msgs import MsgCloseSession, MsgOpenSession
    from nesachain.modules.inference.types import max_cost
    from nesachain.protocol.auth import sign_open
    from nesachain.protocol.sessions import chain_session_base
    from nesachain.wallet import queries
    from nesachain.wallet.txs import account_of, send_msgs

    rpc, key = net.rpc(0), net.keyring().signing_key("faucet")
    route = find_route(candidates(rpc, MODEL), 30)
    escrow = max_cost(1, 30, max_tokens, queries.inference_params(rpc)["protocol_fee_ppm"])
    opened = send_msgs(rpc, key, [MsgOpenSession(account_of(key), MODEL, route.as_chain_route(), max_tokens, escrow)])
    sid, chain_id = int(opened.responses()[0]["session_id"]), rpc.chain_id()
    route = route.authorized(lambda hop, attempt, url: sign_open(key, chain_id, sid, hop, attempt,
                                                                 route.miner_at(url) or ""))
    tok = load_tokenizer(shards)
    text = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    stats = GenerationStats()
    t0 = time.perf_counter()
    async for _ in client.generate(route, ids, max_tokens, Sampling(), stop_at_eos=False, stats=stats,
                                   session_base=chain_session_base(sid)):
        pass
    elapsed = time.perf_counter() - t0
    send_msgs(rpc, key, [MsgCloseSession(account_of(key), sid, stats.new_tokens)])
    return stats.ttft_s, elapsed


async def on_chain(net: Localnet, shards: Path, client, max_tokens: int) -> tuple[float, float, int]:
    key = net.keyring().signing_key("faucet")
    t0 = time.perf_counter()
    first: list[float] = []
    result = await run_request(net.rpc(0), key, shards, MODEL, PROMPT, max_tokens, client=client,
                               on_token=lambda _: first.append(time.perf_counter()) if not first else None)
    return (first[0] - t0) if first else float("nan"), time.perf_counter() - t0, result.session_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=16)
    add_write_docs_flag(ap)
    args = ap.parse_args()
    shards = ensure_shards(MODEL, 30, REPO / ".cache" / "shards" / MODEL)
    net = Localnet(Path(tempfile.mkdtemp(prefix="bench-e2e-")), base_port=18656, chain_id="nesa-bench-e2e")
    net.init(shards={MODEL: shards})
    try:
        net.up(wait_height=2)
        net.guard()  # a killed bench leaves no node behind
        for i, r in enumerate([(0, 10), (10, 20), (20, 30)]):
            start_miner(net, i, shards, r)
        for i in range(4):
            start_verifier(net, i, {MODEL: shards})
        wait_active_miners(net, MODEL, 3)
        from nesachain.client import DecoderClient

        client = DecoderClient.from_shard_dir(shards)
        off, on, settle = [], [], []
        for _ in range(args.runs):
            off.append(asyncio.run(off_chain(net, shards, client, args.max_tokens)))
            ttft, total, sid = asyncio.run(on_chain(net, shards, client, args.max_tokens))
            t = time.perf_counter()
            s = await_settled(net.rpc(0), sid, 300)
            settle.append(total + time.perf_counter() - t)
            on.append((ttft, total))
            assert s["status"] == "settled", s["status"]
    finally:
        net.down()
        shutil.rmtree(net.root, ignore_errors=True)
    med = statistics.median
    md = Lines()
    md(f"SmolLM2-135M, 3 miners (10 blocks each), {args.max_tokens} new tokens, median of {args.runs} runs, "
       "same prompt and route; a 4-validator localnet (timeout_commit 400 ms) with verifiers, all on this machine.")
    md()
    md("| path | time to first token s | time to last token s | to settled s |")
    md("|---|---:|---:|---:|")
    md(f"| pipeline only (session already open) | {med(o[0] for o in off):.2f} | {med(o[1] for o in off):.2f} | – |")
    md(f"| request with on-chain session | {med(o[0] for o in on):.2f} | {med(o[1] for o in on):.2f} | "
       f"{med(settle):.1f} |")
    md()
    md(f"Chain overhead on the time to the last token: {med(o[1] for o in on) / med(o[1] for o in off):.2f}x.")
    if args.write_docs:
        write_section("e2e", md.text())


if __name__ == "__main__":
    main()
