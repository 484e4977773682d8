"""Routing time for 10,000 miners x 30 blocks (target: under 100 ms).

    .venv/bin/python bench/routing.py
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nesachain.client.routing import MinerCandidate, Weights, find_route


def main() -> None:
    rng = random.Random(5)
    cands = []
    for i in range(10_000):
        a = rng.randrange(30)
        b = min(30, a + rng.randint(1, 10))
        cands.append(MinerCandidate(f"m{i:05d}", a, b, rng.uniform(1, 50), rng.uniform(0.1, 10),
                                    rng.randrange(5), rng.randrange(10), rng.uniform(0.001, 0.3)))
    w = Weights(latency=1, price=0.5, trust=0.1)
    find_route(cands, 30, w)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        route = find_route(cands, 30, w)
        times.append((time.perf_counter() - t) * 1000)
    print(f"10,000 miners x 30 blocks: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms "
          f"over 20 runs ({len(route.hops)} hops); target < 100 ms; ratio {statistics.median(times) / 100:.2f}")


if __name__ == "__main__":
    main()
