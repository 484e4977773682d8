"""Slashing: liveness from each block's last commit, equivocation from CometBFT's misbehavior.

Downtime (Cosmos x/slashing): every validator in the last commit has a bitmap over the last
``signed_blocks_window`` blocks. When its misses in the window exceed ``max_missed_blocks`` (after a
first full window since it joined), it is slashed ``slash_fraction_downtime``, jailed (power 0 from
two heights later) until ``height + downtime_jail_blocks``, and its window is reset. It may then
send MsgUnjail. Joining the set and unjailing also tell ``hooks`` (the inference module's verdict window
restarts then too).

Double-signing (DUPLICATE_VOTE, and LIGHT_CLIENT_ATTACK alike): the validator is slashed
``slash_fraction_double_sign`` of the stake bonded to it at the infraction height (delegations bonded
later are untouched; unbonding entries created at or after the infraction are cut), jailed and
tombstoned: it can never unjail, and its consensus key can never be reused.

Unjailing also needs the operator's own delegation to be worth at least ``min_self_delegation``
(an operator that undelegated below it was jailed for it).

Slashed tokens are burned (they leave the supply); see ``keeper.py``.
"""

from __future__ import annotations

from nesachain.modules.staking import keys
from nesachain.modules.staking.errors import (
    ErrJailPeriod,
    ErrNotJailed,
    ErrPowerTooLow,
    ErrSelfDelegationTooLow,
    ErrTombstoned,
)
from nesachain.modules.staking.events import EVENT_LIVENESS, EVENT_TOMBSTONE, EVENT_UNJAIL
from nesachain.modules.staking.expected_keepers import ValidatorHooks
from nesachain.modules.staking.keeper import StakingKeeper, scan
from nesachain.modules.staking.types import SigningInfo, Validator, cons_address_hex
from nesachain.store.kv import KVReader, KVStore
from nesachain.types.address import encode_address
from nesachain.types.context import Context
from nesachain.types.encoding import decode_canonical, encode
from nesachain.types.module import BlockInfo

__all__ = ["TOMBSTONE_HEIGHT", "SlashingKeeper"]

TOMBSTONE_HEIGHT = 2**63 - 1
# Power in a commit lags the app's decisions by two heights; blame a miss on the block it belongs to.
VALIDATOR_UPDATE_DELAY = 2


class SlashingKeeper:
    def __init__(self, staking: StakingKeeper) -> None:
        self.staking = staking
        self.hooks: list[ValidatorHooks] = []  # told when a validator joins the set or unjails

    # signing infos ----------------------------------------------------------------------------
    def signing_info(self, store: KVReader, cons: bytes) -> SigningInfo | None:
        raw = store.get(keys.signing_info_key(cons))
        return None if raw is None else SigningInfo.from_state(decode_canonical(raw))

    def set_signing_info(self, store: KVStore, cons: bytes, info: SigningInfo) -> None:
        store.set(keys.signing_info_key(cons), encode(info.to_state()))

    def missed_indices(self, store: KVReader, cons: bytes) -> list[int]:
        prefix = keys.missed_prefix(cons)
        return [int.from_bytes(k[-8:], "big") for k, _ in scan(store, prefix)]

    def reset_window(self, store: KVStore, cons: bytes, start_height: int) -> None:
        for key, _ in list(scan(store, keys.missed_prefix(cons))):
            store.delete(key)
        self.set_signing_info(store, cons, SigningInfo(start_height))

    # begin block ------------------------------------------------------------------------------
    def begin_block(self, ctx: Context, info: BlockInfo) -> None:
        for kind, address, _power, height in sorted(info.misbehavior, key=lambda m: (m[3], m[1], m[0])):
            self.handle_equivocation(ctx, kind, address, height)
        for address, _power, signed in sorted(info.last_commit):
            self.handle_signature(ctx, address, signed)

    def handle_signature(self, ctx: Context, cons: bytes, signed: bool) -> None:
        store = ctx.store
        val = self.staking.validator_by_cons(store, cons)
        if val is None or val.jailed:
            return
        params = self.staking.params(store)
        window = params.signed_blocks_window
        info = self.signing_info(store, cons) or SigningInfo(ctx.height)
        index = info.index_offset % window
        was_missed = store.get(keys.missed_key(cons, index)) is not None
        missed = info.missed
        if not signed and not was_missed:
            store.set(keys.missed_key(cons, index), b"\x01")
            missed += 1
        elif signed and was_missed:
            store.delete(keys.missed_key(cons, index))
            missed -= 1
        info = SigningInfo(info.start_height, info.index_offset + 1, missed)
        if not signed:
            ctx.emit(EVENT_LIVENESS, validator=encode_address(val.operator), cons_address=cons.hex().upper(),
                     missed_blocks=missed, height=ctx.height)
        if ctx.height > info.start_height + window and missed > params.max_missed_blocks:
            infraction = max(ctx.height - VALIDATOR_UPDATE_DELAY - 1, 0)
            self.staking.slash(ctx, val.operator, infraction, params.slash_fraction_downtime, "missing_signature")
            self.staking.jail(ctx, val.operator, ctx.height + params.downtime_jail_blocks, "missing_signature")
            self.reset_window(store, cons, ctx.height)
            return
        self.set_signing_info(store, cons, info)

    def handle_equivocation(self, ctx: Context, kind: str, cons: bytes, height: int) -> None:
        val = self.staking.validator_by_cons(ctx.store, cons)
        if val is None or val.tombstoned:
            return
        params = self.staking.params(ctx.store)
        self.staking.slash(ctx, val.operator, height, params.slash_fraction_double_sign, kind)
        self.staking.jail(ctx, val.operator, TOMBSTONE_HEIGHT, kind)
        fresh = self.staking.must_validator(ctx.store, val.operator)
        self.staking.set_validator(ctx.store, fresh.with_(tombstoned=True))
        ctx.emit(EVENT_TOMBSTONE, validator=encode_address(val.operator), cons_address=cons_address_hex(val.pubkey),
                 evidence=kind, infraction_height=height)

    def on_bonded(self, ctx: Context, val: Validator) -> None:
        """A validator (re)joined the set: its liveness window starts now."""
        self.reset_window(ctx.store, val.cons_address, ctx.height)
        for hooks in self.hooks:
            hooks.after_validator_bonded(ctx, val.operator)

    # unjail -----------------------------------------------------------------------------------
    def unjail(self, ctx: Context, operator: bytes) -> None:
        store = ctx.store
        val = self.staking.must_validator(store, operator)
        if val.tombstoned:
            raise ErrTombstoned.wrap(f"validator {encode_address(operator)}")
        if not val.jailed:
            raise ErrNotJailed.wrap(f"validator {encode_address(operator)}")
        if ctx.height < val.jailed_until:
            raise ErrJailPeriod.wrap(f"jailed until height {val.jailed_until}, now {ctx.height}")
        params = self.staking.params(store)
        if val.power(params.power_reduction) == 0:
            raise ErrPowerTooLow.wrap(f"validator {encode_address(operator)} holds {val.tokens}unes")
        own = self.staking.self_delegation(store, val)
        if own < params.min_self_delegation:
            raise ErrSelfDelegationTooLow.wrap(f"the operator's own delegation is worth {own}unes, "
                                               f"min_self_delegation is {params.min_self_delegation}unes")
        self.staking.set_validator(store, val.with_(jailed=False, jailed_until=0))
        self.reset_window(store, val.cons_address, ctx.height)
        for hooks in self.hooks:
            hooks.after_validator_bonded(ctx, operator)
        ctx.emit(EVENT_UNJAIL, validator=encode_address(operator))
