"""The partitioner: the DP that cuts units into k contiguous stages (``nesachain.shard_exec.partition``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nesachain.shard_exec.errors import PartitionError
from nesachain.shard_exec.partition import CostWeights, balanced_layers, partition


def test_partition_balances_equal_layers() -> None:
    assert balanced_layers(30, 3) == [(0, 10), (10, 20), (20, 30)]
    sizes = [hi - lo for lo, hi in balanced_layers(7, 3)]
    assert sorted(sizes) == [2, 2, 3]


def test_partition_minimises_the_bottleneck_stage() -> None:
    bounds = partition([1, 1, 1, 6, 1, 1, 1], 3, weights=CostWeights(1.0, 0.0, 0.0))
    assert bounds == [0, 3, 4, 7]  # the heavy unit stands alone


def test_partition_avoids_forbidden_and_expensive_cuts() -> None:
    allowed = [True, True, False, True, True]
    bounds = partition([1, 1, 1, 1], 2, allowed=allowed, weights=CostWeights(1.0, 0.0, 0.0))
    assert bounds[1] != 2
    cut = [0, 100, 100, 1, 100]
    bounds = partition([1, 1, 1, 1], 2, cut_bytes=cut, weights=CostWeights(1.0, 0.0, 1.0))
    assert bounds == [0, 3, 4] or bounds[1] == 3


def test_partition_rejects_impossible_requests() -> None:
    with pytest.raises(PartitionError):
        partition([1, 1], 3)
    with pytest.raises(PartitionError):
        partition([1, 1, 1], 2, allowed=[True, False, False, True])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=30), st.integers(1, 6))
def test_partition_bounds_are_contiguous_and_non_empty(costs: list[float], k: int) -> None:
    k = min(k, len(costs))
    b = partition(costs, k)
    assert b[0] == 0 and b[-1] == len(costs) and len(b) == k + 1
    assert all(b[i] < b[i + 1] for i in range(k))
