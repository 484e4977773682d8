"""What inference needs from other modules, as protocols (it never imports their keepers)."""

from __future__ import annotations

from typing import Protocol

from nesachain.store.kv import KVReader
from nesachain.types.context import Context

__all__ = ["BankKeeper", "MinerView", "Miners", "Validators"]


class BankKeeper(Protocol):
    def lock(self, ctx: Context, owner: bytes, amount: int) -> None: ...

    def unlock(self, ctx: Context, owner: bytes, amount: int) -> None: ...

    def locked_to_fee_pool(self, ctx: Context, amount: int) -> None: ...


class MinerView(Protocol):
    @property
    def miner(self) -> bytes: ...

    @property
    def owner(self) -> bytes: ...

    @property
    def bond(self) -> int: ...

    @property
    def model_id(self) -> str: ...

    @property
    def block_start(self) -> int: ...

    @property
    def block_end(self) -> int: ...

    @property
    def status(self) -> str: ...


class Miners(Protocol):
    def get_miner(self, store: KVReader, miner: bytes) -> MinerView | None: ...

    def record_miner_outcome(self, ctx: Context, miner: bytes, failed: bool) -> None:
        """Apply the reputation update R' = R·0.8^M·1.01^(1−M)."""
        ...

    def slash_miner(self, ctx: Context, miner: bytes, fraction_ppm: int) -> int:
        """Slash a fraction of the miner's bond; returns the amount slashed."""
        ...


class Validators(Protocol):
    def voting_power(self, store: KVReader, operator: bytes) -> int:
        """Consensus power of the bonded, unjailed validator operated by this account (0 if none)."""
        ...

    def total_voting_power(self, store: KVReader) -> int: ...

    def last_powers(self, store: KVReader) -> dict[bytes, int]:
        """Operator -> power of the validator set as last sent to CometBFT (jailed ones included)."""
        ...

    def slash(self, ctx: Context, operator: bytes, infraction_height: int, fraction_ppm: int, reason: str) -> int:
        """Burn a fraction of the stake bonded to the validator at that height (as downtime does); returns unes."""
        ...

    def jail(self, ctx: Context, operator: bytes, until: int, reason: str) -> None:
        """Jail the validator until that height (it leaves the set two heights later and may unjail then)."""
        ...
