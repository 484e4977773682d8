"""bank's MsgSend: stateless checks, the handler's typed response, and the queries."""

from __future__ import annotations

import json

import pytest

from nesachain.modules.bank.msg_server import MsgServer
from nesachain.modules.bank.msgs import MsgSend, MsgSendResponse
from nesachain.modules.bank.queries import Queries
from nesachain.types.address import encode_address
from nesachain.types.errors import ChainError
from nesachain.types.sdk_errors import ErrInsufficientFunds, ErrInvalidAddress, ErrInvalidCoins
from tests.modules.bank.conftest import ALICE, BOB, CAROL, FUNDS, Bank

A, B, C = encode_address(ALICE), encode_address(BOB), encode_address(CAROL)


def test_send_handler_moves_tokens_and_answers_its_response(bank: Bank) -> None:
    assert MsgServer(bank.keeper).send(bank.ctx(), MsgSend(A, C, 42)) == MsgSendResponse()
    assert (bank.balance(ALICE), bank.balance(CAROL)) == (FUNDS - 42, 42)


def test_send_handler_insufficient_funds_is_a_registered_error(bank: Bank) -> None:
    with pytest.raises(ChainError) as info:
        MsgServer(bank.keeper).send(bank.branch(), MsgSend(C, A, 1))
    assert info.value.error == ErrInsufficientFunds and "has 0unes, needs 1unes" in info.value.log


@pytest.mark.parametrize(("msg", "err"), [
    (MsgSend(A, C, 0), ErrInvalidCoins),
    (MsgSend(A, C, -3), ErrInvalidCoins),
    (MsgSend(A, C, 2**64), ErrInvalidCoins),
    (MsgSend("nesa1bogus", C, 5), ErrInvalidAddress),
    (MsgSend(A, B[:-1], 5), ErrInvalidAddress),
])
def test_send_validate_basic_bad_fields_are_registered_errors(msg: MsgSend, err: object) -> None:
    with pytest.raises(ChainError) as info:
        msg.validate_basic()
    assert info.value.error == err


@pytest.mark.parametrize("fields", [{"from_address": A, "to_address": C}, {"from_address": A, "to_address": 5,
                                                                          "amount": 1}])
def test_send_from_fields_wrong_fields_raise_value_error(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MsgSend.from_fields(fields)


def test_send_fields_round_trip_and_signer_is_the_sender() -> None:
    msg = MsgSend(A, C, 9)
    assert MsgSend.from_fields(msg.to_fields()) == msg and msg.signer() == A


def test_queries_balance_and_supply_answer_from_state(bank: Bank) -> None:
    bank.keeper.collect_fee(bank.ctx(), ALICE, 10)
    q = Queries(bank.keeper)
    assert q.balance(bank.store, {"address": A}) == {"address": A, "amount": FUNDS - 10, "denom": "unes"}
    assert q.balance(bank.store, {"address": C})["amount"] == 0
    assert q.supply(bank.store, {}) == {"supply": 2 * FUNDS, "fee_pool": 10, "denom": "unes"}
    json.dumps(q.supply(bank.store, {}))  # JSON-able, as the query path returns it
    with pytest.raises(ValueError):
        q.balance(bank.store, {})
    with pytest.raises(ChainError):
        q.balance(bank.store, {"address": "nesa1bogus"})
