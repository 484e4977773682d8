"""auth wiring: sequences and tx params; no Msgs of its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nesachain.modules.auth import genesis
from nesachain.modules.auth.keeper import AuthKeeper
from nesachain.store.kv import KVReader
from nesachain.types.address import check_address
from nesachain.types.context import Context
from nesachain.types.module import BlockInfo, MsgHandler, QueryFn, ValidatorUpdate

__all__ = ["AuthModule"]


class AuthModule:
    name = "auth"

    def __init__(self, keeper: AuthKeeper) -> None:
        self.keeper = keeper

    def default_genesis(self) -> dict[str, Any]:
        return genesis.default_genesis()

    def validate_genesis(self, state: Mapping[str, Any]) -> None:
        genesis.validate_genesis(state)

    def genesis_supply(self, state: Mapping[str, Any]) -> int:
        return 0  # auth holds no tokens

    def init_genesis(self, ctx: Context, state: Mapping[str, Any]) -> list[ValidatorUpdate]:
        genesis.init_genesis(self.keeper, ctx, state)
        return []

    def export_genesis(self, store: KVReader) -> dict[str, Any]:
        return genesis.export_genesis(self.keeper, store)

    def msg_handlers(self) -> Mapping[str, MsgHandler]:
        return {}

    def queries(self) -> Mapping[str, QueryFn]:
        return {"account": self._account, "params": self._params}

    def _account(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        address = params.get("address")
        if not isinstance(address, str):
            raise ValueError("query auth/account needs an 'address'")
        raw = check_address(address, "address")
        return {"address": address, "sequence": self.keeper.sequence(store, raw)}

    def _params(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.keeper.params(store).to_dict()

    def begin_block(self, ctx: Context, info: BlockInfo) -> None:
        pass

    def end_block(self, ctx: Context) -> list[ValidatorUpdate]:
        return []
