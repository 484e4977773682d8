"""Build, sign, broadcast and await txs: what the CLI, tests and benches share."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from typing import Any

from nacl.signing import SigningKey

from nesachain.errors import ConfigError, RPCError
from nesachain.tx.ante import sequence_expected
from nesachain.tx.fees import FeeRule, fee_for
from nesachain.tx.msg import Msg
from nesachain.tx.tx import TxBody, check_body_fields, sign_tx
from nesachain.types.address import address_from_pubkey, encode_address
from nesachain.types.encoding import decode_canonical
from nesachain.types.errors import ChainError
from nesachain.types.sdk_errors import ErrInvalidSequence
from nesachain.wallet import queries
from nesachain.wallet.rpc import CometRPC

__all__ = ["SEQUENCE_RETRIES", "SignedTx", "TxOutcome", "account_of", "check_msgs", "prepare_msgs", "send_msgs",
           "sign_msgs"]

SEQUENCE_RETRIES = 4  # what the wallet and the agents pass as send_msgs' ``retries``


@dataclass(frozen=True)
class TxOutcome:
    hash: str
    height: int
    code: int
    codespace: str
    log: str
    stage: str  # "check" (refused by CheckTx) or "deliver" (in a block)
    # the tx result's data: for a tx taken, the canonical msgpack list of its msgs' responses; for a refusal,
    # its structured detail (``tx.ante.sequence_expected`` reads a sequence refusal's)
    data: bytes = b""

    def responses(self) -> list[dict[str, Any]]:
        """Each msg's typed response, as the chain encoded it (none for a refused tx)."""
        if not self.ok or not self.data:
            return []
        out: list[dict[str, Any]] = decode_canonical(self.data)
        return out

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def sequence_taken(self) -> bool:
        """Refused in CheckTx, or dropped at recheck, because another tx of the account (an agent's,
        perhaps sent through another node) took the sequence first: sending again may succeed."""
        return self.stage == "check" and self.codespace == "sdk" and self.code == ErrInvalidSequence.code

    def to_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, "height": self.height, "code": self.code,
                "codespace": self.codespace, "log": self.log, "stage": self.stage}


@dataclass(frozen=True)
class SignedTx:
    """A signed tx not sent: what ``nesad tx … --dry-run`` shows."""

    raw: bytes
    account: str
    sequence: int
    fee: int  # the fee it carries
    required_fee: int  # what the chain's fee rule asks of it
    n_msgs: int

    @property
    def size(self) -> int:
        return len(self.raw)

    def to_dict(self) -> dict[str, Any]:
        return {"account": self.account, "sequence": self.sequence, "bytes": self.size, "msgs": self.n_msgs,
                "fee": self.fee, "required_fee": self.required_fee}


def sign_msgs(key: SigningKey, msgs: list[Msg], *, chain_id: str, sequence: int, rule: FeeRule,
              fee: int | None = None, memo: str = "") -> SignedTx:
    """Sign a tx of ``msgs``. Without ``fee``, it pays exactly what ``rule`` asks of the signed tx
    (its raw bytes and its messages); with one, it pays that (perhaps too little: the chain says so)."""
    account = account_of(key)

    def sign(with_fee: int) -> bytes:
        return sign_tx(TxBody(chain_id, account, sequence, with_fee, tuple(msgs), memo), key)

    if fee is None:
        fee, raw = fee_for(rule, len(msgs), sign)
    else:
        raw = sign(fee)
    return SignedTx(raw, account, sequence, fee, rule.required(len(raw), len(msgs)), len(msgs))


def prepare_msgs(rpc: CometRPC, key: SigningKey, msgs: list[Msg], *, chain_id: str | None = None,
                 fee: int | None = None, memo: str = "", sequence: int | None = None) -> SignedTx:
    """Sign a tx as ``send_msgs`` would (chain id, sequence and fee rule read from the chain) without
    sending it."""
    return sign_msgs(key, msgs, chain_id=chain_id or rpc.chain_id(),
                     sequence=queries.account_sequence(rpc, account_of(key)) if sequence is None else sequence,
                     rule=queries.fee_rule(rpc), fee=fee, memo=memo)


def account_of(key: SigningKey) -> str:
    return encode_address(address_from_pubkey(bytes(key.verify_key)))


