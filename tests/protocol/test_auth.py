"""Signed opens and signed step-log reads: what a miner accepts, and every way a forged one is refused."""

from __future__ import annotations

import dataclasses

import pytest
from nacl.signing import SigningKey

from nesachain.protocol.auth import (
    MAX_AUTH_HEADER,
    STEPLOG_SKEW_S,
    sign_open,
    sign_steplog_read,
    verify_open,
    verify_steplog_read,
)
from nesachain.protocol.errors import WireError
from nesachain.types.address import address_from_pubkey, encode_address
from nesachain.types.encoding import decode_canonical, encode

CLIENT = SigningKey(b"\x01" * 32)
OTHER = SigningKey(b"\x02" * 32)


def address(key: SigningKey) -> str:
    return encode_address(address_from_pubkey(bytes(key.verify_key)))


def test_auth_open_signed_by_the_client_gives_its_address_and_the_session_name() -> None:
    grant = verify_open(sign_open(CLIENT, "nesa-1", 7, 2, 1, "nesa1miner"))
    assert grant.client == address(CLIENT) and grant.session_name == "chain-7-2-1"
    fields = (grant.chain_id, grant.session_id, grant.hop, grant.attempt, grant.miner)
    assert fields == ("nesa-1", 7, 2, 1, "nesa1miner")
    assert sign_open(CLIENT, "nesa-1", 7, 2, 1, "m")["nonce"] != sign_open(CLIENT, "nesa-1", 7, 2, 1, "m")["nonce"]


@pytest.mark.parametrize(("field", "value"), [
    ("session_id", 8), ("hop", 3), ("attempt", 0), ("miner", "nesa1other"), ("chain_id", "nesa-2"),
    ("nonce", "00" * 16), ("pubkey", bytes(OTHER.verify_key).hex()),
])
def test_auth_open_with_any_field_changed_is_refused(field: str, value: object) -> None:
    auth = sign_open(CLIENT, "nesa-1", 7, 2, 1, "nesa1miner")
    with pytest.raises(WireError) as exc:
        verify_open({**auth, field: value})
    assert exc.value.code == "forbidden"


@pytest.mark.parametrize("auth", [
    None, [], "x", {}, {"session_id": -1}, {"session_id": True}, {"session_id": 2**64},
    {"chain_id": "c", "session_id": 1, "hop": 0, "attempt": 0, "miner": "m", "nonce": "zz", "pubkey": "",
     "signature": ""},
])
def test_auth_open_malformed_is_refused_as_forbidden(auth: object) -> None:
    with pytest.raises(WireError) as exc:
        verify_open(auth)
    assert exc.value.code == "forbidden"


def test_auth_steplog_read_signed_by_an_operator_within_the_skew_is_accepted() -> None:
    header = sign_steplog_read(OTHER, "nesa-1", 7, 0, "nesa1miner", "chain-7-0-0", now=1_000_000)
    grant = verify_steplog_read(header, now=1_000_000 + STEPLOG_SKEW_S)
    assert grant.operator == address(OTHER)
    assert (grant.session_id, grant.challenge, grant.session) == (7, 0, "chain-7-0-0")
    with pytest.raises(WireError, match="clock"):
        verify_steplog_read(header, now=1_000_000 + STEPLOG_SKEW_S + 1)


def test_auth_steplog_read_forged_or_malformed_is_refused() -> None:
    header = sign_steplog_read(OTHER, "nesa-1", 7, 0, "nesa1miner", "chain-7-0-0", now=1_000_000)
    doc = decode_canonical(bytes.fromhex(header))
    tampered = encode({**doc, "challenge": 1}).hex()
    for bad in (None, "", "zz", "00", "c0", tampered, "a" * (MAX_AUTH_HEADER + 2), encode([1, 2]).hex(),
                encode({**doc, "pubkey": b"x"}).hex()):
        with pytest.raises(WireError) as exc:
            verify_steplog_read(bad, now=1_000_000)
        assert exc.value.code == "forbidden"


def test_auth_grants_are_frozen() -> None:
    grant = verify_open(sign_open(CLIENT, "nesa-1", 7, 2, 1, "nesa1miner"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        grant.client = "someone"  # type: ignore[misc]
