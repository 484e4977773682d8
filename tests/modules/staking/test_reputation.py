"""Fixed-point reputation: R' = R·0.8^M·1.01^(1−M), clamped to [0.1, 10], floor rounding."""

from __future__ import annotations

from fractions import Fraction

import pytest

from nesachain.modules.staking.reputation import (
    MAX_REPUTATION,
    MIN_REPUTATION,
    SCALE,
    START_REPUTATION,
    format_reputation,
    next_reputation,
)


def test_reputation_starts_at_one_and_follows_the_formula_exactly() -> None:
    assert START_REPUTATION == 1_000_000
    assert next_reputation(START_REPUTATION, failed=True) == 800_000
    assert next_reputation(START_REPUTATION, failed=False) == 1_010_000
    assert next_reputation(800_000, failed=True) == 640_000
    assert next_reputation(1_010_000, failed=False) == 1_020_100


def test_reputation_rounds_down_each_step() -> None:
    # 0.8^7 = 0.2097152 -> 209715 (floor), then 209715 * 0.8 = 167772.0
    r = START_REPUTATION
    for _ in range(7):
        r = next_reputation(r, failed=True)
    assert r == 209_715
    assert next_reputation(r, failed=True) == 167_772
    assert next_reputation(333_333, failed=False) == 336_666  # 336666.33 -> floor


@pytest.mark.parametrize("seed", range(5))
def test_reputation_matches_exact_rational_arithmetic_within_one_ulp_per_step(seed: int) -> None:
    import random

    rng = random.Random(seed)
    r, exact = START_REPUTATION, Fraction(1)
    for _ in range(50):
        failed = rng.random() < 0.3
        r = next_reputation(r, failed)
        exact = min(Fraction(10), max(Fraction(1, 10), exact * (Fraction(4, 5) if failed else Fraction(101, 100))))
        # floor loses < 1 ulp per step and the factors are <= 1.01, so the drift stays tiny
        assert abs(Fraction(r, SCALE) - exact) <= Fraction(60, SCALE)


def test_reputation_clamps_at_the_floor() -> None:
    r = START_REPUTATION
    seen = []
    for _ in range(12):
        r = next_reputation(r, failed=True)
        seen.append(r)
    assert seen[9] == 107_373  # 0.8^10 = 0.1073741824 after floors
    assert seen[10] == MIN_REPUTATION  # 85898 clamps up to 0.1
    assert seen[11] == MIN_REPUTATION
    assert next_reputation(MIN_REPUTATION, failed=False) == 101_000


def test_reputation_clamps_at_the_ceiling() -> None:
    assert next_reputation(9_950_000, failed=False) == MAX_REPUTATION  # 10.0495 -> 10
    assert next_reputation(MAX_REPUTATION, failed=False) == MAX_REPUTATION
    assert next_reputation(MAX_REPUTATION, failed=True) == 8_000_000


def test_reputation_formats_as_an_exact_decimal() -> None:
    assert format_reputation(1_020_100) == "1.020100"
    assert format_reputation(MIN_REPUTATION) == "0.100000"
    assert format_reputation(MAX_REPUTATION) == "10.000000"
