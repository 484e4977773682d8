"""staking wiring: validators, delegations, slashing and miners as one app module.

Block hooks, in order:
- begin_block: double-sign evidence (slash + jail + tombstone), then liveness from the last commit
  (slash + jail on too many misses).
- end_block: matured unbondings are paid out, miners past their heartbeat deadline turn inactive,
  matured miner unbondings are paid out, then the validator set is recomputed and its changes
  returned to CometBFT (in effect two heights later).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nesachain.modules.staking import genesis
from nesachain.modules.staking.expected_keepers import BankKeeper, ModelRegistry, ValidatorHooks
from nesachain.modules.staking.keeper import StakingKeeper
from nesachain.modules.staking.miner_keeper import MinerKeeper
from nesachain.modules.staking.msg_server import MsgServer
from nesachain.modules.staking.msgs import (
    MsgCreateValidator,
    MsgDelegate,
    MsgMinerHeartbeat,
    MsgRegisterMiner,
    MsgUnbondMiner,
    MsgUndelegate,
    MsgUnjail,
    MsgUpdateMiner,
)
from nesachain.modules.staking.queries import Queries
from nesachain.modules.staking.slashing import SlashingKeeper
from nesachain.store.kv import KVReader
from nesachain.types.context import Context
from nesachain.types.module import BlockInfo, MsgHandler, QueryFn, ValidatorUpdate

__all__ = ["StakingModule"]


class StakingModule:
    name = "staking"

    def __init__(self, bank: BankKeeper, models: ModelRegistry) -> None:
        """``models``: the model registry miners register against (the inference module's)."""
        self.keeper = StakingKeeper(bank)
        self.slashing = SlashingKeeper(self.keeper)
        self.miners = MinerKeeper(self.keeper, bank, models)
        self._server = MsgServer(self.keeper, self.slashing, self.miners)
        self._queries = Queries(self.keeper, self.slashing, self.miners)

    def add_holder(self, name: str, total: Callable[[KVReader], int]) -> None:
        """Count tokens another module holds (e.g. inference escrow) in the ``staking/pool``
        supply invariant: balances + fee pool + bonded + unbonding + miner bonds + holders == supply."""
        self._queries.holders[name] = total

    def add_validator_hooks(self, hooks: ValidatorHooks) -> None:
        """Tell ``hooks`` whenever a validator joins the set or unjails."""
        self.slashing.hooks.append(hooks)

    def default_genesis(self) -> dict[str, Any]:
        return genesis.default_genesis()

    def validate_genesis(self, state: Mapping[str, Any]) -> None:
        genesis.validate_genesis(state)

    def genesis_supply(self, state: Mapping[str, Any]) -> int:
        return genesis.genesis_supply(state)

    def init_genesis(self, ctx: Context, state: Mapping[str, Any]) -> list[ValidatorUpdate]:
        return genesis.init_genesis(self.keeper, self.slashing, self.miners, ctx, state)

    def export_genesis(self, store: KVReader) -> dict[str, Any]:
        return genesis.export_genesis(self.keeper, self.slashing, self.miners, store)

    def msg_handlers(self) -> Mapping[str, MsgHandler]:
        s = self._server
        return {
            MsgCreateValidator.TYPE: s.create_validator,
            MsgDelegate.TYPE: s.delegate,
            MsgUndelegate.TYPE: s.undelegate,
            MsgUnjail.TYPE: s.unjail,
            MsgRegisterMiner.TYPE: s.register_miner,
            MsgUpdateMiner.TYPE: s.update_miner,
            MsgMinerHeartbeat.TYPE: s.miner_heartbeat,
            MsgUnbondMiner.TYPE: s.unbond_miner,
        }

    def queries(self) -> Mapping[str, QueryFn]:
        q = self._queries
        return {
            "params": q.params,
            "validators": q.validators,
            "validator": q.validator,
            "delegations": q.delegations,
            "unbonding": q.unbonding,
            "pool": q.pool,
            "miners": q.miners,
            "miner": q.miner,
        }

    def begin_block(self, ctx: Context, info: BlockInfo) -> None:
        self.slashing.begin_block(ctx, info)

    def end_block(self, ctx: Context) -> list[ValidatorUpdate]:
        self.keeper.complete_unbonding(ctx)
        self.miners.end_block(ctx)
        updates, joined = self.keeper.apply_validator_set(ctx)
        for val in joined:
            self.slashing.on_bonded(ctx, val)
        return updates
