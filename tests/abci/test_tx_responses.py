"""Every Msg handler answers with its typed response, and the tx result data FinalizeBlock returns is
the canonical list of those responses (one map per message, ``{}`` for a response with no fields)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from nesachain.abci.chain import Chain
from nesachain.modules.bank.msgs import MsgSend
from nesachain.modules.inference.msgs import MsgOpenSession
from nesachain.modules.staking.msgs import (
    MsgDelegate,
    MsgMinerHeartbeat,
    MsgUnbondMiner,
    MsgUndelegate,
)
from nesachain.modules.staking.types import cons_address_hex
from nesachain.store import CommitStore
from nesachain.tx.msg import _MSGS, encode_response
from nesachain.types import sdk_errors as sdk
from nesachain.types.encoding import decode_canonical, encode
from tests.modules.staking.conftest import (
    MODEL,
    Harness,
    addr,
    cons_key,
    create_validator_msg,
    key,
    miner_key,
    pub,
    register_miner_msg,
)


def responses(data: bytes) -> list[dict[str, object]]:
    out: list[dict[str, object]] = decode_canonical(data)
    return out


def test_finalize_block_bank_send_tx_data_is_its_empty_response() -> None:
    h = Harness()
    r = h.run(key(0), MsgSend(addr(key(0)), addr(key(9)), 5), MsgSend(addr(key(0)), addr(key(8)), 6))
    assert r.code == 0, r.log
    assert r.data == encode([{}, {}])


def test_finalize_block_staking_txs_data_carries_their_typed_responses() -> None:
    h = Harness()
    h.block()
    r = h.run(key(5), create_validator_msg(key(5), cons_key(5), "five", 12_000_000))
    assert responses(r.data) == [{"cons_address": cons_address_hex(pub(cons_key(5)))}]
    r = h.run(key(6), MsgDelegate(addr(key(6)), addr(key(0)), 3_000_000))
    shares = h.q("staking/delegations", delegator=addr(key(6)))["delegations"][0]["shares"]
    assert responses(r.data) == [{"shares": shares}] and shares == 3_000_000
    r = h.run(key(6), MsgUndelegate(addr(key(6)), addr(key(0)), 1_000_000))
    assert responses(r.data) == [{"completion_height": h.height + 5}]  # unbonding_blocks 5
    r = h.run(key(4), register_miner_msg(4, 0, 0, 15))
    assert responses(r.data) == [{"miner": addr(miner_key(0))}]
    r = h.run(key(4), MsgMinerHeartbeat(addr(key(4)), addr(miner_key(0))))
    assert responses(r.data) == [{"miner": addr(miner_key(0))}]
    r = h.run(key(4), MsgUnbondMiner(addr(key(4)), addr(miner_key(0))))
    assert responses(r.data) == [{"miner": addr(miner_key(0)), "completion_height": h.height + 4}]


def test_finalize_block_open_session_tx_data_names_the_session() -> None:
    h = Harness()
    h.block()
    for m, (start, end) in enumerate([(0, 10), (10, 20), (20, 30)]):
        assert h.run(key(4 + m), register_miner_msg(4 + m, m, start, end)).code == 0
    route = [[addr(miner_key(m)), 10 * m, 10 * m + 10] for m in range(3)]
    r = h.run(key(7), MsgOpenSession(addr(key(7)), MODEL, route, 20, 10_000))
    assert responses(r.data) == [{"session_id": 1}]


def test_finalize_block_handler_answering_a_dict_fails_with_the_internal_code() -> None:
    """A handler that answers anything but its response dataclass is a bug the tx surfaces."""
    h = Harness()
    send = h.chain.router._msgs[MsgSend.TYPE]

    def answers_a_dict(ctx: object, msg: MsgSend) -> object:
        send(ctx, msg)  # type: ignore[arg-type]
        return {"looks": "fine"}

    h.chain.router._msgs[MsgSend.TYPE] = answers_a_dict
    r = h.run(key(0), MsgSend(addr(key(0)), addr(key(9)), 5))
    assert (r.codespace, r.code) == (sdk.ErrInternal.codespace, sdk.ErrInternal.code)
    assert h.balance(addr(key(9))) == 0  # nothing of the failed message stays


@dataclasses.dataclass(frozen=True)
class _Empty:
    pass


@dataclasses.dataclass(frozen=True)
class _Two:
    b: int
    a: bytes


@dataclasses.dataclass
class _Mutable:
    a: int


@pytest.mark.parametrize("bad", [{"a": 1}, None, 7, _Two, _Mutable(1)])
def test_encode_response_not_a_frozen_dataclass_instance_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        encode_response(bad)


def test_encode_response_fields_by_name_and_empty_response_is_empty_map() -> None:
    assert encode_response(_Empty()) == {}
    assert encode_response(_Two(3, b"x")) == {"a": b"x", "b": 3}


def test_router_every_msg_handler_is_annotated_with_its_msg_response_dataclass() -> None:
    """``MsgX`` is answered by a frozen ``MsgXResponse`` (STYLE, conventions 1), for every Msg."""
    chain = Chain(CommitStore())
    assert sorted(chain.router._msgs) == sorted(_MSGS)
    for type_name, handler in chain.router._msgs.items():
        answer = typing.get_type_hints(handler)["return"]
        assert answer.__name__ == _MSGS[type_name].__name__ + "Response", type_name
        assert dataclasses.is_dataclass(answer) and answer.__dataclass_params__.frozen, type_name
