"""Missed verdicts: a validator that reveals nothing on more than its share of the last challenges is slashed a
little and jailed, like downtime (docs/protocol.md, "Verifier incentives").

Modelled on the Cosmos x/slashing downtime rule (``signed_blocks_window`` / ``min_signed_per_window`` over a bit
array of missed blocks), with tallied challenges for blocks: each validator with voting power has a bit array over
the last ``verdict_window`` challenges tallied while it had power, a bit set where it revealed nothing. Once its
window is full (``verdict_window`` challenges counted since it started) and its misses in it exceed
``max_missed_verdicts`` (``verdict_window − ⌊verdict_window × min_verdict_share_ppm / 10^6⌋``), it is slashed
``miss_slash_ppm`` of its stake (burned through staking's slash, as downtime is) and jailed for
``verdict_jail_blocks``, and its window is cleared. An abstain is a verdict, never a miss.

A jailed validator has no voting power, so it is not counted (it is not expected to vote); staking's validator
hook clears its window when it unjails or (re)joins the set, as x/slashing resets its missed-blocks counter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from nesachain.modules.inference import keys
from nesachain.modules.inference.events import EVENT_VERDICT_MISSED, EVENT_VERIFIER_JAILED
from nesachain.modules.inference.expected_keepers import Validators
from nesachain.modules.inference.params import Params
from nesachain.store.kv import KVReader, KVStore, prefix_end
from nesachain.types.address import decode_address, encode_address
from nesachain.types.context import Context
from nesachain.types.encoding import decode_canonical, encode

__all__ = ["MISSED_VERDICTS", "VerdictWindow", "all_windows", "record", "reset", "set_window", "window"]

MISSED_VERDICTS = "missed_verdicts"  # the slash and jail reason


@dataclass(frozen=True)
class VerdictWindow:
    validator: bytes  # the operator account
    counted: int = 0  # challenges counted since the window started; the next one takes bit counted % window
    missed: int = 0  # bits set: misses among the last min(counted, window) challenges
    bitmap: bytes = b""  # ⌈window / 8⌉ bytes; bit i is bit i % 8 of byte i // 8

    def to_json(self) -> dict[str, Any]:
        return {"validator": encode_address(self.validator), "counted": self.counted, "missed": self.missed,
                "bitmap": self.bitmap.hex()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VerdictWindow:
        """Raises KeyError, TypeError or ValueError on a malformed entry."""
        if set(d) != {f.name for f in fields(cls)}:
            raise ValueError(f"a verdict_windows entry has exactly {sorted(f.name for f in fields(cls))}")
        for name in ("counted", "missed"):
            if isinstance(d[name], bool) or not isinstance(d[name], int) or not 0 <= d[name] < 2**64:
                raise ValueError(f"verdict_windows.{name} must be an integer in [0, 2^64-1], got {d[name]!r}")
        w = cls(decode_address(d["validator"]), d["counted"], d["missed"], bytes.fromhex(d["bitmap"]))
        if w.missed != sum(bin(b).count("1") for b in w.bitmap) or w.missed > w.counted:
            raise ValueError(f"verdict_windows: missed {w.missed} does not match its bitmap or its count")
        return w


def window(store: KVReader, validator: bytes) -> VerdictWindow:
    raw = store.get(keys.verdict_window_key(validator))
    if raw is None:
        return VerdictWindow(validator)
    d = decode_canonical(raw)
    return VerdictWindow(validator, d["counted"], d["missed"], d["bitmap"])


def set_window(store: KVStore, w: VerdictWindow) -> None:
    store.set(keys.verdict_window_key(w.validator), encode({"counted": w.counted, "missed": w.missed,
                                                             "bitmap": w.bitmap}))


def all_windows(store: KVReader) -> Iterator[VerdictWindow]:
    for key, _ in store.iterate(keys.VERDICT_WINDOW, prefix_end(keys.VERDICT_WINDOW)):
        yield window(store, key[len(keys.VERDICT_WINDOW) + 1 :])  # VERDICT_WINDOW + lp(validator)


def reset(store: KVStore, validator: bytes) -> None:
    """Start the validator's window afresh (it unjailed, or joined the set)."""
    store.delete(keys.verdict_window_key(validator))


def record(validators: Validators, ctx: Context, p: Params, operator: bytes, missed: bool, *, session_id: int,
           challenge: int) -> None:
    """Count one tallied challenge in ``operator``'s window (``missed``: it revealed nothing); past the allowed
    share of misses in a full window, slash it ``miss_slash_ppm`` and jail it for ``verdict_jail_blocks``."""
    n = p.verdict_window
    w = window(ctx.store, operator)
    if len(w.bitmap) != (n + 7) // 8:  # a new window, or verdict_window changed: start afresh
        w = VerdictWindow(operator, bitmap=bytes((n + 7) // 8))
    i = w.counted % n
    bits = bytearray(w.bitmap)
    was = bits[i // 8] >> (i % 8) & 1
    if missed:
        bits[i // 8] |= 1 << (i % 8)
    else:
        bits[i // 8] &= 0xFF ^ (1 << (i % 8))
    w = VerdictWindow(operator, w.counted + 1, w.missed + int(missed) - was, bytes(bits))
    if missed:
        ctx.emit(EVENT_VERDICT_MISSED, session_id=session_id, challenge=challenge,
                 validator=encode_address(operator), missed=w.missed, window=n)
    if w.counted >= n and w.missed > p.max_missed_verdicts:
        # the stake bonded before this block, which counted the miss that crossed the line
        slashed = validators.slash(ctx, operator, max(ctx.height - 1, 0), p.miss_slash_ppm, MISSED_VERDICTS)
        until = ctx.height + p.verdict_jail_blocks
        validators.jail(ctx, operator, until, MISSED_VERDICTS)
        reset(ctx.store, operator)
        ctx.emit(EVENT_VERIFIER_JAILED, validator=encode_address(operator), missed=w.missed, window=n,
                 slashed=slashed, jailed_until=until)
        return
    set_window(ctx.store, w)