_ACCOUNT_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _account_lock(account: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _ACCOUNT_LOCKS.setdefault(account, threading.Lock())


def check_msgs(msgs: list[Msg], *, sequence: int | None = None, fee: int | None = None, memo: str = "") -> None:
    """The chain's stateless checks (ValidateBasic, and the tx body's), run before any key is unlocked
    or node contacted: what the chain would refuse in CheckTx is refused here, with the same code and text."""
    try:
        check_body_fields(sequence, fee, memo, len(msgs))
        for msg in msgs:
            msg.validate_basic()
    except ChainError as exc:
        raise ConfigError(f"not sent: the chain would refuse it with code {exc.code} ({exc.codespace}): "
                          f"{exc.log}") from None


def send_msgs(
    rpc: CometRPC,
    key: SigningKey,
    msgs: list[Msg],
    *,
    chain_id: str | None = None,
    fee: int | None = None,
    memo: str = "",
    sequence: int | None = None,
    wait: bool = True,
    timeout: float = 30.0,
    retries: int = 0,
) -> TxOutcome:
    """Sign, broadcast and (with ``wait``) await one tx. With ``retries``, a tx whose sequence another
    tx of the account took first (``TxOutcome.sequence_taken``: a validator's verifier and a miner's
    agents sign with the operator's account, perhaps through other nodes) is signed again with the
    sequence read anew, up to that many times; never when ``sequence`` is given."""
    account = account_of(key)
    attempt = 0
    expected: int | None = None
    while True:
        # one account's txs from one process go one at a time: each reads the sequence the previous
        # one left (several agents of a miner sign with its owner's key)
        with _account_lock(account):
            out = _send(rpc, key, account, msgs, chain_id, fee, memo,
                        sequence if sequence is not None else expected, wait, timeout)
        if not out.sequence_taken or sequence is not None or attempt == retries:
            return out
        attempt += 1
        # CheckTx names the sequence it expects, counting the account's txs waiting in the mempool,
        # which the committed state read otherwise does not: other processes' txs (a miner's owner
        # signs for several miners) are pending there. Without it (a tx dropped at recheck), wait a
        # little and read the committed sequence again.
        expected = sequence_expected(out.data)
        if expected is None:
            time.sleep(0.3 * attempt)


def _send(rpc: CometRPC, key: SigningKey, account: str, msgs: list[Msg], chain_id: str | None, fee: int | None,
          memo: str, sequence: int | None, wait: bool, timeout: float) -> TxOutcome:
    signed = prepare_msgs(rpc, key, msgs, chain_id=chain_id, fee=fee, memo=memo, sequence=sequence)
    sequence = signed.sequence
    res = rpc.broadcast_tx_sync(signed.raw)
    if res.code != 0 or not wait:
        return TxOutcome(res.hash, 0, res.code, res.codespace, res.log, "check", res.data)
    committed = _await_commit(rpc, res.hash, account, sequence, timeout)
    if committed is None:
        return TxOutcome(res.hash, 0, ErrInvalidSequence.code, "sdk",
                         f"dropped from the mempool at recheck: another tx of {account} took sequence {sequence}",
                         "check")
    result = committed["tx_result"]
    return TxOutcome(
        res.hash, int(committed["height"]), int(result.get("code", 0)),
        result.get("codespace", ""), result.get("log", ""), "deliver",
        base64.b64decode(result.get("data") or ""),
    )


def _await_commit(rpc: CometRPC, tx_hash: str, account: str, sequence: int, timeout: float,
                  grace: float = 3.0) -> dict[str, Any] | None:
    """The committed tx, or None once the account's sequence has moved past ``sequence`` and the tx is
    still not found ``grace`` seconds later (the indexer can lag the state a little): the tx was
    dropped, because another node's block took that sequence for another tx of the account."""
    deadline = time.monotonic() + timeout
    moved_at: float | None = None
    polls = 0
    while time.monotonic() < deadline:
        found = rpc.tx(tx_hash)
        if found is not None:
            return found
        if moved_at is None and polls % 5 == 4:  # about once a second
            now = queries.account_sequence(rpc, account)
            if now > sequence:
                moved_at = time.monotonic()
        if moved_at is not None and time.monotonic() - moved_at > grace:
            return None
        polls += 1
        time.sleep(0.2)
    raise RPCError(f"tx {tx_hash} was not committed within {timeout:.0f}s")
