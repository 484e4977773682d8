"""Miners: bonded registrations of who serves which blocks of which model, their liveness and
reputation. The only code that touches staking/ miner state.

A miner is named by the address of its own key (never its owner's account key). Its owner bonds
``bond`` unes (``bank.lock``), signs every miner tx, and gets the bond back ``miner_unbonding_blocks``
after MsgUnbondMiner. A miner with no heartbeat (MsgMinerHeartbeat or MsgUpdateMiner) for more than
``miner_heartbeat_timeout`` blocks turns inactive; its next heartbeat makes it active again.

The inference module calls ``record_outcome`` after each judged challenge or timeout and
``slash`` when a stake-weighted verdict finds a wrong result.

Bond floor: a miner whose bond slashing takes below ``min_miner_bond`` turns inactive at once (no route
or stand-in may name it, its own server opens no chain session), and no heartbeat or update makes it
active again: only a top-up does. Its owner tops it up by registering the same miner key again
(MsgRegisterMiner, the same model): the message's ``bond`` is added to what is left, which must then
reach ``min_miner_bond``; endpoint, blocks and capacity are the message's, reputation and registration
height stay. (A registration of a miner key that exists otherwise is refused, as before.)
"""

from __future__ import annotations

from collections.abc import Iterator

from nesachain.modules.staking import keys
from nesachain.modules.staking.errors import (
    ErrInvalidBlockRange,
    ErrMinerBondTooLow,
    ErrMinerExists,
    ErrMinerUnbonding,
    ErrNotMinerOwner,
    ErrUnknownMiner,
    ErrUnknownModel,
)
from nesachain.modules.staking.events import (
    EVENT_COMPLETE_MINER_UNBONDING,
    EVENT_MINER_ACTIVE,
    EVENT_MINER_HEARTBEAT,
    EVENT_MINER_INACTIVE,
    EVENT_MINER_REPUTATION,
    EVENT_REGISTER_MINER,
    EVENT_SLASH_MINER,
    EVENT_UNBOND_MINER,
    EVENT_UPDATE_MINER,
)
from nesachain.modules.staking.expected_keepers import BankKeeper, ModelRegistry
from nesachain.modules.staking.keeper import StakingKeeper, scan
from nesachain.modules.staking.params import PPM
from nesachain.modules.staking.reputation import START_REPUTATION, format_reputation, next_reputation
from nesachain.modules.staking.types import MINER_ACTIVE, MINER_INACTIVE, MINER_UNBONDING, Miner
from nesachain.store.kv import KVReader, KVStore
from nesachain.types.address import encode_address
from nesachain.types.context import Context
from nesachain.types.encoding import decode_canonical, encode
from nesachain.types.keys import u64

__all__ = ["MinerKeeper"]


