"""staking keeper: validators, delegations, unbonding and the validator set CometBFT runs.

The only code that touches staking/ validator state. Bonded tokens leave the delegator's balance
through ``bank.lock`` and come back through ``bank.unlock`` when an unbonding entry matures; the
supply is unchanged by both. Slashed tokens are **burned**: ``bank.burn_locked`` takes them out of
the supply (nothing goes to the fee pool), so after every block

    sum(balances) + fee pool + validator tokens + unbonding + miner bonds == supply.

Delegations hold shares of a validator: a delegation is worth ``shares * tokens // total shares``.
Shares minted round down and shares burned round up, so rounding never moves value from one
delegator to another. A delegation keeps its shares by the height they were bonded at
(``tranches.py``), so a slash for an infraction at height H burns a fraction of the shares bonded at
H (and of the unbonding entries that left after H), never of stake bonded later: the share price,
and so every later delegation, is untouched.

Unbonding entries per (delegator, validator) pair are capped at ``max_entries`` (Cosmos' 7), so
``slash`` walks at most that many per delegator. An operator whose undelegation leaves less than
``min_self_delegation`` bonded to its own validator is jailed (as in Cosmos); it unjails once it has
bonded enough again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from nesachain.modules.staking import keys, tranches
from nesachain.modules.staking.errors import (
    ErrDelegationTooSmall,
    ErrDuplicateConsKey,
    ErrInsufficientShares,
    ErrMaxUnbondingEntries,
    ErrNoDelegation,
    ErrUnknownValidator,
    ErrValidatorDrained,
    ErrValidatorExists,
)
from nesachain.modules.staking.events import (
    EVENT_COMPLETE_UNBONDING,
    EVENT_CREATE_VALIDATOR,
    EVENT_DELEGATE,
    EVENT_JAIL,
    EVENT_SLASH,
    EVENT_UNBOND,
    EVENT_VALIDATOR_SET_KEPT,
    EVENT_VALIDATOR_UPDATE,
)
from nesachain.modules.staking.expected_keepers import BankKeeper
from nesachain.modules.staking.params import PPM, Params
from nesachain.modules.staking.types import UnbondingEntry, Validator, cons_address_hex
from nesachain.store.kv import KVReader, KVStore, prefix_end
from nesachain.types.address import address_from_pubkey, encode_address
from nesachain.types.context import Context
from nesachain.types.encoding import decode_canonical, encode
from nesachain.types.keys import u64
from nesachain.types.module import ValidatorUpdate

__all__ = ["SELF_DELEGATION_JAIL", "StakingKeeper"]

SELF_DELEGATION_JAIL = "self_delegation_below_min"  # the jail reason


def scan(store: KVReader, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    return store.iterate(prefix, prefix_end(prefix))


class StakingKeeper:
    def __init__(self, bank: BankKeeper) -> None:
        self.bank = bank

    # params -----------------------------------------------------------------------------------
    def params(self, store: KVReader) -> Params:
        raw = store.get(keys.PARAMS)
        return Params() if raw is None else Params.from_dict(decode_canonical(raw))

    def set_params(self, store: KVStore, params: Params) -> None:
        params.validate()
        store.set(keys.PARAMS, encode(params.to_dict()))

    def _next_id(self, store: KVStore) -> int:
        raw = store.get(keys.NEXT_ID)
        n = 1 if raw is None else int(decode_canonical(raw))
        store.set(keys.NEXT_ID, encode(n + 1))
        return n

    # validators -------------------------------------------------------------------------------
    def validator(self, store: KVReader, operator: bytes) -> Validator | None:
        raw = store.get(keys.validator_key(operator))
        return None if raw is None else Validator.from_state(decode_canonical(raw))

    def must_validator(self, store: KVReader, operator: bytes) -> Validator:
        val = self.validator(store, operator)
        if val is None:
            raise ErrUnknownValidator.wrap(f"no validator with operator {encode_address(operator)}")
        return val

    def validator_by_cons(self, store: KVReader, cons_address: bytes) -> Validator | None:
        op = store.get(keys.cons_index_key(cons_address))
        return None if op is None else self.validator(store, op)

    def validators(self, store: KVReader) -> Iterator[Validator]:
        for _, raw in scan(store, keys.VALIDATOR):
            yield Validator.from_state(decode_canonical(raw))

    def set_validator(self, store: KVStore, val: Validator) -> None:
        store.set(keys.validator_key(val.operator), encode(val.to_state()))

    def last_power(self, store: KVReader, operator: bytes) -> int:
        raw = store.get(keys.last_power_key(operator))
        return 0 if raw is None else int(decode_canonical(raw))

    def last_powers(self, store: KVReader) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        for key, raw in scan(store, keys.LAST_POWER):
            out[keys.split_lp(key, len(keys.LAST_POWER))[0]] = int(decode_canonical(raw))
        return out

    def create_validator(self, ctx: Context, operator: bytes, pubkey: bytes, moniker: str, amount: int) -> Validator:
        store = ctx.store
        if self.validator(store, operator) is not None:
            raise ErrValidatorExists.wrap(f"operator {encode_address(operator)} already runs a validator")
        cons = address_from_pubkey(pubkey)
        if store.get(keys.cons_index_key(cons)) is not None:
            raise ErrDuplicateConsKey.wrap(f"consensus address {cons.hex().upper()} is taken")
        self.bank.lock(ctx, operator, amount)
        val = Validator(operator, pubkey, moniker, tokens=0, shares=0, created_height=ctx.height)
        store.set(keys.cons_index_key(cons), operator)
        self.set_validator(store, val)
        ctx.emit(EVENT_CREATE_VALIDATOR, validator=encode_address(operator), cons_address=cons.hex().upper(),
                 moniker=moniker, amount=f"{amount}unes")
        self._add_delegation(ctx, operator, val, amount)
        return self.must_validator(store, operator)

    # delegations ------------------------------------------------------------------------------
    def delegation_tranches(self, store: KVReader, delegator: bytes, operator: bytes) -> tranches.Tranches:
        raw = store.get(keys.delegation_key(delegator, operator))
        return () if raw is None else tuple((int(h), int(n)) for h, n in decode_canonical(raw))

    def delegation(self, store: KVReader, delegator: bytes, operator: bytes) -> int:
        return tranches.total(self.delegation_tranches(store, delegator, operator))

    def delegations_of(self, store: KVReader, delegator: bytes) -> Iterator[tuple[bytes, int]]:
        prefix = keys.DELEGATION + bytes([len(delegator)]) + delegator
        for key, raw in scan(store, prefix):
            yield keys.split_lp(key, len(prefix))[0], sum(int(n) for _, n in decode_canonical(raw))

    def delegations_to(self, store: KVReader, operator: bytes) -> Iterator[tuple[bytes, int]]:
        prefix = keys.DELEGATION_BY_VAL + bytes([len(operator)]) + operator
        for key, _ in scan(store, prefix):
            delegator = keys.split_lp(key, len(prefix))[0]
            yield delegator, self.delegation(store, delegator, operator)

    def all_delegations(self, store: KVReader) -> Iterator[tuple[bytes, bytes, tranches.Tranches]]:
        for key, raw in scan(store, keys.DELEGATION):
            delegator, off = keys.split_lp(key, len(keys.DELEGATION))
            operator, _ = keys.split_lp(key, off)
            yield delegator, operator, tuple((int(h), int(n)) for h, n in decode_canonical(raw))

    def set_delegation(self, store: KVStore, delegator: bytes, operator: bytes, held: tranches.Tranches) -> None:
        if not held:
            store.delete(keys.delegation_key(delegator, operator))
            store.delete(keys.delegation_by_val_key(operator, delegator))
        else:
            store.set(keys.delegation_key(delegator, operator), encode([[h, n] for h, n in held]))
            store.set(keys.delegation_by_val_key(operator, delegator), b"")

    def _add_delegation(self, ctx: Context, delegator: bytes, val: Validator, amount: int) -> int:
        """Tokens already locked: mint shares and add ``amount`` to the validator."""
        if val.shares > 0 and val.tokens == 0:
            raise ErrValidatorDrained.wrap(f"validator {encode_address(val.operator)}")
        shares = val.shares_for(amount)
        if shares == 0:
            raise ErrDelegationTooSmall.wrap(f"{amount}unes buys no share of {encode_address(val.operator)}")
        self.set_validator(ctx.store, val.with_(tokens=val.tokens + amount, shares=val.shares + shares))
        held = self.delegation_tranches(ctx.store, delegator, val.operator)
        self.set_delegation(ctx.store, delegator, val.operator, tranches.add(held, ctx.height, shares))
        ctx.emit(EVENT_DELEGATE, delegator=encode_address(delegator), validator=encode_address(val.operator),
                 amount=f"{amount}unes", shares=shares)
        return shares

    def delegate(self, ctx: Context, delegator: bytes, operator: bytes, amount: int) -> int:
        val = self.must_validator(ctx.store, operator)
        if val.shares > 0 and val.tokens == 0:
            raise ErrValidatorDrained.wrap(f"validator {encode_address(operator)}")
        if val.shares_for(amount) == 0:
            raise ErrDelegationTooSmall.wrap(f"{amount}unes buys no share of {encode_address(operator)}")
        self.bank.lock(ctx, delegator, amount)
        return self._add_delegation(ctx, delegator, val, amount)

    def undelegate(self, ctx: Context, delegator: bytes, operator: bytes, amount: int) -> UnbondingEntry:
        store = ctx.store
        params = self.params(store)
        val = self.must_validator(store, operator)
        held = self.delegation_tranches(store, delegator, operator)
        if not held:
            raise ErrNoDelegation.wrap(f"{encode_address(delegator)} has no delegation to {encode_address(operator)}")
        worth = val.tokens_for(tranches.total(held))
        if amount > worth:
            raise ErrInsufficientShares.wrap(f"asked for {amount}unes, the delegation is worth {worth}unes")
        entries = sum(1 for _ in scan(store, keys.unbonding_pair_prefix(delegator, operator)))
        if entries >= params.max_entries:
            raise ErrMaxUnbondingEntries.wrap(f"{encode_address(delegator)} has {entries} entries unbonding from "
                                              f"{encode_address(operator)}; wait for one to complete")
        burn = val.shares_to_remove(amount)
        left, bonded_height = tranches.remove_newest(held, burn)
        self.set_delegation(store, delegator, operator, left)
        val = val.with_(tokens=val.tokens - amount, shares=val.shares - burn)
        self.set_validator(store, val)
        completion = ctx.height + params.unbonding_blocks
        entry = UnbondingEntry(self._next_id(store), delegator, operator, amount, ctx.height, completion,
                               bonded_height)
        self.set_unbonding(store, entry)
        ctx.emit(EVENT_UNBOND, delegator=encode_address(delegator), validator=encode_address(operator),
                 amount=f"{amount}unes", completion_height=completion)
        if delegator == operator and not val.jailed and self.self_delegation(store, val) < params.min_self_delegation:
            self.jail(ctx, operator, ctx.height, SELF_DELEGATION_JAIL)  # it may unjail once it bonds enough again
        return entry

    def self_delegation(self, store: KVReader, val: Validator) -> int:
        """What the operator's own delegation to its validator is worth, in unes."""
        return val.tokens_for(self.delegation(store, val.operator, val.operator))

    # unbonding --------------------------------------------------------------------------------
    def set_unbonding(self, store: KVStore, e: UnbondingEntry) -> None:
        store.set(keys.unbonding_key(e.completion_height, e.id), encode(e.to_state()))
        store.set(keys.unbonding_by_val_key(e.validator, e.id), u64(e.completion_height))
        store.set(keys.unbonding_by_del_key(e.delegator, e.validator, e.id), u64(e.completion_height))

    def _delete_unbonding(self, store: KVStore, e: UnbondingEntry) -> None:
        store.delete(keys.unbonding_key(e.completion_height, e.id))
        store.delete(keys.unbonding_by_val_key(e.validator, e.id))
        store.delete(keys.unbonding_by_del_key(e.delegator, e.validator, e.id))

    def unbonding_entries(self, store: KVReader) -> Iterator[UnbondingEntry]:
        for _, raw in scan(store, keys.UNBONDING):
            yield UnbondingEntry.from_state(decode_canonical(raw))

    def _entries_by(self, store: KVReader, prefix: bytes) -> Iterator[UnbondingEntry]:
        for key, completion in list(scan(store, prefix)):
            entry_id = int.from_bytes(key[-8:], "big")
            raw = store.get(keys.UNBONDING + completion + u64(entry_id))
            if raw is not None:
                yield UnbondingEntry.from_state(decode_canonical(raw))

    def unbonding_of(self, store: KVReader, delegator: bytes) -> Iterator[UnbondingEntry]:
        return self._entries_by(store, keys.UNBONDING_BY_DEL + bytes([len(delegator)]) + delegator)

    def unbonding_from(self, store: KVReader, operator: bytes) -> Iterator[UnbondingEntry]:
        return self._entries_by(store, keys.UNBONDING_BY_VAL + bytes([len(operator)]) + operator)

    def complete_unbonding(self, ctx: Context) -> None:
        """Return every entry whose completion height has been reached."""
        matured = list(ctx.store.iterate(keys.UNBONDING, keys.UNBONDING + u64(ctx.height + 1)))
        for _, raw in matured:
            e = UnbondingEntry.from_state(decode_canonical(raw))
            self._delete_unbonding(ctx.store, e)
            if e.amount:
                self.bank.unlock(ctx, e.delegator, e.amount)
            ctx.emit(EVENT_COMPLETE_UNBONDING, delegator=encode_address(e.delegator),
                     validator=encode_address(e.validator), amount=f"{e.amount}unes")

    # slashing primitives ----------------------------------------------------------------------
    def slash(self, ctx: Context, operator: bytes, infraction_height: int, fraction_ppm: int, reason: str) -> int:
        """Burn ``fraction_ppm`` of the stake that was bonded to the validator at ``infraction_height``:
        of each delegation's shares bonded at or before it (the share price does not move, so stake
        bonded later is untouched), and of each unbonding entry that left at or after it and had been
        bonded at or before it. Returns unes burned."""
        store = ctx.store
        val = self.must_validator(store, operator)
        burned = 0
        for e in list(self.unbonding_from(store, val.operator)):
            if e.creation_height < infraction_height or e.bonded_height > infraction_height:
                continue
            cut = e.amount * fraction_ppm // PPM
            if cut:
                self.set_unbonding(store, replace(e, amount=e.amount - cut))
                burned += cut
        cut_shares = 0
        for delegator, _ in list(self.delegations_to(store, val.operator)):
            held = self.delegation_tranches(store, delegator, val.operator)
            cut = tranches.at_stake(held, infraction_height) * fraction_ppm // PPM
            if cut:
                self.set_delegation(store, delegator, val.operator, tranches.cut_at_stake(held, infraction_height, cut))
                cut_shares += cut
        cut_tokens = cut_shares * val.tokens // val.shares if val.shares else 0  # rounds down: the price never falls
        self.set_validator(store, val.with_(tokens=val.tokens - cut_tokens, shares=val.shares - cut_shares))
        burned += cut_tokens
        if burned:
            self.bank.burn_locked(ctx, burned)
        ctx.emit(EVENT_SLASH, validator=encode_address(val.operator), cons_address=cons_address_hex(val.pubkey),
                 reason=reason, fraction_ppm=fraction_ppm, burned=f"{burned}unes",
                 infraction_height=infraction_height)
        return burned

    def jail(self, ctx: Context, operator: bytes, until: int, reason: str) -> None:
        val = self.must_validator(ctx.store, operator)
        self.set_validator(ctx.store, val.with_(jailed=True, jailed_until=until))
        ctx.emit(EVENT_JAIL, validator=encode_address(operator), reason=reason, jailed_until=until)

    # the validator set ------------------------------------------------------------------------
    def wanted_powers(self, store: KVReader) -> dict[bytes, int]:
        """The top ``max_validators`` unjailed validators by power (ties: lower operator address)."""
        params = self.params(store)
        ranked = sorted(
            (-v.power(params.power_reduction), v.operator)
            for v in self.validators(store)
            if not v.jailed and v.power(params.power_reduction) > 0
        )
        return {op: -neg for neg, op in ranked[: params.max_validators]}

    def apply_validator_set(self, ctx: Context) -> tuple[list[ValidatorUpdate], list[Validator]]:
        """Compare the wanted set with the last one sent and return the differences (power 0
        removes; CometBFT applies them two heights later) and the validators that just joined.
        An empty set is never sent."""
        store = ctx.store
        wanted = self.wanted_powers(store)
        last = self.last_powers(store)
        if not wanted:
            if last:
                ctx.emit(EVENT_VALIDATOR_SET_KEPT, reason="the new set would be empty")
            return [], []
        updates: list[ValidatorUpdate] = []
        joined: list[Validator] = []
        for op in sorted(set(wanted) | set(last)):
            new, old = wanted.get(op, 0), last.get(op, 0)
            if new == old:
                continue
            val = self.must_validator(store, op)
            updates.append(ValidatorUpdate(val.pubkey, new))
            if new:
                store.set(keys.last_power_key(op), encode(new))
            else:
                store.delete(keys.last_power_key(op))
            if old == 0:
                joined.append(val)
            ctx.emit(EVENT_VALIDATOR_UPDATE, validator=encode_address(op), cons_address=cons_address_hex(val.pubkey),
                     power=new, previous_power=old)
        return updates, joined

    def voting_power(self, store: KVReader, operator: bytes) -> int:
        """Consensus power of this operator's validator in the current set (0 if jailed or out)."""
        val = self.validator(store, operator)
        return 0 if val is None or val.jailed else self.last_power(store, operator)

    def total_voting_power(self, store: KVReader) -> int:
        return sum(self.last_powers(store).values())

    # totals (the supply invariant) ------------------------------------------------------------
    def bonded_total(self, store: KVReader) -> int:
        return sum(v.tokens for v in self.validators(store))

    def unbonding_total(self, store: KVReader) -> int:
        return sum(e.amount for e in self.unbonding_entries(store))
