"""bank keeper: transfers, fees into the fee pool, module custody (lock, unlock, burn), the supply."""

from __future__ import annotations

import pytest

from nesachain.modules.bank import keys
from nesachain.modules.bank.errors import ErrAmountOverflow, ErrModuleFundsShort
from nesachain.types.address import encode_address
from nesachain.types.coin import MAX_AMOUNT
from nesachain.types.errors import ChainError
from nesachain.types.sdk_errors import ErrInsufficientFunds
from tests.modules.bank.conftest import ALICE, BOB, CAROL, FUNDS, Bank


def _refused(bank: Bank, err: object, fn_name: str, *args: object) -> None:
    """The call raises ``err`` on a branch and the store keeps what it had."""
    before = bank.store.writes()
    ctx = bank.branch()
    with pytest.raises(ChainError) as info:
        getattr(bank.keeper, fn_name)(ctx, *args)
    assert info.value.error == err, info.value.log
    assert bank.store.writes() == before


def test_send_moves_the_amount_and_emits_transfer(bank: Bank) -> None:
    ctx = bank.ctx()
    bank.keeper.send(ctx, ALICE, CAROL, 250)
    assert (bank.balance(ALICE), bank.balance(CAROL)) == (FUNDS - 250, 250)
    assert bank.keeper.supply(bank.store) == 2 * FUNDS
    [event] = ctx.events
    assert event.type == "transfer"
    assert dict(event.attributes) == {"sender": encode_address(ALICE), "recipient": encode_address(CAROL),
                                      "amount": "250unes"}


def test_send_more_than_the_balance_is_insufficient_funds_and_changes_nothing(bank: Bank) -> None:
    _refused(bank, ErrInsufficientFunds, "send", ALICE, BOB, FUNDS + 1)
    _refused(bank, ErrInsufficientFunds, "send", CAROL, BOB, 1)  # an account never funded


def test_send_whole_balance_removes_the_account_key(bank: Bank) -> None:
    bank.keeper.send(bank.ctx(), ALICE, BOB, FUNDS)
    assert bank.store.get(keys.balance_key(ALICE)) is None
    assert [a for a, _ in bank.keeper.balances(bank.store)] == [BOB]


def test_unlock_beyond_a_64_bit_balance_is_overflow_and_changes_nothing(bank: Bank) -> None:
    bank.keeper.mint_genesis(bank.store, CAROL, MAX_AMOUNT - 2 * FUNDS)
    _refused(bank, ErrAmountOverflow, "unlock", CAROL, 2 * FUNDS + 1)


def test_collect_fee_moves_the_fee_into_the_fee_pool_supply_unchanged(bank: Bank) -> None:
    ctx = bank.ctx()
    bank.keeper.collect_fee(ctx, ALICE, 1000)
    bank.keeper.collect_fee(ctx, BOB, 500)
    assert bank.keeper.fee_pool(bank.store) == 1500
    assert bank.balance(ALICE) == FUNDS - 1000 and bank.keeper.supply(bank.store) == 2 * FUNDS
    assert [(e.type, dict(e.attributes)["payer"]) for e in ctx.events] == [("fee", encode_address(ALICE)),
                                                                          ("fee", encode_address(BOB))]


def test_collect_fee_zero_writes_and_emits_nothing(bank: Bank) -> None:
    ctx = bank.ctx()
    before = bank.store.writes()
    bank.keeper.collect_fee(ctx, CAROL, 0)
    assert bank.store.writes() == before and ctx.events == []


def test_collect_fee_beyond_the_balance_is_insufficient_funds(bank: Bank) -> None:
    _refused(bank, ErrInsufficientFunds, "collect_fee", CAROL, 1)


def test_lock_then_unlock_returns_the_tokens_supply_unchanged(bank: Bank) -> None:
    ctx = bank.ctx()
    bank.keeper.lock(ctx, ALICE, 400)
    assert bank.balance(ALICE) == FUNDS - 400 and bank.keeper.supply(bank.store) == 2 * FUNDS
    bank.keeper.unlock(ctx, CAROL, 400)  # custody may be paid out to another account (a miner's pay)
    assert bank.balance(CAROL) == 400 and bank.keeper.supply(bank.store) == 2 * FUNDS
    _refused(bank, ErrInsufficientFunds, "lock", BOB, FUNDS + 1)


def test_burn_locked_takes_tokens_out_of_the_supply(bank: Bank) -> None:
    ctx = bank.ctx()
    bank.keeper.lock(ctx, ALICE, 300)
    bank.keeper.burn_locked(ctx, 100)
    assert bank.keeper.supply(bank.store) == 2 * FUNDS - 100
    assert (ctx.events[-1].type, dict(ctx.events[-1].attributes)) == ("burn", {"amount": "100unes"})
    _refused(bank, ErrModuleFundsShort, "burn_locked", 2 * FUNDS)


def test_locked_to_fee_pool_moves_custody_into_the_fee_pool(bank: Bank) -> None:
    ctx = bank.ctx()
    bank.keeper.lock(ctx, BOB, 70)
    bank.keeper.locked_to_fee_pool(ctx, 70)
    assert bank.keeper.fee_pool(bank.store) == 70 and bank.keeper.supply(bank.store) == 2 * FUNDS
    assert ctx.events[-1].type == "fee_pool_deposit"


def test_mint_genesis_beyond_the_64_bit_supply_is_overflow(bank: Bank) -> None:
    with pytest.raises(ChainError) as info:
        bank.keeper.mint_genesis(bank.store, CAROL, MAX_AMOUNT - FUNDS)
    assert info.value.error == ErrAmountOverflow
