"""Addresses, amounts, canonical encoding and the error registry."""

from __future__ import annotations

import msgpack
import pytest

from nesachain.types import sdk_errors
from nesachain.types.address import AddressError, decode_address, encode_address
from nesachain.types.coin import MAX_AMOUNT, check_amount
from nesachain.types.encoding import CanonicalError, decode_canonical, encode
from nesachain.types.errors import register, registered


def test_address_roundtrip_and_rejections():
    raw = bytes(range(20))
    text = encode_address(raw)
    assert text.startswith("nesa1") and decode_address(text) == raw
    with pytest.raises(AddressError, match="checksum"):
        decode_address(text[:-1] + ("q" if text[-1] != "q" else "p"))
    with pytest.raises(AddressError, match="prefix"):
        decode_address(encode_address(raw, hrp="cosmos"))


@pytest.mark.parametrize("bad", [0, -1, MAX_AMOUNT + 1, 1.5, "10", True, None])
def test_check_amount_rejects(bad):
    with pytest.raises(ValueError):
        check_amount(bad)


def test_canonical_encoding_rejects_floats_unsorted_and_trailing_bytes():
    assert decode_canonical(encode({"b": 1, "a": [b"x", "y"]})) == {"a": [b"x", "y"], "b": 1}
    with pytest.raises(CanonicalError):
        encode({"a": 1.0})
    with pytest.raises(CanonicalError, match="not canonical"):
        decode_canonical(msgpack.packb({"b": 1, "a": 2}))
    with pytest.raises(CanonicalError, match="not canonical"):
        decode_canonical(b"\xcd\x00\x01")  # 1 as uint16: not the shortest form
    with pytest.raises(CanonicalError, match="extra data"):
        decode_canonical(encode(1) + b"\x00")


def test_error_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="registered twice"):
        register(sdk_errors.CODESPACE, sdk_errors.ErrTxDecode.code, "again")
    codes = [(e.codespace, e.code) for e in registered()]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, [1, 2**70], {"a": 2**64}])
def test_encode_integer_beyond_64_bits_is_canonical_error(value):
    with pytest.raises(CanonicalError, match="64 bits"):
        encode(value)
    assert decode_canonical(encode([2**64 - 1, -(2**63)])) == [2**64 - 1, -(2**63)]


def test_check_address_bad_address_is_registered_invalid_address_error():
    from nesachain.types.address import check_address
    from nesachain.types.errors import ChainError

    raw = bytes(range(20))
    assert check_address(encode_address(raw), "to") == raw
    with pytest.raises(ChainError) as info:
        check_address("nesa1bogus", "to_address")
    assert info.value.error == sdk_errors.ErrInvalidAddress and info.value.log.startswith("to_address: ")
