"""Committed tx/s and commit latency of nesachain vs CometBFT's built-in kvstore app.

Both run as 4 validators on 127.0.0.1 with the same ports, timeouts and config (the localnet's);
the same load generator sends unique txs at fixed rates, round-robin over the 4 RPC endpoints,
and a block watcher records when each tx's block is seen. nesachain txs are real signed bank
sends, each from its own genesis-funded account (so no sequence ordering limits the rate).

    .venv/bin/python bench/chain_tps.py [--rates 50,100,200] [--seconds 8] [--write-docs]

tx/s counts committed txs over the time from the first send to the last commit seen; p50 and p95 are the
latencies from a tx's send to the first sight of its block. ``--write-docs`` puts the table into
docs/benchmarks.md between ``<!-- bench:chain_tps -->`` and ``<!-- /bench:chain_tps -->`` (``bench/report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from nacl.signing import SigningKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Lines, add_write_docs_flag, write_section  # bench/report.py: docs/benchmarks.md

from nesachain.localnet.net import Localnet, find_cometbft
from nesachain.modules.bank.msgs import MsgSend
from nesachain.tx.tx import TxBody, sign_tx
from nesachain.types.address import address_from_pubkey, encode_address

CHAIN_ID = "nesa-bench-1"
BASE_PORT = 17656


def nesa_txs(n: int) -> tuple[list[bytes], dict[str, int]]:
    keys = [SigningKey(hashlib.sha256(b"bench%d" % i).digest()) for i in range(n)]
    addrs = [encode_address(address_from_pubkey(bytes(k.verify_key))) for k in keys]
    sink = encode_address(b"\x07" * 20)
    txs = [sign_tx(TxBody(CHAIN_ID, a, 0, 1000, (MsgSend(a, sink, 1),)), k) for k, a in zip(keys, addrs, strict=True)]
    return txs, {a: 10_000 for a in addrs}


def kv_txs(n: int, size: int) -> list[bytes]:
    out = []
    for i in range(n):
        key = f"bench{i:08d}".encode()
        out.append(key + b"=" + b"v" * max(1, size - len(key) - 1))
    return out


class Watcher:
    """Records the wall time each block (and so each tx in it) is first seen on node 0."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.seen: dict[str, float] = {}
        self.stop = False

    async def rpc(self, method: str, **params: str) -> dict:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with self.session.post(self.url, json=body) as r:
            return (await r.json())["result"]

    async def run(self) -> None:
        height = int((await self.rpc("status"))["sync_info"]["latest_block_height"])
        while not self.stop:
            latest = int((await self.rpc("status"))["sync_info"]["latest_block_height"])
            while height < latest:
                height += 1
                now = time.monotonic()
                block = await self.rpc("block", height=str(height))
                for tx in block["block"]["data"]["txs"] or []:
                    self.seen[hashlib.sha256(base64.b64decode(tx)).hexdigest().upper()] = now
            await asyncio.sleep(0.02)


async def drive(urls: list[str], txs: list[bytes], rate: int, drain: float) -> dict[str, float]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        watcher = Watcher(session, urls[0])
        wtask = asyncio.create_task(watcher.run())
        sent: dict[str, float] = {}
        refused = 0

        async def submit(i: int, tx: bytes) -> None:
            nonlocal refused
            body = {"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync",
                    "params": {"tx": base64.b64encode(tx).decode()}}
            t = time.monotonic()
            try:
                async with session.post(urls[i % len(urls)], json=body) as r:
                    res = (await r.json()).get("result") or {}
            except (TimeoutError, aiohttp.ClientError):
                refused += 1
                return
            if res.get("code", 1) == 0:
                sent[res["hash"]] = t
            else:
                refused += 1

        t0 = time.monotonic()
        tasks = []
        for i, tx in enumerate(txs):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(submit(i, tx)))
        await asyncio.gather(*tasks)
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and not all(h in watcher.seen for h in sent):
            await asyncio.sleep(0.1)
        watcher.stop = True
        await wtask
    done = [h for h in sent if h in watcher.seen]
    lat = sorted(watcher.seen[h] - sent[h] for h in done)
    span = (max(watcher.seen[h] for h in done) - t0) if done else float("nan")
    return {
        "offered": rate, "sent": len(txs), "accepted": len(sent), "refused": refused, "committed": len(done),
        "tps": len(done) / span if done else 0.0,
        "p50": statistics.median(lat) if lat else float("nan"),
        "p95": lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"),
    }


def start_kvstore(net: Localnet) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(net.n):
        p = net.ports(i)
        log = open(net.home(i) / "kvstore.log", "ab")
        procs.append(subprocess.Popen(
            [find_cometbft(), "node", "--home", str(net.home(i)), "--proxy_app", "kvstore",
             "--rpc.laddr", f"tcp://127.0.0.1:{p.rpc}", "--p2p.laddr", f"tcp://127.0.0.1:{p.p2p}"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True))
    return procs


def run(kind: str, rates: list[int], seconds: float) -> list[dict[str, float]]:
    total = sum(r * int(seconds) for r in rates)
    root = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    net = Localnet(root, 4, BASE_PORT, CHAIN_ID)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if kind == "nesachain":
            txs, balances = nesa_txs(total)
            net.init(extra_balances=balances)
            net.up(wait_height=2)
        else:
            txs = kv_txs(total, len(nesa_txs(1)[0][0]))
            net.init()
            procs = start_kvstore(net)
            for i in range(net.n):
                net.rpc(i).wait_height(2, timeout=60)
        urls = [f"http://127.0.0.1:{net.ports(i).rpc}" for i in range(net.n)]
        out, pos = [], 0
        for rate in rates:
            n = rate * int(seconds)
            out.append(asyncio.run(drive(urls, txs[pos : pos + n], rate, drain=20)))
            pos += n
        return out
    finally:
        net.down()
        for p in procs:
            p.terminate()
            p.wait(timeout=15)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="50,100,200")
    ap.add_argument("--seconds", type=float, default=8)
    add_write_docs_flag(ap)
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    results = {kind: run(kind, rates, args.seconds) for kind in ("kvstore", "nesachain")}
    md = Lines()
    md(f"4 validators on 127.0.0.1 (timeout_commit 400 ms), {args.seconds:.0f} s per rate, the same load generator "
       "sending unique signed bank sends (nesachain) or unique `key=value` txs of the same size (CometBFT's "
       "built-in kvstore); tx/s counts committed txs over the time from the first send to the last commit seen.")
    md()
    md("| offered tx/s | kvstore tx/s | p50 s | p95 s | nesachain tx/s | p50 s | p95 s | ratio |")
    md("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, n in zip(results["kvstore"], results["nesachain"], strict=True):
        ratio = n["tps"] / k["tps"] if k["tps"] else float("nan")
        md(f"| {k['offered']:.0f} | {k['tps']:.1f} | {k['p50']:.2f} | {k['p95']:.2f} | {n['tps']:.1f} | "
           f"{n['p50']:.2f} | {n['p95']:.2f} | {ratio:.2f} |")
    notes = [f"{kind} at {r['offered']:.0f}/s committed {r['committed']:.0f} of {r['sent']:.0f} "
             f"({r['refused']:.0f} refused at broadcast)"
             for kind, rows in results.items() for r in rows if r["committed"] < r["sent"]]
    if notes:
        md()
        md("Not every tx committed: " + "; ".join(notes) + ".")
    if args.write_docs:
        write_section("chain_tps", md.text())


if __name__ == "__main__":
    main()
