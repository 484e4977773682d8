"""bank wiring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nesachain.modules.bank import genesis
from nesachain.modules.bank.keeper import BankKeeper
from nesachain.modules.bank.msg_server import MsgServer
from nesachain.modules.bank.msgs import MsgSend
from nesachain.modules.bank.queries import Queries
from nesachain.store.kv import KVReader
from nesachain.types.context import Context
from nesachain.types.module import BlockInfo, MsgHandler, QueryFn, ValidatorUpdate

__all__ = ["BankModule"]


class BankModule:
    name = "bank"

    def __init__(self, keeper: BankKeeper) -> None:
        self.keeper = keeper
        self._server = MsgServer(keeper)
        self._queries = Queries(keeper)

    def default_genesis(self) -> dict[str, Any]:
        return genesis.default_genesis()

    def validate_genesis(self, state: Mapping[str, Any]) -> None:
        genesis.validate_genesis(state)

    def genesis_supply(self, state: Mapping[str, Any]) -> int:
        return genesis.genesis_supply(state)

    def init_genesis(self, ctx: Context, state: Mapping[str, Any]) -> list[ValidatorUpdate]:
        genesis.init_genesis(self.keeper, ctx, state)
        return []

    def export_genesis(self, store: KVReader) -> dict[str, Any]:
        return genesis.export_genesis(self.keeper, store)

    def msg_handlers(self) -> Mapping[str, MsgHandler]:
        return {MsgSend.TYPE: self._server.send}

    def queries(self) -> Mapping[str, QueryFn]:
        return {"balance": self._queries.balance, "supply": self._queries.supply}

    def begin_block(self, ctx: Context, info: BlockInfo) -> None:
        pass

    def end_block(self, ctx: Context) -> list[ValidatorUpdate]:
        return []
