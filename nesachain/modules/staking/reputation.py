"""Miner reputation as fixed-point integers (docs/protocol.md).

R lives in [0.1, 10] and starts at 1. After each judged outcome

    R' = clamp(R · Pen^M · Rew^(1−M), 0.1, 10),   Pen = 0.8, Rew = 1.01, M = 1 on a failure else 0

so a failure multiplies by 0.8 and a success by 1.01. R is stored as an integer count of
1/SCALE (SCALE = 10^6): 1.0 is 1_000_000. Each step rounds down (floor), which every node computes
identically; the clamp is applied after rounding.
"""

from __future__ import annotations

__all__ = ["MAX_REPUTATION", "MIN_REPUTATION", "PENALTY", "REWARD", "SCALE", "START_REPUTATION",
           "format_reputation", "next_reputation"]

SCALE = 1_000_000
MIN_REPUTATION = SCALE // 10  # 0.1
MAX_REPUTATION = 10 * SCALE  # 10
START_REPUTATION = SCALE  # 1
PENALTY = 800_000  # 0.8
REWARD = 1_010_000  # 1.01


def next_reputation(r: int, failed: bool) -> int:
    """One update of R (fixed point) after a failed (M = 1) or passed (M = 0) check."""
    factor = PENALTY if failed else REWARD
    return max(MIN_REPUTATION, min(MAX_REPUTATION, r * factor // SCALE))


def format_reputation(r: int) -> str:
    """``1234567`` -> ``"1.234567"`` (exact decimal, for queries)."""
    return f"{r // SCALE}.{r % SCALE:06d}"
