"""A sequence refusal carries the expected sequence as structured data (the tx result's ``data``,
which CheckTx returns through ``broadcast_tx_sync``); ``sequence_expected`` reads it back and
answers None for anything else, never raising."""

from __future__ import annotations

import random

import pytest

from nesachain.tx.ante import sequence_expected
from nesachain.types import sdk_errors as sdk
from nesachain.types.encoding import encode
from nesachain.types.errors import ChainError
from tests.abci.conftest import FUNDS, addr, key, send_tx

TO = addr(key(5))


def test_check_tx_reused_sequence_data_carries_the_expected_sequence(committed_chain) -> None:
    c = committed_chain()
    assert c.check_tx(send_tx(key(0), 0, TO, 1)).ok
    assert c.check_tx(send_tx(key(0), 1, TO, 1)).ok
    r = c.check_tx(send_tx(key(0), 0, TO, 2))  # another process signed with a sequence already used
    assert (r.codespace, r.code) == ("sdk", sdk.ErrInvalidSequence.code)
    assert sequence_expected(r.data) == 2  # counts the txs waiting in the mempool


def test_check_tx_sequence_gap_data_carries_the_expected_sequence(committed_chain) -> None:
    r = committed_chain().check_tx(send_tx(key(1), 7, TO, 1))
    assert r.code == sdk.ErrInvalidSequence.code and sequence_expected(r.data) == 0


def test_finalize_block_sequence_refusal_data_carries_the_expected_sequence(committed_chain) -> None:
    c = committed_chain()
    r = c.finalize_block(2, [send_tx(key(0), 0, TO, 1), send_tx(key(0), 0, TO, 1)]).tx_results
    assert r[0].ok and sequence_expected(r[0].data) is None  # a success's data is its responses
    assert sequence_expected(r[1].data) == 1


@pytest.mark.parametrize("raw", [
    send_tx(key(0), 0, TO, 1, fee=1),  # fee below the minimum
    send_tx(key(0), 0, TO, 1, chain_id="other"),  # another chain's
    send_tx(key(0), 0, TO, FUNDS),  # a message that fails
    b"\x00not a tx",
])
def test_check_tx_other_refusals_carry_no_sequence(committed_chain, raw: bytes) -> None:
    r = committed_chain().check_tx(raw)
    assert not r.ok and sequence_expected(r.data) is None
    assert r.data == b"" or r.code == sdk.ErrInsufficientFee.code  # a fee refusal carries the required fee


@pytest.mark.parametrize("data", [
    b"", encode([{}]), encode({}), encode({"expected_sequence": -1}), encode({"expected_sequence": True}),
    encode({"expected_sequence": "3"}), encode({"expected": 3}), encode(7), b"\xc1", b"\x81\xa1",
    bytes(range(256)), "text",
])
def test_sequence_expected_data_that_is_no_sequence_refusal_is_none(data: bytes) -> None:
    assert sequence_expected(data) is None


def test_sequence_expected_random_bytes_never_raise() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        value = sequence_expected(data)
        assert value is None or isinstance(value, int)
    assert sequence_expected(encode({"expected_sequence": 0})) == 0
    assert sequence_expected(encode({"expected_sequence": 2**64 - 1})) == 2**64 - 1


def test_chain_error_payload_is_canonical_and_checked_where_raised() -> None:
    err = sdk.ErrInvalidSequence.wrap("detail", data={"expected_sequence": 4})
    assert err.data == {"expected_sequence": 4} and err.encoded_data == encode({"expected_sequence": 4})
    assert sdk.ErrInvalidSequence.wrap("detail").encoded_data == b""
    with pytest.raises(ValueError):  # a float is no canonical value: the bug shows where the error is raised
        ChainError(sdk.ErrInvalidSequence, "x", {"expected_sequence": 1.5})
