"""Every rejection has a registered code and leaves staking and bank state as they were (bar the fee
the ante handler took, when the tx got that far)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from nesachain.modules.staking.errors import CODESPACE
from nesachain.modules.staking.msgs import (
    MsgCreateValidator,
    MsgDelegate,
    MsgMinerHeartbeat,
    MsgUndelegate,
    MsgUnjail,
)
from nesachain.tx.msg import Msg
from nesachain.types import sdk_errors as sdk
from nesachain.types.errors import registered
from tests.modules.staking.conftest import (
    FEE,
    FUNDS,
    MODEL_BLOCKS,
    SELF_BOND,
    Harness,
    addr,
    cons_key,
    create_validator_msg,
    key,
    miner_key,
    pub,
    register_miner_msg,
)

SIGNER = 5

CASES: dict[str, tuple[Callable[[], Msg], str, int, bool]] = {
    # name: (msg, codespace, code, stateless: rejected before the fee is taken)
    "bond_more_than_balance": (
        lambda: create_validator_msg(key(SIGNER), cons_key(SIGNER), "big", FUNDS + 1), "sdk", 5, False),
    "delegate_more_than_balance": (
        lambda: MsgDelegate(addr(key(SIGNER)), addr(key(0)), FUNDS), "sdk", 5, False),
    "duplicate_consensus_key": (
        lambda: create_validator_msg(key(SIGNER), cons_key(0), "copycat", SELF_BOND), CODESPACE, 3, False),
    "duplicate_operator": (
        lambda: create_validator_msg(key(0), cons_key(SIGNER), "again", SELF_BOND), CODESPACE, 2, False),
    "self_bond_below_power_reduction": (
        lambda: create_validator_msg(key(SIGNER), cons_key(SIGNER), "tiny", 999_999), CODESPACE, 9, False),
    "delegate_to_unknown_validator": (
        lambda: MsgDelegate(addr(key(SIGNER)), addr(key(7)), 1_000_000), CODESPACE, 4, False),
    "undelegate_from_unknown_validator": (
        lambda: MsgUndelegate(addr(key(SIGNER)), addr(key(7)), 1), CODESPACE, 4, False),
    "unjail_unknown_validator": (lambda: MsgUnjail(addr(key(SIGNER))), CODESPACE, 4, False),
    "undelegate_without_delegation": (
        lambda: MsgUndelegate(addr(key(SIGNER)), addr(key(0)), 1), CODESPACE, 7, False),
    "unjail_not_jailed": (lambda: MsgUnjail(addr(key(0))), CODESPACE, 11, False),
    "consensus_key_31_bytes": (
        lambda: MsgCreateValidator(addr(key(SIGNER)), pub(cons_key(SIGNER))[:31], "short", SELF_BOND, bytes(64)),
        CODESPACE, 5, True),
    "consensus_key_not_a_point": (
        lambda: MsgCreateValidator(addr(key(SIGNER)), bytes(32), "zero", SELF_BOND, bytes(64)), CODESPACE, 5, True),
    "miner_key_not_a_point": (
        lambda: replace(register_miner_msg(SIGNER, 0, 0, 10), pubkey=b"\x01" + bytes(31)), CODESPACE, 26, True),
    "miner_block_range_outside_model": (
        lambda: register_miner_msg(SIGNER, 0, 25, MODEL_BLOCKS + 1), CODESPACE, 21, False),
    "miner_block_range_empty": (lambda: register_miner_msg(SIGNER, 0, 5, 5), CODESPACE, 21, True),
    "miner_unknown_model": (
        lambda: register_miner_msg(SIGNER, 0, 0, 4, model="no-such-model"), CODESPACE, 20, False),
    "miner_bond_below_minimum": (lambda: register_miner_msg(SIGNER, 0, 0, 4, bond=999_999), CODESPACE, 22, False),
    "miner_bond_more_than_balance": (lambda: register_miner_msg(SIGNER, 0, 0, 4, bond=FUNDS), "sdk", 5, False),
    "miner_key_is_owner_key": (
        lambda: replace(register_miner_msg(SIGNER, 0, 0, 4), pubkey=pub(key(SIGNER)),
                        pop=bytes(key(SIGNER).sign(b"x").signature)), CODESPACE, 26, False),
    "miner_wrong_proof_of_possession": (
        lambda: replace(register_miner_msg(SIGNER, 0, 0, 4), pop=bytes(miner_key(1).sign(b"x").signature)),
        CODESPACE, 30, False),
    "heartbeat_unknown_miner": (
        lambda: MsgMinerHeartbeat(addr(key(SIGNER)), addr(miner_key(3))), CODESPACE, 24, False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_msg_server_rejection_has_registered_code_and_changes_nothing(name: str) -> None:
    make, codespace, code, stateless = CASES[name]
    h = Harness()
    h.block()
    staking_before = h.staking_state()
    balances_before = {addr(key(i)): h.balance(key(i)) for i in range(8)}
    msg = make()
    signer = next(i for i in range(8) if addr(key(i)) == msg.signer())
    raw = h.tx(key(signer), [msg])
    check = h.chain.check_tx(raw)
    res = h.block([raw]).tx_results[0]
    for r in (check, res):
        assert (r.codespace, r.code) == (codespace, code), r.log
        assert any(e.codespace == codespace and e.code == code for e in registered())
    assert h.staking_state() == staking_before
    fee = 0 if stateless else FEE
    after = {addr(key(i)): h.balance(key(i)) for i in range(8)}
    assert after == {a: b - (fee if a == addr(key(signer)) else 0) for a, b in balances_before.items()}


def test_undelegating_more_than_delegated_is_refused_and_changes_nothing(h: Harness) -> None:
    h.block()
    before = h.staking_state()
    res = h.run(key(0), MsgUndelegate(addr(key(0)), addr(key(0)), SELF_BOND + 1))
    assert (res.codespace, res.code) == (CODESPACE, 6)
    assert h.staking_state() == before


def test_miner_txs_from_another_owner_are_refused(h: Harness) -> None:
    assert h.run(key(5), register_miner_msg(5, 0, 0, 10)).ok
    res = h.run(key(6), MsgMinerHeartbeat(addr(key(6)), addr(miner_key(0))))
    assert (res.codespace, res.code) == (CODESPACE, 25)
    dup = h.run(key(6), register_miner_msg(6, 0, 0, 10))
    assert (dup.codespace, dup.code) == (CODESPACE, 23)


def test_insufficient_funds_uses_the_sdk_codespace() -> None:
    assert sdk.ErrInsufficientFunds.codespace == "sdk" and sdk.ErrInsufficientFunds.code == 5
