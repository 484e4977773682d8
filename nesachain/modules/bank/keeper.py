"""bank keeper: balances, supply and the fee pool. The only code that touches bank/ state.

Fees are moved from the payer's balance into the fee pool, a balance the chain holds; nothing
leaves supply. Other modules (staking, inference) hold tokens by moving them out of balances with
``lock`` and back with ``unlock``; the supply stays whole and each module accounts for what it holds.
"""

from __future__ import annotations

from collections.abc import Iterator

from nesachain.modules.bank import keys
from nesachain.modules.bank.errors import ErrAmountOverflow, ErrModuleFundsShort
from nesachain.modules.bank.events import EVENT_BURN, EVENT_FEE, EVENT_FEE_POOL_DEPOSIT, EVENT_TRANSFER
from nesachain.store.kv import KVReader, KVStore, prefix_end
from nesachain.types.address import encode_address
from nesachain.types.coin import MAX_AMOUNT
from nesachain.types.context import Context
from nesachain.types.encoding import decode_canonical, encode
from nesachain.types.sdk_errors import ErrInsufficientFunds

__all__ = ["BankKeeper"]


def _read_int(store: KVReader, key: bytes) -> int:
    raw = store.get(key)
    return 0 if raw is None else int(decode_canonical(raw))


class BankKeeper:
    # reads
    def balance(self, store: KVReader, address: bytes) -> int:
        return _read_int(store, keys.balance_key(address))

    def supply(self, store: KVReader) -> int:
        return _read_int(store, keys.SUPPLY)

    def fee_pool(self, store: KVReader) -> int:
        return _read_int(store, keys.FEE_POOL)

    def balances(self, store: KVReader) -> Iterator[tuple[bytes, int]]:
        for key, raw in store.iterate(keys.BALANCE, prefix_end(keys.BALANCE)):
            yield keys.address_from_balance_key(key), int(decode_canonical(raw))

    # writes
    def _set_balance(self, store: KVStore, address: bytes, amount: int) -> None:
        if amount > MAX_AMOUNT:
            raise ErrAmountOverflow.wrap(f"balance of {encode_address(address)} would be {amount}")
        if amount == 0:
            store.delete(keys.balance_key(address))
        else:
            store.set(keys.balance_key(address), encode(amount))

    def _debit(self, store: KVStore, address: bytes, amount: int) -> None:
        have = self.balance(store, address)
        if have < amount:
            raise ErrInsufficientFunds.wrap(
                f"{encode_address(address)} has {have}unes, needs {amount}unes"
            )
        self._set_balance(store, address, have - amount)

    def _credit(self, store: KVStore, address: bytes, amount: int) -> None:
        self._set_balance(store, address, self.balance(store, address) + amount)

    def send(self, ctx: Context, sender: bytes, recipient: bytes, amount: int) -> None:
        self._debit(ctx.store, sender, amount)
        self._credit(ctx.store, recipient, amount)
        ctx.emit(
            EVENT_TRANSFER,
            sender=encode_address(sender),
            recipient=encode_address(recipient),
            amount=f"{amount}unes",
        )

    def collect_fee(self, ctx: Context, payer: bytes, amount: int) -> None:
        if amount == 0:
            return
        self._debit(ctx.store, payer, amount)
        ctx.store.set(keys.FEE_POOL, encode(self.fee_pool(ctx.store) + amount))
        ctx.emit(EVENT_FEE, payer=encode_address(payer), amount=f"{amount}unes")

    def lock(self, ctx: Context, owner: bytes, amount: int) -> None:
        """Take ``amount`` out of ``owner``'s balance into a module's custody (supply unchanged)."""
        self._debit(ctx.store, owner, amount)

    def unlock(self, ctx: Context, owner: bytes, amount: int) -> None:
        """Return ``amount`` from a module's custody to ``owner``'s balance (supply unchanged)."""
        self._credit(ctx.store, owner, amount)

    def burn_locked(self, ctx: Context, amount: int) -> None:
        """Destroy ``amount`` a module held (slashing): it leaves the supply."""
        supply = self.supply(ctx.store)
        if amount > supply:
            raise ErrModuleFundsShort.wrap(f"cannot burn {amount}unes of a {supply}unes supply")
        ctx.store.set(keys.SUPPLY, encode(supply - amount))
        ctx.emit(EVENT_BURN, amount=f"{amount}unes")

    def locked_to_fee_pool(self, ctx: Context, amount: int) -> None:
        """Move ``amount`` a module holds into the fee pool (supply unchanged)."""
        ctx.store.set(keys.FEE_POOL, encode(self.fee_pool(ctx.store) + amount))
        ctx.emit(EVENT_FEE_POOL_DEPOSIT, amount=f"{amount}unes")

    # genesis
    def mint_genesis(self, store: KVStore, address: bytes, amount: int) -> None:
        self._credit(store, address, amount)
        supply = self.supply(store) + amount
        if supply > MAX_AMOUNT:
            raise ErrAmountOverflow.wrap(f"genesis supply would be {supply}")
        store.set(keys.SUPPLY, encode(supply))
