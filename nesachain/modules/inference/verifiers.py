"""Validators as verifiers: what each did with the challenges it was asked to judge, and its share of a
session's protocol fee for verdicts that agreed with the decided outcome (docs/protocol.md, "Verifier
incentives"; modelled on Terra's x/oracle: voters with the outcome share a reward, misses are counted per
validator, and abstaining is counted apart from missing).

At each challenge's tally, every validator with voting power is counted once: ``agreed`` (it revealed the
decided outcome, "match" or "mismatch"), ``disagreed`` (it revealed the other one), ``undecided`` (it revealed
a verdict on a challenge that ended contested or undecided), ``abstained`` (it revealed "abstain": it could not
check) or ``missed`` (it revealed nothing). At settlement, ``verifier_reward_ppm`` of the session's fee is split
evenly over its challenges decided "match" or "mismatch", and each one's part among the validators that revealed
that outcome, by voting power (rounded down; the remainder stays in the fee pool's share). Each count also goes
into the validator's verdict window (``verdict_window.py``), where too many misses slash and jail it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from nesachain.modules.inference import keys, verdict_window
from nesachain.modules.inference.events import EVENT_VERIFIER_REWARDED
from nesachain.modules.inference.expected_keepers import BankKeeper, Validators
from nesachain.modules.inference.params import PPM, Params
from nesachain.modules.inference.types import ABSTAIN, MATCH, MISMATCH, Challenge, Session
from nesachain.store.kv import KVReader, KVStore, prefix_end
from nesachain.types.address import decode_address, encode_address
from nesachain.types.context import Context
from nesachain.types.encoding import decode_canonical, encode

__all__ = ["VerifierStats", "all_stats", "count_tally", "reward_verifiers", "set_stats", "stats"]

COUNTS = ("challenges", "agreed", "disagreed", "undecided", "abstained", "missed", "rewards")


@dataclass(frozen=True)
class VerifierStats:
    validator: bytes  # the operator account
    challenges: int = 0  # tallied while it had voting power
    agreed: int = 0
    disagreed: int = 0
    undecided: int = 0  # a verdict on a challenge that ended contested or undecided
    abstained: int = 0
    missed: int = 0
    rewards: int = 0  # unes earned, in all

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "validator": encode_address(self.validator)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VerifierStats:
        """Raises KeyError, TypeError or ValueError on a malformed entry."""
        if set(d) != {f.name for f in fields(cls)}:
            raise ValueError(f"a verifier_stats entry has exactly {sorted(f.name for f in fields(cls))}")
        for name in COUNTS:
            if isinstance(d[name], bool) or not isinstance(d[name], int) or not 0 <= d[name] < 2**64:
                raise ValueError(f"verifier_stats.{name} must be an integer in [0, 2^64-1], got {d[name]!r}")
        return cls(**{**d, "validator": decode_address(d["validator"])})


def stats(store: KVReader, validator: bytes) -> VerifierStats:
    raw = store.get(keys.verifier_key(validator))
    return VerifierStats(validator) if raw is None else VerifierStats(validator, **decode_canonical(raw))


def set_stats(store: KVStore, st: VerifierStats) -> None:
    store.set(keys.verifier_key(st.validator), encode({name: getattr(st, name) for name in COUNTS}))


def all_stats(store: KVReader) -> Iterator[VerifierStats]:
    for key, raw in store.iterate(keys.VERIFIER, prefix_end(keys.VERIFIER)):
        validator = key[len(keys.VERIFIER) + 1 :]  # VERIFIER + lp(validator): the rest of the key
        yield VerifierStats(validator, **decode_canonical(raw))


def count_tally(validators: Validators, ctx: Context, p: Params, session_id: int, index: int, c: Challenge,
                outcome: str) -> None:
    """Count what every validator with voting power did with challenge ``index`` of the session, tallied as
    ``outcome``, and each one's verdict or miss in its verdict window (which may slash and jail it)."""
    store = ctx.store
    for operator in sorted(validators.last_powers(store)):
        if validators.voting_power(store, operator) <= 0:  # jailed or out of the set: not expected to vote
            continue
        verdict = c.reveals.get(operator.hex())
        if verdict is None:
            field = "missed"
        elif verdict == ABSTAIN:
            field = "abstained"
        elif outcome in (MATCH, MISMATCH):
            field = "agreed" if verdict == outcome else "disagreed"
        else:
            field = "undecided"
        st = stats(store, operator)
        set_stats(store, replace(st, challenges=st.challenges + 1, **{field: getattr(st, field) + 1}))
        verdict_window.record(validators, ctx, p, operator, field == "missed", session_id=session_id,
                              challenge=index)


def reward_verifiers(bank: BankKeeper, validators: Validators, ctx: Context, s: Session, fee: int,
                     reward_ppm: int) -> int:
    """Pay the validators that revealed each decided challenge's outcome their share of ``reward_ppm`` of
    ``fee``, out of the session's escrow; returns the unes paid."""
    decided = [c for c in s.challenges if c.outcome in (MATCH, MISMATCH)]
    pool = fee * reward_ppm // PPM
    if not decided or not pool:
        return 0
    earned: dict[bytes, int] = {}
    for c in decided:
        voters = sorted(bytes.fromhex(v) for v, verdict in c.reveals.items() if verdict == c.outcome)
        powers = {op: validators.voting_power(ctx.store, op) for op in voters}
        total = sum(powers.values())
        for op in voters:
            if total and powers[op]:
                earned[op] = earned.get(op, 0) + pool // len(decided) * powers[op] // total
    paid = 0
    for op, amount in sorted(earned.items()):
        if amount:
            bank.unlock(ctx, op, amount)
            st = stats(ctx.store, op)
            set_stats(ctx.store, replace(st, rewards=st.rewards + amount))
            ctx.emit(EVENT_VERIFIER_REWARDED, session_id=s.id, validator=encode_address(op), amount=amount)
            paid += amount
    return paid