class MinerKeeper:
    def __init__(self, staking: StakingKeeper, bank: BankKeeper, models: ModelRegistry) -> None:
        self.staking = staking
        self.bank = bank
        self.models = models

    # reads ------------------------------------------------------------------------------------
    def miner(self, store: KVReader, miner: bytes) -> Miner | None:
        raw = store.get(keys.miner_key(miner))
        return None if raw is None else Miner.from_state(decode_canonical(raw))

    def must_miner(self, store: KVReader, miner: bytes) -> Miner:
        m = self.miner(store, miner)
        if m is None:
            raise ErrUnknownMiner.wrap(f"no miner {encode_address(miner)}")
        return m

    def owned_miner(self, store: KVReader, owner: bytes, miner: bytes) -> Miner:
        m = self.must_miner(store, miner)
        if m.owner != owner:
            raise ErrNotMinerOwner.wrap(f"miner {encode_address(miner)} belongs to {encode_address(m.owner)}")
        return m

    def miners(self, store: KVReader) -> Iterator[Miner]:
        for _, raw in scan(store, keys.MINER):
            yield Miner.from_state(decode_canonical(raw))

    def bonded_total(self, store: KVReader) -> int:
        """Every miner bond the chain holds, unbonding ones included."""
        return sum(m.bond for m in self.miners(store))

    def check_range(self, store: KVReader, model_id: str, start: int, end: int) -> None:
        n_blocks = self.models.model_blocks(store, model_id)
        if n_blocks is None:
            raise ErrUnknownModel.wrap(f"model {model_id!r}")
        if not 0 <= start < end <= n_blocks:
            raise ErrInvalidBlockRange.wrap(f"[{start}, {end}) is not inside model {model_id!r}'s [0, {n_blocks})")

    # writes -----------------------------------------------------------------------------------
    def _save(self, store: KVStore, m: Miner) -> None:
        store.set(keys.miner_key(m.miner), encode(m.to_state()))

    def _beat(self, ctx: Context, m: Miner) -> Miner:
        """Record a heartbeat now; re-queue the inactivity deadline. A miner below the bond floor stays
        inactive, with no deadline queued (as genesis import rebuilds the queue: active miners only)."""
        store = ctx.store
        if m.status != MINER_UNBONDING and m.heartbeat_deadline:
            store.delete(keys.heartbeat_key(m.heartbeat_deadline, m.miner))
        if m.bond < self.staking.params(store).min_miner_bond:
            return m.with_(status=MINER_INACTIVE, last_heartbeat=ctx.height, heartbeat_deadline=0)
        deadline = ctx.height + self.staking.params(store).miner_heartbeat_timeout
        store.set(keys.heartbeat_key(deadline, m.miner), b"")
        if m.status == MINER_INACTIVE:
            ctx.emit(EVENT_MINER_ACTIVE, miner=encode_address(m.miner))
        return m.with_(status=MINER_ACTIVE, last_heartbeat=ctx.height, heartbeat_deadline=deadline)

    def register(self, ctx: Context, m: Miner) -> Miner:
        store = ctx.store
        params = self.staking.params(store)
        existing = self.miner(store, m.miner)
        if existing is not None:
            return self._top_up(ctx, existing, m)
        if m.bond < params.min_miner_bond:
            raise ErrMinerBondTooLow.wrap(f"bond {m.bond}unes < {params.min_miner_bond}unes")
        self.check_range(store, m.model_id, m.block_start, m.block_end)
        self.bank.lock(ctx, m.owner, m.bond)
        m = self._beat(ctx, m.with_(reputation=START_REPUTATION, registered_height=ctx.height, status=MINER_ACTIVE,
                                    heartbeat_deadline=0))
        self._save(store, m)
        store.set(keys.owner_miner_key(m.owner, m.miner), b"")
        ctx.emit(EVENT_REGISTER_MINER, miner=encode_address(m.miner), owner=encode_address(m.owner),
                 model_id=m.model_id, block_start=m.block_start, block_end=m.block_end, endpoint=m.endpoint,
                 bond=f"{m.bond}unes", throughput=m.throughput)
        return m

    def _top_up(self, ctx: Context, old: Miner, m: Miner) -> Miner:
        """The registration ``m`` of a miner key that exists: a top-up where ``old`` is below the bond floor
        (same owner and model, not unbonding), which ``m.bond`` must lift to ``min_miner_bond``."""
        store = ctx.store
        floor = self.staking.params(store).min_miner_bond
        who = encode_address(m.miner)
        if old.owner != m.owner or old.status == MINER_UNBONDING or old.bond >= floor or old.model_id != m.model_id:
            raise ErrMinerExists.wrap(f"miner {who}: only its owner tops up a miner below the bond floor, same model")
        if old.bond + m.bond < floor:
            raise ErrMinerBondTooLow.wrap(f"bond {old.bond}unes left + {m.bond}unes < {floor}unes")
        self.check_range(store, m.model_id, m.block_start, m.block_end)
        self.bank.lock(ctx, m.owner, m.bond)
        new = self._beat(ctx, old.with_(bond=old.bond + m.bond, endpoint=m.endpoint, block_start=m.block_start,
                                        block_end=m.block_end, memory_mb=m.memory_mb, throughput=m.throughput))
        self._save(store, new)
        ctx.emit(EVENT_REGISTER_MINER, miner=who, owner=encode_address(m.owner), model_id=m.model_id,
                 block_start=m.block_start, block_end=m.block_end, endpoint=m.endpoint, bond=f"{new.bond}unes",
                 throughput=m.throughput)
        return new

    def update(self, ctx: Context, owner: bytes, miner: bytes, endpoint: str, start: int, end: int,
               memory_mb: int, throughput: int) -> Miner:
        m = self.owned_miner(ctx.store, owner, miner)
        if m.status == MINER_UNBONDING:
            raise ErrMinerUnbonding.wrap(f"miner {encode_address(miner)}")
        self.check_range(ctx.store, m.model_id, start, end)
        m = self._beat(ctx, m.with_(endpoint=endpoint, block_start=start, block_end=end, memory_mb=memory_mb,
                                    throughput=throughput))
        self._save(ctx.store, m)
        ctx.emit(EVENT_UPDATE_MINER, miner=encode_address(miner), model_id=m.model_id, block_start=start,
                 block_end=end, endpoint=endpoint, throughput=throughput)
        return m

    def heartbeat(self, ctx: Context, owner: bytes, miner: bytes) -> Miner:
        m = self.owned_miner(ctx.store, owner, miner)
        if m.status == MINER_UNBONDING:
            raise ErrMinerUnbonding.wrap(f"miner {encode_address(miner)}")
        m = self._beat(ctx, m)
        self._save(ctx.store, m)
        ctx.emit(EVENT_MINER_HEARTBEAT, miner=encode_address(miner), height=ctx.height)
        return m

    def unbond(self, ctx: Context, owner: bytes, miner: bytes) -> Miner:
        store = ctx.store
        m = self.owned_miner(store, owner, miner)
        if m.status == MINER_UNBONDING:
            raise ErrMinerUnbonding.wrap(f"miner {encode_address(miner)} completes at {m.unbond_height}")
        store.delete(keys.heartbeat_key(m.heartbeat_deadline, m.miner))
        completion = ctx.height + self.staking.params(store).miner_unbonding_blocks
        m = m.with_(status=MINER_UNBONDING, unbond_height=completion)
        self._save(store, m)
        store.set(keys.miner_unbonding_key(completion, m.miner), b"")
        ctx.emit(EVENT_UNBOND_MINER, miner=encode_address(miner), owner=encode_address(owner),
                 amount=f"{m.bond}unes", completion_height=completion)
        return m

    # hooks the inference module calls (its expected_keepers.Miners) --------------------------
    def get_miner(self, store: KVReader, miner: bytes) -> Miner | None:
        return self.miner(store, miner)

    def record_miner_outcome(self, ctx: Context, miner: bytes, failed: bool) -> None:
        if self.miner(ctx.store, miner) is not None:  # gone (never, while a session names it): nothing to rate
            self.record_outcome(ctx, miner, failed)

    def slash_miner(self, ctx: Context, miner: bytes, fraction_ppm: int) -> int:
        if self.miner(ctx.store, miner) is None:  # as above: no bond left to slash
            return 0
        return self.slash(ctx, miner, fraction_ppm, "challenge_failed")

    def record_outcome(self, ctx: Context, miner: bytes, failed: bool) -> int:
        """Apply R' = R·0.8^M·1.01^(1−M) (M = 1 when ``failed``) with the clamps; returns the new R."""
        m = self.must_miner(ctx.store, miner)
        r = next_reputation(m.reputation, failed)
        self._save(ctx.store, m.with_(reputation=r))
        ctx.emit(EVENT_MINER_REPUTATION, miner=encode_address(miner), failed=str(failed).lower(),
                 reputation=format_reputation(r), previous=format_reputation(m.reputation))
        return r

    def slash(self, ctx: Context, miner: bytes, fraction_ppm: int, reason: str) -> int:
        """Burn ``fraction_ppm`` of a miner's bond (unbonding bonds too); returns unes burned. An active miner
        left below ``min_miner_bond`` turns inactive until its owner tops it up."""
        store = ctx.store
        m = self.must_miner(store, miner)
        cut = m.bond * min(fraction_ppm, PPM) // PPM
        slashed = m.with_(bond=m.bond - cut)
        below = slashed.bond < self.staking.params(store).min_miner_bond
        if below and m.status == MINER_ACTIVE:
            store.delete(keys.heartbeat_key(m.heartbeat_deadline, m.miner))
            slashed = slashed.with_(status=MINER_INACTIVE, heartbeat_deadline=0)
        self._save(store, slashed)
        if cut:
            self.bank.burn_locked(ctx, cut)
        ctx.emit(EVENT_SLASH_MINER, miner=encode_address(miner), reason=reason, burned=f"{cut}unes")
        if slashed.status != m.status:
            ctx.emit(EVENT_MINER_INACTIVE, miner=encode_address(miner), last_heartbeat=m.last_heartbeat)
        return cut

    # end block --------------------------------------------------------------------------------
    def end_block(self, ctx: Context) -> None:
        store = ctx.store
        upto = u64(ctx.height)  # deadlines < height have passed
        for key, _ in list(store.iterate(keys.HEARTBEAT_QUEUE, keys.HEARTBEAT_QUEUE + upto)):
            store.delete(key)
            miner, _ = keys.split_lp(key, len(keys.HEARTBEAT_QUEUE) + 8)
            m = self.miner(store, miner)
            if m is None or m.status != MINER_ACTIVE:
                continue
            self._save(store, m.with_(status=MINER_INACTIVE))
            ctx.emit(EVENT_MINER_INACTIVE, miner=encode_address(miner), last_heartbeat=m.last_heartbeat)
        for key, _ in list(store.iterate(keys.MINER_UNBONDING, keys.MINER_UNBONDING + u64(ctx.height + 1))):
            store.delete(key)
            miner, _ = keys.split_lp(key, len(keys.MINER_UNBONDING) + 8)
            m = self.must_miner(store, miner)
            if self.models.miner_in_unsettled_session(store, miner):  # still answerable: wait a block
                self._save(store, m.with_(unbond_height=ctx.height + 1))
                store.set(keys.miner_unbonding_key(ctx.height + 1, miner), b"")
                continue
            store.delete(keys.miner_key(miner))
            store.delete(keys.owner_miner_key(m.owner, miner))
            if m.bond:
                self.bank.unlock(ctx, m.owner, m.bond)
            ctx.emit(EVENT_COMPLETE_MINER_UNBONDING, miner=encode_address(miner), owner=encode_address(m.owner),
                     amount=f"{m.bond}unes")

    # genesis ----------------------------------------------------------------------------------
    def import_miner(self, store: KVStore, m: Miner) -> None:
        self._save(store, m)
        store.set(keys.owner_miner_key(m.owner, m.miner), b"")
        if m.status == MINER_UNBONDING:
            store.set(keys.miner_unbonding_key(m.unbond_height, m.miner), b"")
        elif m.status == MINER_ACTIVE:
            store.set(keys.heartbeat_key(m.heartbeat_deadline, m.miner), b"")
