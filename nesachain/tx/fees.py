"""The fee rule (a gas-like charge): what a tx must pay for the bytes it puts in every block and state
machine, and for each message it asks the chain to run.

    required fee = min_fee + fee_per_byte * (raw tx bytes) + fee_per_msg * (number of messages)

The three numbers are ``auth`` params (integers, unes). The size is the raw tx's, as CometBFT carries it
(envelope, body, public key and signature), so a wallet that wants to pay exactly the rule signs, measures
and signs again (``fee_for``): the fee sits inside the body, and a larger fee may take a byte more.

The state machine (the ante) and the wallet both call ``required_fee``, so a wallet's default fee is
what the chain asks, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FEE_PARAMS", "FeeRule", "fee_for", "required_fee"]

FEE_PARAMS = ("min_fee", "fee_per_byte", "fee_per_msg")
_MAX_ROUNDS = 8  # a fee's encoding grows by at most 8 bytes in all, so a few rounds always settle


def required_fee(tx_bytes: int, n_msgs: int, *, min_fee: int, fee_per_byte: int, fee_per_msg: int) -> int:
    """The least fee (unes) the chain takes for a tx of ``tx_bytes`` raw bytes carrying ``n_msgs``
    messages. Pure integers."""
    return min_fee + fee_per_byte * tx_bytes + fee_per_msg * n_msgs


@dataclass(frozen=True)
class FeeRule:
    """The rule's three params, as the chain's ``auth/params`` query answers them (a chain that predates
    the per-byte and per-message charges answers ``min_fee`` alone: those count 0)."""

    min_fee: int
    fee_per_byte: int = 0
    fee_per_msg: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FeeRule:
        return cls(**{k: int(params[k]) for k in FEE_PARAMS if k in params})

    def required(self, tx_bytes: int, n_msgs: int) -> int:
        return required_fee(tx_bytes, n_msgs, min_fee=self.min_fee, fee_per_byte=self.fee_per_byte,
                            fee_per_msg=self.fee_per_msg)


def fee_for(rule: FeeRule, n_msgs: int, sign: Callable[[int], bytes]) -> tuple[int, bytes]:
    """The least fee the rule takes for a tx that ``sign(fee)`` makes, and that tx's raw bytes. ``sign``
    must give the same tx but for the fee. Starts from the fee of the tx signed with a fee of 0 and
    rises until the tx signed with the fee is worth it (the size grows with the fee's encoding only)."""
    fee = rule.required(len(sign(0)), n_msgs)
    for _ in range(_MAX_ROUNDS):
        raw = sign(fee)
        needed = rule.required(len(raw), n_msgs)
        if needed <= fee:
            return fee, raw
        fee = needed
    raise ValueError("the fee rule did not settle")  # unreachable for a fee_per_byte below 2^56
