"""Cut a sequence of units (layers or graph nodes, in topological order) into k contiguous stages.

Dynamic programming after Archer et al. (ICML 2024, "Practical Performance Guarantees for Pipelined
DNN Inference"): a pipeline runs at the pace of its slowest stage, so minimise the bottleneck

    stage_cost(i, j) = w_compute * compute[i:j] / total_compute
                     + w_memory  * params[i:j]  / total_params
                     + w_comm    * cut_bytes[j] / max_cut_bytes      (bytes leaving the stage)

over all placements of k-1 cuts at allowed positions, ties broken by the smaller sum of stage costs
and then by the earliest cuts (pure and deterministic). O(k·n²) with prefix sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nesachain.shard_exec.errors import PartitionError

__all__ = ["CostWeights", "balanced_layers", "partition"]


@dataclass(frozen=True)
class CostWeights:
    """Relative weight of compute, parameter memory and cut traffic in a stage's cost."""

    compute: float = 1.0
    memory: float = 0.5
    comm: float = 0.25


def _prefix(xs: Sequence[float]) -> list[float]:
    out = [0.0]
    for x in xs:
        out.append(out[-1] + float(x))
    return out


def partition(
    compute: Sequence[float],
    k: int,
    params: Sequence[float] | None = None,
    cut_bytes: Sequence[float] | None = None,
    allowed: Sequence[bool] | None = None,
    weights: CostWeights = CostWeights(),
) -> list[int]:
    """Return stage boundaries ``[0, b1, …, n]`` for ``k`` stages over ``n = len(compute)`` units.

    ``cut_bytes[j]`` and ``allowed[j]`` describe a cut just before unit ``j`` (index 0 and n unused).
    """
    n = len(compute)
    if k < 1:
        raise PartitionError(f"need at least one stage, got {k}")
    if k > n:
        raise PartitionError(f"cannot cut {n} units into {k} non-empty stages")
    params = params if params is not None else [0.0] * n
    cut_bytes = cut_bytes if cut_bytes is not None else [0.0] * (n + 1)
    allowed = allowed if allowed is not None else [True] * (n + 1)
    if len(params) != n or len(cut_bytes) != n + 1 or len(allowed) != n + 1:
        raise PartitionError("params must have n entries, cut_bytes and allowed n + 1")
    pc, pm = _prefix(compute), _prefix(params)
    tc, tm = pc[-1] or 1.0, pm[-1] or 1.0
    tx = max((float(cut_bytes[j]) for j in range(1, n) if allowed[j]), default=0.0) or 1.0

    def cost(i: int, j: int) -> float:
        out = cut_bytes[j] / tx if j < n else 0.0
        return (
            weights.compute * (pc[j] - pc[i]) / tc
            + weights.memory * (pm[j] - pm[i]) / tm
            + weights.comm * out
        )

    inf = (float("inf"), float("inf"))
    # best[s][j]: (bottleneck, sum) for the first j units in s stages; arg[s][j]: start of the last stage
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    arg = [[-1] * (n + 1) for _ in range(k + 1)]
    best[0][0] = (0.0, 0.0)
    for s in range(1, k + 1):
        for j in range(s, n + 1):
            if j < n and not allowed[j]:
                continue
            for i in range(s - 1, j):
                prev = best[s - 1][i]
                if prev == inf:
                    continue
                c = cost(i, j)
                cand = (max(prev[0], c), prev[1] + c)
                if cand < best[s][j]:
                    best[s][j], arg[s][j] = cand, i
    if best[k][n] == inf:
        raise PartitionError(f"no valid placement of {k - 1} cuts among the allowed positions")
    bounds = [n]
    for s in range(k, 0, -1):
        bounds.append(arg[s][bounds[-1]])
    return bounds[::-1]


def balanced_layers(n_layers: int, k: int) -> list[tuple[int, int]]:
    """Contiguous layer ranges for k blocks of identical layers (sizes differ by at most one)."""
    bounds = partition([1.0] * n_layers, k, weights=CostWeights(compute=1.0, memory=0.0, comm=0.0))
    return [(bounds[i], bounds[i + 1]) for i in range(k)]
