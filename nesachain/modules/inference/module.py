"""inference wiring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nesachain.modules.inference import genesis, lifecycle
from nesachain.modules.inference.events import EVENT_SESSIONS_INDEXED
from nesachain.modules.inference.genesis import GenesisBank
from nesachain.modules.inference.keeper import InferenceKeeper
from nesachain.modules.inference.msg_server import MsgServer
from nesachain.modules.inference.msgs import (
    MsgAddStandIn,
    MsgCloseSession,
    MsgCommitResult,
    MsgCommitVerdict,
    MsgOpenSession,
    MsgRegisterModel,
    MsgRevealResult,
    MsgRevealVerdict,
)
from nesachain.modules.inference.queries import Queries
from nesachain.store.kv import KVReader
from nesachain.types.context import Context
from nesachain.types.module import BlockInfo, MsgHandler, QueryFn, ValidatorUpdate

__all__ = ["InferenceModule"]


class InferenceModule:
    name = "inference"

    def __init__(self, keeper: InferenceKeeper, bank: GenesisBank) -> None:
        self.keeper = keeper
        self._bank = bank
        self._server = MsgServer(keeper)
        self._queries = Queries(keeper)

    def default_genesis(self) -> dict[str, Any]:
        return genesis.default_genesis()

    def validate_genesis(self, state: Mapping[str, Any]) -> None:
        genesis.validate_genesis(state)

    def genesis_supply(self, state: Mapping[str, Any]) -> int:
        return genesis.genesis_supply(state)

    def init_genesis(self, ctx: Context, state: Mapping[str, Any]) -> list[ValidatorUpdate]:
        genesis.init_genesis(self.keeper, self._bank, ctx, state)
        self.keeper.ensure_indexes(ctx.store)  # the sessions are indexed already: only the marker
        return []

    def export_genesis(self, store: KVReader) -> dict[str, Any]:
        return genesis.export_genesis(self.keeper, store)

    def msg_handlers(self) -> Mapping[str, MsgHandler]:
        s = self._server
        return {
            MsgRegisterModel.TYPE: s.register_model, MsgOpenSession.TYPE: s.open_session,
            MsgCloseSession.TYPE: s.close_session, MsgCommitResult.TYPE: s.commit_result,
            MsgRevealResult.TYPE: s.reveal_result, MsgCommitVerdict.TYPE: s.commit_verdict,
            MsgRevealVerdict.TYPE: s.reveal_verdict, MsgAddStandIn.TYPE: s.add_stand_in,
        }

    def queries(self) -> Mapping[str, QueryFn]:
        q = self._queries
        return {"model": q.model, "models": q.models, "session": q.session, "sessions": q.sessions,
                "params": q.params, "verifier_stats": q.verifier_stats}

    def begin_block(self, ctx: Context, info: BlockInfo) -> None:
        indexed = self.keeper.ensure_indexes(ctx.store)  # one read a block, once a chain written before them
        if indexed:
            ctx.emit(EVENT_SESSIONS_INDEXED, sessions=indexed)

    def end_block(self, ctx: Context) -> list[ValidatorUpdate]:
        lifecycle.end_block(self.keeper, ctx)
        return []
