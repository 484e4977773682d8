"""Ante checks, run before a tx's messages in CheckTx, PrepareProposal, ProcessProposal and
FinalizeBlock alike: chain id, sequence, fee (the signature was verified when the tx was decoded).
On success the fee is in the fee pool and the sequence is used, even if a message later fails (as in
the Cosmos SDK).

The fee must meet the rule of ``nesachain.tx.fees`` with the auth params in force (a charge per tx, per
raw byte and per message). A fee refusal says the required fee in its log and carries it as structured
data (``{"required_fee": n}``), so a wallet can sign again with it.

A sequence refusal carries the expected sequence as structured data (``{"expected_sequence": n}``,
canonically encoded in the tx result's data); ``sequence_expected`` reads it back. CheckTx counts
the account's txs waiting in the mempool, which the committed state does not, so a wallet that lost
its sequence to another process re-signs with that number."""

from __future__ import annotations

from typing import Protocol

from nesachain.store.kv import KVReader, KVStore
from nesachain.tx.tx import Tx
from nesachain.types.address import decode_address
from nesachain.types.context import Context
from nesachain.types.encoding import CanonicalError, decode_canonical
from nesachain.types.sdk_errors import ErrInsufficientFee, ErrInvalidChainID, ErrInvalidSequence

__all__ = ["EXPECTED_SEQUENCE", "REQUIRED_FEE", "run_ante", "sequence_expected"]

EXPECTED_SEQUENCE = "expected_sequence"  # the key of a sequence refusal's data
REQUIRED_FEE = "required_fee"  # the key of a fee refusal's data

_SEQUENCE_MISMATCH = "account {account} expects sequence {expected}, tx has {got}"


def sequence_expected(data: bytes) -> int | None:
    """The sequence a refused tx's result data says its account expects; None for any data that is
    not a sequence refusal (a success's responses, another error's payload, empty or garbage bytes).
    Pure, and never raises."""
    if not isinstance(data, bytes | bytearray) or not data:
        return None
    try:
        obj = decode_canonical(bytes(data), max_len=4096)
    except (CanonicalError, ValueError, TypeError, RecursionError):  # CanonicalError is the one expected
        return None
    if not isinstance(obj, dict):
        return None
    value = obj.get(EXPECTED_SEQUENCE)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        return None
    return value


class FeeParamsLike(Protocol):
    def required_fee(self, tx_bytes: int, n_msgs: int) -> int: ...


class AuthKeeperLike(Protocol):
    def params(self, store: KVReader) -> FeeParamsLike: ...

    def sequence(self, store: KVReader, address: bytes) -> int: ...

    def increment_sequence(self, store: KVStore, address: bytes) -> int: ...


class BankKeeperLike(Protocol):
    def collect_fee(self, ctx: Context, payer: bytes, amount: int) -> None: ...


def run_ante(ctx: Context, tx: Tx, auth: AuthKeeperLike, bank: BankKeeperLike, min_fee: int = 0) -> None:
    """``min_fee``: a floor of the caller's on top of the rule (the chain passes the params' own base,
    which the rule never goes below)."""
    body = tx.body
    if body.chain_id != ctx.chain_id:
        raise ErrInvalidChainID.wrap(f"tx is for chain {body.chain_id!r}, this chain is {ctx.chain_id!r}")
    account = decode_address(body.account)
    expected = auth.sequence(ctx.store, account)
    if body.sequence != expected:
        raise ErrInvalidSequence.wrap(_SEQUENCE_MISMATCH.format(account=body.account, expected=expected,
                                                                got=body.sequence),
                                      data={EXPECTED_SEQUENCE: expected})
    required = max(min_fee, auth.params(ctx.store).required_fee(tx.size, len(body.msgs)))
    if body.fee < required:
        raise ErrInsufficientFee.wrap(f"fee {body.fee}unes is below the required {required}unes for "
                                      f"{tx.size} bytes and {len(body.msgs)} messages",
                                      data={REQUIRED_FEE: required})
    bank.collect_fee(ctx, account, body.fee)
    auth.increment_sequence(ctx.store, account)
