"""auth params: what a tx must pay and how large it may be."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Params"]


@dataclass(frozen=True)
class Params:
    min_fee: int = 1000  # unes per tx, goes to the fee pool
    max_tx_bytes: int = 64 * 1024

    def validate(self) -> None:
        if isinstance(self.min_fee, bool) or not isinstance(self.min_fee, int) or self.min_fee < 0:
            raise ValueError("auth.min_fee must be a non-negative integer")
        if not isinstance(self.max_tx_bytes, int) or not 256 <= self.max_tx_bytes <= 4 * 1024 * 1024:
            raise ValueError("auth.max_tx_bytes must be an integer in [256, 4 MiB]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        unknown = set(d) - {"min_fee", "max_tx_bytes"}
        if unknown:
            raise ValueError(f"unknown auth params: {sorted(unknown)}")
        p = cls(**d)
        p.validate()
        return p
