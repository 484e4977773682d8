"""Who may use a miner for what, in signatures every role checks the same way.

**Opening a chain session** (client -> miner). The session's client signs, with its account key,

    b"nesachain/open/v1\\0" + canonical {chain_id, session_id, hop, attempt, miner, nonce}

and sends ``{"chain_id", "session_id", "hop", "attempt", "miner", "nonce", "pubkey", "signature"}`` (nonce,
pubkey and signature in hex) as the ``auth`` of its ``open`` message. ``hop`` is the route hop the session
serves (a stand-in names the route hop it takes over), ``attempt`` the client's failover count for that hop:
the session's name on the miner is ``sessions.chain_session_name(session_id, hop, attempt)``. The miner checks
the signature here, and against its own node that the session is open, that the signer is its client and that
it names this miner for that hop (or that this miner can stand in for it).

**Reading a chain session's step data** (verifier -> miner). A bonded validator's operator signs

    b"nesachain/steplog/v1\\0" + canonical {chain_id, session_id, challenge, miner, session, time}

for one challenge of that session (``session``: the name on the miner; ``time``: unix seconds, accepted within
``STEPLOG_SKEW_S``) and sends the signed document, canonical msgpack in hex, in the ``X-Nesa-Auth`` header.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode
from nesachain.protocol.sessions import chain_session_name
from nesachain.types.address import address_from_pubkey, encode_address
from nesachain.types.encoding import CanonicalError, decode_canonical, encode

__all__ = [
    "AUTH_HEADER",
    "STEPLOG_SKEW_S",
    "OpenGrant",
    "StepLogGrant",
    "sign_open",
    "sign_steplog_read",
    "verify_open",
    "verify_steplog_read",
]

OPEN_DOMAIN: Final = b"nesachain/open/v1\0"
STEPLOG_DOMAIN: Final = b"nesachain/steplog/v1\0"
AUTH_HEADER: Final = "X-Nesa-Auth"
STEPLOG_SKEW_S: Final = 300  # how far a step-log request's time may be from the miner's clock
MAX_AUTH_HEADER: Final = 2048  # hex characters of a signed step-log request
_U64: Final = 2**64 - 1


@dataclass(frozen=True)
class OpenGrant:
    """A verified open: who signed it (``client``, an address) for which session, hop and miner."""

    chain_id: str
    session_id: int
    hop: int
    attempt: int
    miner: str
    nonce: str
    client: str

    @property
    def session_name(self) -> str:
        return chain_session_name(self.session_id, self.hop, self.attempt)


@dataclass(frozen=True)
class StepLogGrant:
    """A verified step-log request: which validator (``operator``) asks about which challenge."""

    chain_id: str
    session_id: int
    challenge: int
    miner: str
    session: str
    time: int
    operator: str


def _denied(message: str) -> WireError:
    return WireError(ErrorCode.FORBIDDEN, message)


def _uint(doc: Mapping[str, Any], key: str, hi: int = _U64) -> int:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise _denied(f"auth field {key!r} must be an integer in [0, {hi}]")
    return v


def _str(doc: Mapping[str, Any], key: str, limit: int = 128) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or not 0 < len(v) <= limit:
        raise _denied(f"auth field {key!r} must be a string of 1..{limit} characters")
    return v


def _hex(doc: Mapping[str, Any], key: str, size: int) -> bytes:
    v = doc.get(key)
    try:
        raw = bytes.fromhex(v) if isinstance(v, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise _denied(f"auth field {key!r} must be {size} bytes in hex")
    return raw


def _signer(domain: bytes, fields: Mapping[str, Any], pubkey: bytes, signature: bytes) -> str:
    try:
        VerifyKey(pubkey).verify(domain + encode(dict(fields)), signature)
    except (BadSignatureError, ValueError, TypeError):
        raise _denied("the signature does not verify") from None
    return encode_address(address_from_pubkey(pubkey))


def sign_open(key: SigningKey, chain_id: str, session_id: int, hop: int, attempt: int, miner: str) -> dict[str, Any]:
    """The ``auth`` of an open message for route hop ``hop`` (failover ``attempt``) of chain session
    ``session_id`` on ``miner``, signed by the session's client."""
    fields = {"chain_id": chain_id, "session_id": session_id, "hop": hop, "attempt": attempt, "miner": miner,
              "nonce": secrets.token_hex(16)}
    signature = key.sign(OPEN_DOMAIN + encode(fields)).signature
    return {**fields, "pubkey": bytes(key.verify_key).hex(), "signature": bytes(signature).hex()}


