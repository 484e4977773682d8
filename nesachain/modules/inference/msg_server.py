"""inference Msg handlers: address checks, amount checks, stateful checks, one keeper call, response."""

from __future__ import annotations

from nesachain.modules.inference.keeper import InferenceKeeper
from nesachain.modules.inference.msgs import (
    MsgAddStandIn,
    MsgAddStandInResponse,
    MsgCloseSession,
    MsgCloseSessionResponse,
    MsgCommitResult,
    MsgCommitResultResponse,
    MsgCommitVerdict,
    MsgCommitVerdictResponse,
    MsgOpenSession,
    MsgOpenSessionResponse,
    MsgRegisterModel,
    MsgRegisterModelResponse,
    MsgRevealResult,
    MsgRevealResultResponse,
    MsgRevealVerdict,
    MsgRevealVerdictResponse,
)
from nesachain.modules.inference.types import Model
from nesachain.types.address import check_address
from nesachain.types.context import Context
from nesachain.types.sdk_errors import ErrUnauthorized

__all__ = ["MsgServer"]


class MsgServer:
    def __init__(self, keeper: InferenceKeeper) -> None:
        self._k = keeper

    def register_model(self, ctx: Context, msg: MsgRegisterModel) -> MsgRegisterModelResponse:
        owner = check_address(msg.owner, "owner")
        self._k.register_model(ctx, Model(msg.model_id, owner, msg.architecture, msg.n_blocks,
                                          tuple(msg.block_hashes), msg.price, msg.deposit))
        return MsgRegisterModelResponse(msg.model_id)

    def open_session(self, ctx: Context, msg: MsgOpenSession) -> MsgOpenSessionResponse:
        client = check_address(msg.client, "client")
        route = [(check_address(m, "route miner"), a, b) for m, a, b in msg.route]
        s = self._k.open_session(ctx, client, msg.model_id, route, msg.max_tokens, msg.escrow)
        return MsgOpenSessionResponse(s.id)

    def close_session(self, ctx: Context, msg: MsgCloseSession) -> MsgCloseSessionResponse:
        client = check_address(msg.client, "client")
        s = self._k.must_session(ctx.store, msg.session_id)
        if s.client != client:
            raise ErrUnauthorized.wrap(f"only the session's client may close session {s.id}")
        s = self._k.close_session(ctx, s, msg.tokens)
        return MsgCloseSessionResponse(s.id, s.tokens)

    def add_stand_in(self, ctx: Context, msg: MsgAddStandIn) -> MsgAddStandInResponse:
        client, miner = check_address(msg.client, "client"), check_address(msg.miner, "miner")
        s = self._k.must_session(ctx.store, msg.session_id)
        if s.client != client:
            raise ErrUnauthorized.wrap(f"only the session's client may report stand-ins in session {s.id}")
        s = self._k.add_stand_in(ctx, s, msg.hop, miner, msg.from_token, msg.attempt)
        return MsgAddStandInResponse(s.id, len(s.hops) - 1)

    def commit_result(self, ctx: Context, msg: MsgCommitResult) -> MsgCommitResultResponse:
        owner, miner = check_address(msg.owner, "owner"), check_address(msg.miner, "miner")
        self._k.commit_result(ctx, msg.session_id, owner, miner, msg.commitment)
        return MsgCommitResultResponse()

    def reveal_result(self, ctx: Context, msg: MsgRevealResult) -> MsgRevealResultResponse:
        owner, miner = check_address(msg.owner, "owner"), check_address(msg.miner, "miner")
        self._k.reveal_result(ctx, msg.session_id, owner, miner, msg.root, msg.salt, msg.n_steps)
        return MsgRevealResultResponse()

    def commit_verdict(self, ctx: Context, msg: MsgCommitVerdict) -> MsgCommitVerdictResponse:
        validator = check_address(msg.validator, "validator")
        self._k.commit_verdict(ctx, msg.session_id, msg.challenge, validator, msg.commitment)
        return MsgCommitVerdictResponse()

    def reveal_verdict(self, ctx: Context, msg: MsgRevealVerdict) -> MsgRevealVerdictResponse:
        validator = check_address(msg.validator, "validator")
        self._k.reveal_verdict(ctx, msg.session_id, msg.challenge, validator, msg.verdict, msg.salt)
        return MsgRevealVerdictResponse()
