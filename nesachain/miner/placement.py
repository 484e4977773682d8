"""Block placement for miners, as Petals chooses blocks (petals/server/block_selection.py), made
pure and deterministic: integer throughputs, miners visited in sorted id order, no randomness.

- ``choose_best_start``: among all windows of ``length`` consecutive blocks, the one whose sorted
  throughputs are lexicographically smallest, i.e. the start that raises the weakest blocks.
- ``choose_blocks``: where a new miner should go, given the model's active miners.
- ``rebalance``: whether a registered miner should move. Remove it, find its best start; if that
  differs, move it there, then let every miner (in id order) move to its own best start until
  nobody moves, and compare the swarm's minimum block throughput before and after. Move only when
  ``before / after < balance_quality`` (default 0.75): the minimum must improve by more than
  1/0.75. A swarm with an uncovered block (minimum 0) always moves a miner to cover it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

__all__ = ["Span", "block_throughputs", "choose_best_start", "choose_blocks", "rebalance"]

MAX_ROUNDS = 64  # bound on the simulated moves (Petals loops until stable)


@dataclass(frozen=True)
class Span:
    miner: str
    start: int
    end: int
    throughput: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def moved_to(self, start: int) -> Span:
        return replace(self, start=start, end=start + self.length)


def block_throughputs(spans: Sequence[Span], n_blocks: int) -> list[int]:
    """Total throughput serving each block."""
    out = [0] * n_blocks
    for s in spans:
        for b in range(max(s.start, 0), min(s.end, n_blocks)):
            out[b] += s.throughput
    return out


def choose_best_start(throughputs: Sequence[int], length: int) -> int:
    if not 0 < length <= len(throughputs):
        raise ValueError(f"span length {length} does not fit {len(throughputs)} blocks")
    options = ((sorted(throughputs[i : i + length]), i) for i in range(len(throughputs) - length + 1))
    return min(options)[1]


def choose_blocks(spans: Sequence[Span], n_blocks: int, length: int) -> tuple[int, int]:
    """The range a newcomer serving ``length`` blocks should take."""
    start = choose_best_start(block_throughputs(spans, n_blocks), length)
    return start, start + length


def _remove(tp: list[int], s: Span) -> None:
    for b in range(s.start, s.end):
        tp[b] -= s.throughput


def _add(tp: list[int], s: Span) -> None:
    for b in range(s.start, s.end):
        tp[b] += s.throughput


def rebalance(me: str, spans: Sequence[Span], n_blocks: int,
              balance_quality: Fraction | float = Fraction(3, 4)) -> tuple[int, int] | None:
    """The range ``me`` should move to, or None to stay. ``spans`` are the model's active miners
    (``me`` among them)."""
    by_id = {s.miner: s for s in sorted(spans, key=lambda s: s.miner)}
    if me not in by_id:
        raise ValueError(f"miner {me} is not among the spans")
    quality = Fraction(balance_quality)
    tp = block_throughputs(list(by_id.values()), n_blocks)
    initial = min(tp)
    mine = by_id[me]
    _remove(tp, mine)
    new_start = choose_best_start(tp, mine.length)
    if new_start == mine.start:
        return None
    by_id[me] = mine.moved_to(new_start)
    _add(tp, by_id[me])
    for _ in range(MAX_ROUNDS):
        moved = False
        for miner_id in sorted(by_id):
            s = by_id[miner_id]
            _remove(tp, s)
            start = choose_best_start(tp, s.length)
            if start != s.start:
                s = s.moved_to(start)
                by_id[miner_id] = s
                moved = True
            _add(tp, s)
        if not moved:
            break
    final = min(tp)
    if final <= 0 or final < initial:
        return None
    if Fraction(initial, final) < quality:
        return new_start, new_start + mine.length
    return None
