"""bank Msg handlers: address checks, amount checks, stateful checks, one keeper call, response."""

from __future__ import annotations

from nesachain.modules.bank.keeper import BankKeeper
from nesachain.modules.bank.msgs import MsgSend, MsgSendResponse
from nesachain.types.address import check_address
from nesachain.types.context import Context

__all__ = ["MsgServer"]


class MsgServer:
    def __init__(self, keeper: BankKeeper) -> None:
        self._keeper = keeper

    def send(self, ctx: Context, msg: MsgSend) -> MsgSendResponse:
        sender = check_address(msg.from_address, "from_address")
        recipient = check_address(msg.to_address, "to_address")
        self._keeper.send(ctx, sender, recipient, msg.amount)
        return MsgSendResponse()
