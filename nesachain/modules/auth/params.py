"""auth params: what a tx must pay and how large it may be.

The fee rule (``nesachain.tx.fees``): a tx pays at least
``min_fee + fee_per_byte * raw tx bytes + fee_per_msg * messages``, all to the fee pool. The per-byte and
per-message charges default to 0 here (a genesis that names only ``min_fee`` keeps a flat fee); the
shipped genesis templates set them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from nesachain.tx.fees import required_fee

__all__ = ["Params"]

MAX_FEE_PARAM = 10**12  # unes; keeps the largest required fee (4 MiB at this per byte) an ordinary integer


def _int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"auth.{name} must be an integer in [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class Params:
    min_fee: int = 1000  # unes every tx pays, the base of the fee rule
    max_tx_bytes: int = 64 * 1024
    fee_per_byte: int = 0  # unes per raw tx byte
    fee_per_msg: int = 0  # unes per message a tx carries

    def validate(self) -> None:
        _int("min_fee", self.min_fee, 0, MAX_FEE_PARAM)
        _int("max_tx_bytes", self.max_tx_bytes, 256, 4 * 1024 * 1024)
        _int("fee_per_byte", self.fee_per_byte, 0, MAX_FEE_PARAM)
        _int("fee_per_msg", self.fee_per_msg, 0, MAX_FEE_PARAM)

    def required_fee(self, tx_bytes: int, n_msgs: int) -> int:
        """The least fee of a tx of ``tx_bytes`` raw bytes carrying ``n_msgs`` messages."""
        return required_fee(tx_bytes, n_msgs, min_fee=self.min_fee, fee_per_byte=self.fee_per_byte,
                            fee_per_msg=self.fee_per_msg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown auth params: {sorted(unknown)}")
        p = cls(**d)
        p.validate()
        return p
