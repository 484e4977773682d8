"""Routing time for 10,000 miners x 30 blocks (target: under 100 ms).

    .venv/bin/python bench/routing.py [--runs 20] [--write-docs]

``find_route`` over 10,000 seeded random miners (each serving 1..10 of 30 blocks, random throughput,
reputation, queue, price and RTT), one warm-up call, then ``--runs`` timed calls. ``--write-docs`` puts the
table into docs/benchmarks.md between ``<!-- bench:routing -->`` and ``<!-- /bench:routing -->``
(``bench/report.py``). Not a test.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Lines, add_write_docs_flag, write_section  # bench/report.py: docs/benchmarks.md

from nesachain.client.routing import MinerCandidate, Weights, find_route

MINERS, BLOCKS, TARGET_MS = 10_000, 30, 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    add_write_docs_flag(ap)
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    rng = random.Random(5)
    cands = []
    for i in range(MINERS):
        a = rng.randrange(BLOCKS)
        b = min(BLOCKS, a + rng.randint(1, 10))
        cands.append(MinerCandidate(f"m{i:05d}", a, b, rng.uniform(1, 50), rng.uniform(0.1, 10),
                                    rng.randrange(5), rng.randrange(10), rng.uniform(0.001, 0.3)))
    w = Weights(latency=1, price=0.5, trust=0.1)
    find_route(cands, BLOCKS, w)
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        route = find_route(cands, BLOCKS, w)
        times.append((time.perf_counter() - t) * 1000)
    median = statistics.median(times)
    md = Lines()
    md("| miners | blocks | runs | median ms | min ms | max ms | hops | target ms | median / target |")
    md("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    md(f"| {MINERS:,} | {BLOCKS} | {args.runs} | {median:.1f} | {min(times):.1f} | {max(times):.1f} | "
       f"{len(route.hops)} | < {TARGET_MS} | {median / TARGET_MS:.2f} |")
    if args.write_docs:
        write_section("routing", md.text())


if __name__ == "__main__":
    main()
