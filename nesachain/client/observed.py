"""What this client has seen of each miner's speed, to check the throughput miners declare.

A miner declares its throughput on chain (forward passes per second per block, measured by itself
at start); routing divides blocks by it. A miner that overstates it draws requests it then serves
slowly. After each request the client records, for every hop that served the whole request, the
median time between hop i-1's result and hop i's (its compute, its push and the network) per block
per decode step, and routes later with ``min(declared, observed)``: a client that saw a miner run
slower than it claims believes what it saw, one that saw it run faster keeps the declared figure.

Observations are kept in ``observed_miners.json`` under the wallet home as an exponentially
weighted mean (weight ``ALPHA`` on the newest), and expire after ``MAX_AGE_S``: a miner that was
slow once, and so is no longer routed to, gets its declared figure back after that.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from nesachain.files import read_json, write_json_atomic

__all__ = ["ALPHA", "FILE", "MAX_AGE_S", "ObservedSpeeds", "per_block_seconds"]

ALPHA = 0.5
MAX_AGE_S = 3600.0
FILE = "observed_miners.json"

log = structlog.get_logger("nesachain.observed")


def per_block_seconds(hop_ms: Sequence[Sequence[float]], blocks: Sequence[int]) -> list[float | None]:
    """For each hop, the median over decode steps of its share of the step (client-observed,
    cumulative ms per hop as ``GenerationStats.hop_ms`` keeps them) per block, in seconds; None
    for a hop without a full set of samples."""
    out: list[float | None] = []
    for i, n in enumerate(blocks):
        shares = [(row[i] - (row[i - 1] if i else 0.0)) / 1000 / n for row in hop_ms if len(row) == len(blocks)]
        out.append(statistics.median(shares) if shares and n > 0 else None)
    return out


class ObservedSpeeds:
    def __init__(self, path: Path, clock: Any = time.time) -> None:
        self.path, self.clock = path, clock
        raw = read_json(self.path, {})
        self._seen: dict[str, dict[str, float]] = {
            k: v for k, v in raw.items()
            if isinstance(v, dict) and _positive(v.get("s_per_block")) and _positive(v.get("at"))
        } if isinstance(raw, dict) else {}

    @classmethod
    def in_home(cls, home: str | Path) -> ObservedSpeeds:
        return cls(Path(home) / FILE)

    def record(self, miner: str, s_per_block: float) -> None:
        if not _positive(s_per_block):
            return
        prev = self._fresh(miner)
        mean = s_per_block if prev is None else ALPHA * s_per_block + (1 - ALPHA) * prev
        self._seen[miner] = {"s_per_block": mean, "at": float(self.clock())}

    def throughput(self, miner: str, declared: float) -> float:
        """Forward passes per second per block to route with: the declared figure, or less if this
        client saw less within the last ``MAX_AGE_S``."""
        seen = self._fresh(miner)
        return declared if seen is None else min(declared, 1.0 / seen)

    def save(self) -> None:
        """Write the fresh observations; a folder that cannot be written loses them, with a warning
        (the request they came from is done)."""
        now = float(self.clock())
        try:
            write_json_atomic(self.path, {k: v for k, v in sorted(self._seen.items()) if now - v["at"] <= MAX_AGE_S})
        except OSError as exc:
            log.warning("observed_speeds_not_saved", path=str(self.path), error=str(exc))

    def _fresh(self, miner: str) -> float | None:
        v = self._seen.get(miner)
        if v is None or float(self.clock()) - v["at"] > MAX_AGE_S:
            return None
        return v["s_per_block"]


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 and x != float("inf")
