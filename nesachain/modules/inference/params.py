"""inference params: windows in blocks, rates and fractions in parts per million (integers)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["PPM", "Params"]

PPM = 1_000_000


@dataclass(frozen=True)
class Params:
    commit_window: int = 10  # blocks after a session closes for miners to commit their step-log root
    reveal_window: int = 10  # then blocks to reveal root and salt
    challenge_rate_ppm: int = 100_000  # chance each revealed (session, miner) is challenged
    verdict_commit_window: int = 10  # blocks for validators to commit verdicts on challenges
    verdict_reveal_window: int = 10  # then blocks to reveal them
    slash_fraction_ppm: int = 100_000  # of a miner's bond, on a 2/3 mismatch verdict
    protocol_fee_ppm: int = 20_000  # of the miners' pay, to the fee pool
    session_timeout: int = 600  # blocks an open session may stay open before it closes with no tokens
    min_model_deposit: int = 1_000_000
    max_route_hops: int = 64
    max_undecided_rounds: int = 3  # rounds of challenges on one hop that decide nothing before its share goes back
    verifier_reward_ppm: int = 500_000  # of a session's fee, to validators whose verdicts agreed with the outcome
    # missed verdicts (verdict_window.py; x/slashing's downtime rule over challenges instead of blocks)
    verdict_window: int = 100  # the last challenges counted per validator
    min_verdict_share_ppm: int = 500_000  # of them a validator must reveal a verdict on (an abstain counts)
    miss_slash_ppm: int = 100  # of its stake, burned when it misses more (0.01 %, as downtime)
    verdict_jail_blocks: int = 600  # then it is jailed this long (as downtime_jail_blocks)

    def validate(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"inference.{f.name} must be a non-negative integer")
        for name in ("challenge_rate_ppm", "slash_fraction_ppm", "protocol_fee_ppm", "verifier_reward_ppm",
                     "min_verdict_share_ppm", "miss_slash_ppm"):
            if getattr(self, name) > PPM:
                raise ValueError(f"inference.{name} must be at most {PPM}")
        for name in ("commit_window", "reveal_window", "verdict_commit_window", "verdict_reveal_window",
                     "session_timeout", "max_route_hops", "max_undecided_rounds", "verdict_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"inference.{name} must be at least 1")
        if self.verdict_window > 10_000:
            raise ValueError("inference.verdict_window must be at most 10000 (its bitmap is one state entry)")

    @property
    def max_missed_verdicts(self) -> int:
        """Misses tolerated inside one verdict window; one more slashes and jails the validator."""
        return self.verdict_window - self.verdict_window * self.min_verdict_share_ppm // PPM

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown inference params: {sorted(unknown)}")
        p = cls(**d)
        p.validate()
        return p
