"""Integer token amounts. One denomination, ``unes`` (1 NES = 10^6 unes); no floats anywhere."""

from __future__ import annotations

__all__ = ["DENOM", "MAX_AMOUNT", "check_amount", "format_amount"]

DENOM = "unes"
# Amounts and balances are unsigned 64-bit on the wire; sums are checked against this bound.
MAX_AMOUNT = 2**64 - 1


def check_amount(value: object, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an amount, or raise ValueError saying why it is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"amount must be an integer number of {DENOM}, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"amount must not be negative, got {value}")
    if value == 0 and not allow_zero:
        raise ValueError("amount must be positive")
    if value > MAX_AMOUNT:
        raise ValueError(f"amount {value} exceeds the maximum {MAX_AMOUNT}")
    return value


def format_amount(value: int) -> str:
    return f"{value}{DENOM}"
