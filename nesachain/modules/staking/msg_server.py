"""staking Msg handlers: address checks, amount checks, stateful checks, one keeper call, response."""

from __future__ import annotations

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from nesachain.modules.staking.errors import (
    ErrInvalidConsPossession,
    ErrInvalidMinerKey,
    ErrInvalidPossession,
    ErrSelfBondTooLow,
    ErrSelfDelegationTooLow,
)
from nesachain.modules.staking.keeper import StakingKeeper
from nesachain.modules.staking.miner_keeper import MinerKeeper
from nesachain.modules.staking.msgs import (
    MsgCreateValidator,
    MsgCreateValidatorResponse,
    MsgDelegate,
    MsgDelegateResponse,
    MsgMinerHeartbeat,
    MsgMinerHeartbeatResponse,
    MsgRegisterMiner,
    MsgRegisterMinerResponse,
    MsgUnbondMiner,
    MsgUnbondMinerResponse,
    MsgUndelegate,
    MsgUndelegateResponse,
    MsgUnjail,
    MsgUnjailResponse,
    MsgUpdateMiner,
    MsgUpdateMinerResponse,
    miner_pop_bytes,
    validator_pop_bytes,
)
from nesachain.modules.staking.slashing import SlashingKeeper
from nesachain.modules.staking.types import Miner, cons_address_hex
from nesachain.types.address import address_from_pubkey, check_address, encode_address
from nesachain.types.context import Context

__all__ = ["MsgServer"]


class MsgServer:
    def __init__(self, staking: StakingKeeper, slashing: SlashingKeeper, miners: MinerKeeper) -> None:
        self._staking = staking
        self._slashing = slashing
        self._miners = miners

    # validators
    def create_validator(self, ctx: Context, msg: MsgCreateValidator) -> MsgCreateValidatorResponse:
        operator = check_address(msg.operator, "operator")
        params = self._staking.params(ctx.store)
        if msg.amount < params.power_reduction:
            raise ErrSelfBondTooLow.wrap(f"self-bond {msg.amount}unes < power_reduction {params.power_reduction}unes")
        if msg.amount < params.min_self_delegation:
            raise ErrSelfDelegationTooLow.wrap(f"self-bond {msg.amount}unes < min_self_delegation "
                                               f"{params.min_self_delegation}unes")
        try:
            VerifyKey(msg.pubkey).verify(validator_pop_bytes(ctx.chain_id, msg.operator), msg.pop)
        except (BadSignatureError, ValueError):
            raise ErrInvalidConsPossession.wrap(f"consensus key {cons_address_hex(msg.pubkey)} did not sign "
                                                f"operator {msg.operator} on chain {ctx.chain_id!r}") from None
        self._staking.create_validator(ctx, operator, msg.pubkey, msg.moniker, msg.amount)
        return MsgCreateValidatorResponse(cons_address_hex(msg.pubkey))

    def delegate(self, ctx: Context, msg: MsgDelegate) -> MsgDelegateResponse:
        delegator = check_address(msg.delegator, "delegator")
        operator = check_address(msg.validator, "validator")
        return MsgDelegateResponse(self._staking.delegate(ctx, delegator, operator, msg.amount))

    def undelegate(self, ctx: Context, msg: MsgUndelegate) -> MsgUndelegateResponse:
        delegator = check_address(msg.delegator, "delegator")
        operator = check_address(msg.validator, "validator")
        entry = self._staking.undelegate(ctx, delegator, operator, msg.amount)
        return MsgUndelegateResponse(entry.completion_height)

    def unjail(self, ctx: Context, msg: MsgUnjail) -> MsgUnjailResponse:
        self._slashing.unjail(ctx, check_address(msg.operator, "operator"))
        return MsgUnjailResponse()

    # miners
    def register_miner(self, ctx: Context, msg: MsgRegisterMiner) -> MsgRegisterMinerResponse:
        owner = check_address(msg.owner, "owner")
        miner = address_from_pubkey(msg.pubkey)
        if miner == owner:
            raise ErrInvalidMinerKey.wrap("the miner key must differ from the owner's account key")
        try:
            VerifyKey(msg.pubkey).verify(miner_pop_bytes(ctx.chain_id, msg.owner), msg.pop)
        except (BadSignatureError, ValueError):
            raise ErrInvalidPossession.wrap(f"for miner {encode_address(miner)} and owner {msg.owner}") from None
        record = Miner(miner, owner, msg.pubkey, msg.endpoint, msg.bond, msg.model_id, msg.block_start,
                       msg.block_end, msg.memory_mb, msg.throughput)
        self._miners.register(ctx, record)
        return MsgRegisterMinerResponse(encode_address(miner))

    def update_miner(self, ctx: Context, msg: MsgUpdateMiner) -> MsgUpdateMinerResponse:
        owner = check_address(msg.owner, "owner")
        miner = check_address(msg.miner, "miner")
        self._miners.update(ctx, owner, miner, msg.endpoint, msg.block_start, msg.block_end, msg.memory_mb,
                            msg.throughput)
        return MsgUpdateMinerResponse(msg.miner)

    def miner_heartbeat(self, ctx: Context, msg: MsgMinerHeartbeat) -> MsgMinerHeartbeatResponse:
        self._miners.heartbeat(ctx, check_address(msg.owner, "owner"), check_address(msg.miner, "miner"))
        return MsgMinerHeartbeatResponse(msg.miner)

    def unbond_miner(self, ctx: Context, msg: MsgUnbondMiner) -> MsgUnbondMinerResponse:
        m = self._miners.unbond(ctx, check_address(msg.owner, "owner"), check_address(msg.miner, "miner"))
        return MsgUnbondMinerResponse(msg.miner, m.unbond_height)
