"""The tx envelope, its canonical sign bytes and signing.

    tx   = canonical msgpack {"body": bytes, "pubkey": bytes(32), "signature": bytes(64)}
    body = canonical msgpack {"chain_id", "account", "sequence", "fee", "msgs": [...], "memo"}
    sign bytes = b"nesachain/tx/v1\\x00" + body

The chain id sits inside the signed body, so a tx signed for one chain is invalid on another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from nesachain.tx.msg import Msg, decode_msg, encode_msg
from nesachain.types.address import AddressError, address_from_pubkey, decode_address, encode_address
from nesachain.types.coin import check_amount
from nesachain.types.encoding import CanonicalError, decode_canonical, encode
from nesachain.types.sdk_errors import (
    ErrInvalidAddress,
    ErrInvalidCoins,
    ErrInvalidPubKey,
    ErrTxDecode,
    ErrTxTooLarge,
    ErrUnauthorized,
    ErrWrongSignature,
)

__all__ = ["SIGN_PREFIX", "Tx", "TxBody", "check_body_fields", "decode_tx", "sign_tx", "tx_hash"]

SIGN_PREFIX = b"nesachain/tx/v1\x00"
MAX_MSGS = 32
MAX_MEMO = 256
_BODY_FIELDS = {"chain_id", "account", "sequence", "fee", "msgs", "memo"}


@dataclass(frozen=True)
class TxBody:
    chain_id: str
    account: str
    sequence: int
    fee: int
    msgs: tuple[Msg, ...]
    memo: str = ""

    def encode(self) -> bytes:
        return encode(
            {
                "chain_id": self.chain_id,
                "account": self.account,
                "sequence": self.sequence,
                "fee": self.fee,
                "msgs": [encode_msg(m) for m in self.msgs],
                "memo": self.memo,
            }
        )


@dataclass(frozen=True)
class Tx:
    body: TxBody
    body_bytes: bytes
    pubkey: bytes
    signature: bytes
    size: int  # raw bytes as broadcast and carried in blocks: what the fee rule charges per byte

    def sign_bytes(self) -> bytes:
        return SIGN_PREFIX + self.body_bytes

    def verify_signature(self) -> None:
        try:
            VerifyKey(self.pubkey).verify(self.sign_bytes(), self.signature)
        except (BadSignatureError, ValueError, TypeError):
            raise ErrWrongSignature.wrap(
                f"signature does not match account {self.body.account} on chain {self.body.chain_id!r}"
            ) from None


def tx_hash(raw: bytes) -> str:
    """CometBFT's tx hash: uppercase hex sha256 of the raw tx bytes."""
    return hashlib.sha256(raw).hexdigest().upper()


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ErrTxDecode.wrap(f"tx field {name!r} must be {kind.__name__}")
    return value


def check_body_fields(sequence: int | None, fee: int | None, memo: str, n_msgs: int) -> None:
    """The body's own stateless checks (a wallet runs them before it signs; None: not chosen yet)."""
    if sequence is not None and not 0 <= sequence < 2**64:
        raise ErrTxDecode.wrap(f"sequence {sequence} out of range")
    if fee is not None:
        try:
            check_amount(fee, allow_zero=True)
        except ValueError as exc:
            raise ErrInvalidCoins.wrap(f"fee: {exc}") from None
    if len(memo) > MAX_MEMO:
        raise ErrTxDecode.wrap(f"memo is {len(memo)} characters, the limit is {MAX_MEMO}")
    if not n_msgs:
        raise ErrTxDecode.wrap("tx carries no messages")
    if n_msgs > MAX_MSGS:
        raise ErrTxDecode.wrap(f"tx carries {n_msgs} messages, the limit is {MAX_MSGS}")


def decode_tx(raw: bytes, *, max_bytes: int) -> Tx:
    """Decode and statelessly validate a tx (everything that needs no state). Raises ChainError."""
    if len(raw) > max_bytes:
        raise ErrTxTooLarge.wrap(f"tx is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        env = decode_canonical(raw, max_len=max_bytes)
    except CanonicalError as exc:
        raise ErrTxDecode.wrap(str(exc)) from None
    if not isinstance(env, dict) or set(env) != {"body", "pubkey", "signature"}:
        raise ErrTxDecode.wrap("tx must be a map of exactly body, pubkey, signature")
    body_bytes = _field(env, "body", bytes)
    pubkey = _field(env, "pubkey", bytes)
    signature = _field(env, "signature", bytes)
    if len(pubkey) != 32:
        raise ErrInvalidPubKey.wrap(f"ed25519 public key must be 32 bytes, got {len(pubkey)}")
    if len(signature) != 64:
        raise ErrWrongSignature.wrap(f"ed25519 signature must be 64 bytes, got {len(signature)}")
    try:
        obj = decode_canonical(body_bytes, max_len=max_bytes)
    except CanonicalError as exc:
        raise ErrTxDecode.wrap(f"body: {exc}") from None
    if not isinstance(obj, dict) or set(obj) != _BODY_FIELDS:
        raise ErrTxDecode.wrap(f"tx body must have exactly the fields {sorted(_BODY_FIELDS)}")
    chain_id = _field(obj, "chain_id", str)
    account = _field(obj, "account", str)
    sequence = _field(obj, "sequence", int)
    fee = _field(obj, "fee", int)
    memo = _field(obj, "memo", str)
    raw_msgs = _field(obj, "msgs", list)
    check_body_fields(sequence, fee, memo, len(raw_msgs))
    try:
        account_raw = decode_address(account)
    except AddressError as exc:
        raise ErrInvalidAddress.wrap(f"tx account: {exc}") from None
    if address_from_pubkey(pubkey) != account_raw:
        raise ErrUnauthorized.wrap(f"pubkey does not belong to account {account}")
    msgs = tuple(decode_msg(m) for m in raw_msgs)
    for msg in msgs:
        msg.validate_basic()
        if msg.signer() != account:
            raise ErrUnauthorized.wrap(f"{msg.TYPE} must be signed by {msg.signer()}, not by {account}")
    body = TxBody(chain_id, account, sequence, fee, msgs, memo)
    return Tx(body, body_bytes, pubkey, signature, len(raw))


def sign_tx(body: TxBody, key: SigningKey) -> bytes:
    """Encode and sign a tx body; returns the raw tx bytes to broadcast."""
    pubkey = bytes(key.verify_key)
    if encode_address(address_from_pubkey(pubkey)) != body.account:
        raise ValueError("signing key does not belong to the tx account")
    body_bytes = body.encode()
    signature = key.sign(SIGN_PREFIX + body_bytes).signature
    return encode({"body": body_bytes, "pubkey": pubkey, "signature": bytes(signature)})
