"""staking params: bonding, the validator set, slashing and miners. All integers.

Fractions are parts per million (``PPM`` = 1_000_000 is 100 %); periods are counted in blocks so
every node agrees on them without reading a clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["PPM", "Params"]

PPM = 1_000_000


def _int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"staking.{name} must be an integer in [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class Params:
    # validators
    power_reduction: int = 1_000_000  # unes per unit of consensus power (1 NES = 1 power)
    max_validators: int = 100
    unbonding_blocks: int = 100_800  # ~1 week of 6 s blocks
    max_entries: int = 7  # unbonding entries at once per (delegator, validator) pair, as Cosmos
    min_self_delegation: int = 1_000_000  # unes an operator keeps bonded to its own validator, or it is jailed
    # slashing
    signed_blocks_window: int = 10_000
    min_signed_per_window: int = 500_000  # ppm of the window a validator must sign
    downtime_jail_blocks: int = 600
    slash_fraction_downtime: int = 100  # ppm (0.01 %)
    slash_fraction_double_sign: int = 50_000  # ppm (5 %)
    # miners
    min_miner_bond: int = 1_000_000
    miner_unbonding_blocks: int = 100_800
    miner_heartbeat_timeout: int = 100  # blocks without a heartbeat before a miner is inactive

    def validate(self) -> None:
        _int("power_reduction", self.power_reduction, 1, 10**18)
        _int("max_validators", self.max_validators, 1, 10_000)
        _int("unbonding_blocks", self.unbonding_blocks, 1, 10**9)
        _int("max_entries", self.max_entries, 1, 100)
        _int("min_self_delegation", self.min_self_delegation, 1, 2**64 - 1)
        _int("signed_blocks_window", self.signed_blocks_window, 2, 1_000_000)
        _int("min_signed_per_window", self.min_signed_per_window, 0, PPM)
        _int("downtime_jail_blocks", self.downtime_jail_blocks, 0, 10**9)
        _int("slash_fraction_downtime", self.slash_fraction_downtime, 0, PPM)
        _int("slash_fraction_double_sign", self.slash_fraction_double_sign, 0, PPM)
        _int("min_miner_bond", self.min_miner_bond, 1, 2**64 - 1)
        _int("miner_unbonding_blocks", self.miner_unbonding_blocks, 1, 10**9)
        _int("miner_heartbeat_timeout", self.miner_heartbeat_timeout, 1, 10**9)

    @property
    def max_missed_blocks(self) -> int:
        """Misses tolerated inside one window; one more jails the validator."""
        min_signed = self.signed_blocks_window * self.min_signed_per_window // PPM
        return self.signed_blocks_window - min_signed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown staking params: {sorted(unknown)}")
        p = cls(**d)
        p.validate()
        return p
