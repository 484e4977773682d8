"""Petals-style block choice and rebalancing, pure and deterministic."""

from __future__ import annotations

import random

import pytest

from nesachain.miner.placement import Span, block_throughputs, choose_best_start, choose_blocks, rebalance


def test_choose_best_start_fills_the_weakest_blocks_first() -> None:
    spans = [Span("a", 0, 10, 5), Span("b", 10, 20, 5)]
    assert choose_blocks(spans, 30, 10) == (20, 30)
    assert choose_blocks([], 30, 10) == (0, 10)  # empty swarm: ties go to the lowest start
    assert choose_best_start([3, 1, 1, 2, 0, 5], 2) == 3  # sorted [0, 2] is the smallest window


def test_choose_best_start_compares_sorted_windows_lexicographically() -> None:
    # windows of 2: [5,1]->[1,5], [1,1]->[1,1], [1,9]->[1,9]; [1,1] is smallest
    assert choose_best_start([5, 1, 1, 9], 2) == 1
    with pytest.raises(ValueError):
        choose_best_start([1, 2], 3)


def test_block_throughputs_sum_overlapping_spans() -> None:
    assert block_throughputs([Span("a", 0, 3, 2), Span("b", 2, 4, 5)], 5) == [2, 2, 7, 5, 0]


def test_rebalance_moves_a_duplicate_miner_to_the_uncovered_range() -> None:
    spans = [Span("a", 0, 10, 1000), Span("b", 10, 20, 1000), Span("c", 0, 10, 1000)]
    assert rebalance("c", spans, 30) == (20, 30)
    # "a" is just as redundant; it moves too (to the same hole) when it is the one asking
    assert rebalance("a", spans, 30) == (20, 30)
    assert rebalance("b", spans, 30) is None  # alone on its blocks: moving it would open a hole


def test_rebalance_stays_when_the_swarm_is_balanced() -> None:
    spans = [Span("a", 0, 10, 1000), Span("b", 10, 20, 1000), Span("c", 20, 30, 1000)]
    assert all(rebalance(m, spans, 30) is None for m in "abc")


def test_rebalance_needs_an_improvement_above_one_over_balance_quality() -> None:
    # two blocks; moving c from block 0 to block 1 raises the minimum from 8 to 10: 8/10 = 0.8 >= 0.75
    spans = [Span("a", 0, 1, 10), Span("b", 1, 2, 8), Span("c", 0, 1, 2)]
    assert rebalance("c", spans, 2) is None
    assert rebalance("c", spans, 2, balance_quality=0.9) == (1, 2)  # a stricter quality asks for the move
    # minimum 4 -> 10: 0.4 < 0.75, move
    spans = [Span("a", 0, 1, 10), Span("b", 1, 2, 4), Span("c", 0, 1, 8)]
    assert rebalance("c", spans, 2) == (1, 2)


def test_rebalance_is_independent_of_input_order() -> None:
    rng = random.Random(3)
    spans = [Span(f"m{i}", s, s + 5, rng.randrange(100, 2000)) for i, s in enumerate([0, 0, 5, 5, 5, 10, 20])]
    want = [rebalance(s.miner, spans, 30) for s in spans]
    for _ in range(5):
        shuffled = spans[:]
        rng.shuffle(shuffled)
        assert [rebalance(s.miner, shuffled, 30) for s in spans] == want
    assert any(w is not None for w in want)  # blocks 15..19 and 25..29 are uncovered


def test_rebalance_of_an_unknown_miner_is_an_error() -> None:
    with pytest.raises(ValueError):
        rebalance("zz", [Span("a", 0, 1, 1)], 1)
