"""What staking needs from other modules, as protocols (it never imports their keepers).

``ModelRegistry`` is how staking checks that a miner serves a real model's real blocks: the
inference module's model registry (``nesachain.modules.inference.keeper.registered_model_blocks``).
``ValidatorHooks`` is how another module hears that a validator starts its duties afresh (the inference
keeper, whose verdict window restarts then, as x/slashing's missed-blocks counter does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from nesachain.store.kv import KVReader, KVStore
from nesachain.types.context import Context

__all__ = ["BankKeeper", "ModelRegistry", "ValidatorHooks"]


class BankKeeper(Protocol):
    def balance(self, store: KVReader, address: bytes) -> int: ...

    def balances(self, store: KVReader) -> Iterator[tuple[bytes, int]]: ...

    def supply(self, store: KVReader) -> int: ...

    def fee_pool(self, store: KVReader) -> int: ...

    def lock(self, ctx: Context, owner: bytes, amount: int) -> None: ...

    def unlock(self, ctx: Context, owner: bytes, amount: int) -> None: ...

    def burn_locked(self, ctx: Context, amount: int) -> None: ...

    def mint_genesis(self, store: KVStore, address: bytes, amount: int) -> None: ...


class ModelRegistry(Protocol):
    def model_blocks(self, store: KVReader, model_id: str) -> int | None:
        """The number of blocks of a registered model, or None if no such model."""
        ...

    def miner_in_unsettled_session(self, store: KVReader, miner: bytes) -> bool:
        """Whether a session that has not settled names the miner: its unbonding waits for it, so that
        it can still be challenged, slashed and paid."""
        ...


class ValidatorHooks(Protocol):
    def after_validator_bonded(self, ctx: Context, operator: bytes) -> None:
        """The validator joined the set or unjailed (Cosmos' AfterValidatorBonded): what counts its duties
        starts afresh."""
        ...
