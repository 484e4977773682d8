"""bank messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from nesachain.tx.msg import register_msg
from nesachain.types.address import check_address
from nesachain.types.coin import check_amount
from nesachain.types.sdk_errors import ErrInvalidCoins

__all__ = ["MsgSend", "MsgSendResponse"]


@register_msg
@dataclass(frozen=True)
class MsgSend:
    TYPE: ClassVar[str] = "bank/MsgSend"
    from_address: str
    to_address: str
    amount: int

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> MsgSend:
        if set(fields) != {"from_address", "to_address", "amount"}:
            raise ValueError("expected fields from_address, to_address, amount")
        if not isinstance(fields["from_address"], str) or not isinstance(fields["to_address"], str):
            raise ValueError("addresses must be strings")
        return cls(fields["from_address"], fields["to_address"], fields["amount"])

    def to_fields(self) -> dict[str, Any]:
        return {"from_address": self.from_address, "to_address": self.to_address, "amount": self.amount}

    def validate_basic(self) -> None:
        check_address(self.from_address, "from_address")
        check_address(self.to_address, "to_address")
        try:
            check_amount(self.amount)
        except ValueError as exc:
            raise ErrInvalidCoins.wrap(str(exc)) from None

    def signer(self) -> str:
        return self.from_address


@dataclass(frozen=True)
class MsgSendResponse:
    pass
