"""The fee rule: a tx pays ``min_fee + fee_per_byte * raw bytes + fee_per_msg * messages`` (auth params),
the ante refuses less with the required fee in its log and data, and the wallet's default fee is exactly
the rule's."""

from __future__ import annotations

from typing import Any

import pytest

from nesachain.abci.chain import Chain
from nesachain.modules.bank.msgs import MsgSend
from nesachain.store import CommitStore
from nesachain.tx.ante import REQUIRED_FEE
from nesachain.tx.fees import FeeRule, fee_for, required_fee
from nesachain.tx.tx import TxBody, sign_tx
from nesachain.types import sdk_errors as sdk
from nesachain.types.encoding import decode_canonical
from nesachain.wallet.txs import sign_msgs
from tests.abci.conftest import CHAIN_ID, addr, genesis, key

RULE = {"min_fee": 1000, "fee_per_byte": 3, "fee_per_msg": 500}
TO = addr(key(2))


def _chain(**auth: Any) -> Chain:
    state = genesis()
    state["auth"] = {"params": {"max_tx_bytes": 16384, **auth}}
    c = Chain(CommitStore())
    c.init_chain(CHAIN_ID, state)
    c.finalize_block(1, [])
    c.commit()
    return c


def _sends(n: int, amount: int = 1) -> list[MsgSend]:
    return [MsgSend(addr(key(0)), TO, amount + i) for i in range(n)]


def _raw(fee: int, msgs: list[MsgSend], seq: int = 0, memo: str = "") -> bytes:
    return sign_tx(TxBody(CHAIN_ID, addr(key(0)), seq, fee, tuple(msgs), memo), key(0))


def test_ante_fee_below_the_byte_and_message_rule_is_refused_with_the_required_fee() -> None:
    """Before: the fee was flat (``min_fee`` per tx whatever its size or its 32 messages), so a tx of 20
    messages and a long memo paying 1000 unes was taken (and these params did not exist)."""
    c = _chain(**RULE)
    msgs = _sends(20)
    flat = _raw(1000, msgs, memo="m" * 200)
    r = c.check_tx(flat)
    required = required_fee(len(flat), 20, **RULE)
    assert (r.codespace, r.code) == ("sdk", sdk.ErrInsufficientFee.code)
    assert f"below the required {required}unes for {len(flat)} bytes and 20 messages" in r.log
    assert decode_canonical(r.data) == {REQUIRED_FEE: required}
    assert c.bank.fee_pool(c._check) == 0  # refused: nothing taken


def test_ante_fee_rule_charges_bytes_and_messages_exactly() -> None:
    """Before: any fee of at least ``min_fee`` passed, so the larger tx below paid what a one-message tx pays."""
    c = _chain(**RULE)
    rule = FeeRule(**RULE)
    one_fee, _ = fee_for(rule, 1, lambda fee: _raw(fee, _sends(1)))
    ten_fee, ten = fee_for(rule, 10, lambda fee: _raw(fee, _sends(10)))
    assert ten_fee - one_fee >= 9 * RULE["fee_per_msg"] + 9 * 3 * 20  # nine more messages of 20+ bytes each
    assert ten_fee == rule.required(len(ten), 10)
    short = _raw(ten_fee - 1, _sends(10))  # one une short (its size can only shrink by a byte)
    r = c.check_tx(short)
    assert r.code == sdk.ErrInsufficientFee.code
    assert decode_canonical(r.data)[REQUIRED_FEE] == rule.required(len(short), 10) > ten_fee - 1
    assert c.check_tx(ten).ok
    assert c.bank.fee_pool(c._check) == ten_fee  # the whole fee goes to the fee pool


def test_ante_fee_rule_is_the_flat_minimum_when_the_per_byte_and_message_charges_are_zero() -> None:
    c = _chain(min_fee=1000)
    assert c.check_tx(_raw(1000, _sends(5))).ok
    assert c.check_tx(_raw(999, _sends(1), seq=1)).code == sdk.ErrInsufficientFee.code


def test_wallet_sign_msgs_pays_exactly_what_the_chain_asks() -> None:
    """Before: the wallet paid ``min_fee`` whatever the tx, which this chain refuses."""
    c = _chain(**RULE)
    rule = FeeRule.from_params(c.auth.params(c._check).to_dict())
    for seq, n in enumerate((1, 7, 32)):
        signed = sign_msgs(key(0), list(_sends(n)), chain_id=CHAIN_ID, sequence=seq, rule=rule)
        assert signed.fee == signed.required_fee == required_fee(signed.size, n, **RULE)
        assert c.check_tx(signed.raw).ok, n
    low = sign_msgs(key(0), _sends(1), chain_id=CHAIN_ID, sequence=3, rule=rule, fee=1000)
    assert low.fee == 1000 < low.required_fee
    assert c.check_tx(low.raw).code == sdk.ErrInsufficientFee.code


@pytest.mark.parametrize("params", [{"min_fee": 7}, {"min_fee": 7, "fee_per_byte": 0, "fee_per_msg": 2, "x": 1}])
def test_fee_rule_from_params_reads_the_rule_and_counts_missing_charges_as_zero(params: dict[str, int]) -> None:
    rule = FeeRule.from_params(params)
    assert rule.required(100, 3) == 7 + params.get("fee_per_msg", 0) * 3


def test_fee_for_settles_where_the_fee_s_own_bytes_tip_the_size() -> None:
    rule = FeeRule(0, 1000, 0)  # every byte costs more than a fee's encoding can add
    fee, raw = fee_for(rule, 1, lambda f: _raw(f, _sends(1)))
    assert fee == rule.required(len(raw), 1) and len(_raw(fee, _sends(1))) == len(raw)