def verify_open(auth: object) -> OpenGrant:
    """The grant an open's ``auth`` carries, its signature checked (``WireError`` ``forbidden`` otherwise). What the
    chain says of the session is the caller's to check."""
    if not isinstance(auth, Mapping):
        raise _denied("a chain session's open needs its client's signed auth")
    grant = OpenGrant(_str(auth, "chain_id"), _uint(auth, "session_id"), _uint(auth, "hop", 1 << 16),
                      _uint(auth, "attempt", 1 << 16), _str(auth, "miner"), _hex(auth, "nonce", 16).hex(), "")
    fields = {"chain_id": grant.chain_id, "session_id": grant.session_id, "hop": grant.hop, "attempt": grant.attempt,
              "miner": grant.miner, "nonce": grant.nonce}
    client = _signer(OPEN_DOMAIN, fields, _hex(auth, "pubkey", 32), _hex(auth, "signature", 64))
    return dataclasses.replace(grant, client=client)


def sign_steplog_read(key: SigningKey, chain_id: str, session_id: int, challenge: int, miner: str, session: str,
                      now: float | None = None) -> str:
    """The ``X-Nesa-Auth`` header value of a validator's request for a challenged session's step data."""
    fields = {"chain_id": chain_id, "session_id": session_id, "challenge": challenge, "miner": miner,
              "session": session, "time": int(time.time() if now is None else now)}
    signature = key.sign(STEPLOG_DOMAIN + encode(fields)).signature
    return encode({**fields, "pubkey": bytes(key.verify_key), "signature": bytes(signature)}).hex()


def verify_steplog_read(header: str | None, now: float | None = None) -> StepLogGrant:
    """The grant an ``X-Nesa-Auth`` header carries, its signature and time checked (``WireError`` ``forbidden``
    otherwise). Whether the signer is a bonded validator and the challenge names this miner is the caller's to
    check, against its node."""
    if not header:
        raise _denied(f"step data of a chain session is served to bonded validators only ({AUTH_HEADER} missing)")
    if len(header) > MAX_AUTH_HEADER:
        raise _denied(f"{AUTH_HEADER} is too long")
    try:
        doc = decode_canonical(bytes.fromhex(header))
    except (ValueError, CanonicalError):
        raise _denied(f"{AUTH_HEADER} is not hex of a canonical signed request") from None
    if not isinstance(doc, dict):
        raise _denied(f"{AUTH_HEADER} must be a map")
    grant = StepLogGrant(_str(doc, "chain_id"), _uint(doc, "session_id"), _uint(doc, "challenge", 1 << 16),
                         _str(doc, "miner"), _str(doc, "session"), _uint(doc, "time"), "")
    fields = {"chain_id": grant.chain_id, "session_id": grant.session_id, "challenge": grant.challenge,
              "miner": grant.miner, "session": grant.session, "time": grant.time}
    pubkey, signature = doc.get("pubkey"), doc.get("signature")
    if not isinstance(pubkey, bytes) or len(pubkey) != 32 or not isinstance(signature, bytes) or len(signature) != 64:
        raise _denied(f"{AUTH_HEADER} needs a 32-byte pubkey and a 64-byte signature")
    operator = _signer(STEPLOG_DOMAIN, fields, pubkey, signature)
    clock = time.time() if now is None else now
    if abs(clock - grant.time) > STEPLOG_SKEW_S:
        raise _denied(f"the request's time is more than {STEPLOG_SKEW_S} s from the miner's clock")
    return dataclasses.replace(grant, operator=operator)
