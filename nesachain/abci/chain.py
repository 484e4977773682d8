"""The state machine behind the ABCI methods, in plain Python types (no protobuf here).

``Chain`` owns the committed store, the check-state used by CheckTx, and the block being
finalized. FinalizeBlock stages the block's writes and computes the app hash; Commit persists them
with the height and app hash in one transaction. Every tx outcome is a ``TxResult`` with a
registered code: nothing a tx contains can raise out of here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from nesachain.abci.entropy import block_entropy
from nesachain.abci.query import QUERY_MAX_SCAN, QueryResult, answer_query
from nesachain.abci.router import Router
from nesachain.modules.auth.keeper import AuthKeeper
from nesachain.modules.auth.module import AuthModule
from nesachain.modules.bank.keeper import BankKeeper
from nesachain.modules.bank.module import BankModule
from nesachain.modules.inference.keeper import InferenceKeeper, InferenceModels
from nesachain.modules.inference.module import InferenceModule
from nesachain.modules.staking.module import StakingModule
from nesachain.store.commit import CommitStore
from nesachain.store.kv import CacheStore
from nesachain.tx.ante import run_ante
from nesachain.tx.msg import encode_response
from nesachain.tx.tx import Tx, decode_tx
from nesachain.types.context import Context
from nesachain.types.encoding import encode
from nesachain.types.errors import ChainError
from nesachain.types.events import EVENT_MESSAGE, Event
from nesachain.types.module import AppModule, BlockInfo, ValidatorUpdate
from nesachain.types.sdk_errors import ErrInternal, ErrUnknownRequest

__all__ = ["Chain", "FinalizeResult", "QueryResult", "TxResult"]

log = structlog.get_logger("nesachain.chain")

CHAIN_ID_KEY = b"app/chain_id"
VERIFIED_CACHE = 20_000  # admitted txs whose decoding and signature check are remembered
VERIFIED_CACHE_BYTES = 64 * 2**20  # and at most this many tx bytes of them (a decoded tx holds ~3x its bytes)


@dataclass(frozen=True)
class TxResult:
    code: int = 0
    codespace: str = ""
    log: str = ""
    data: bytes = b""
    events: tuple[Event, ...] = ()

    @classmethod
    def from_error(cls, err: ChainError, events: Sequence[Event] = ()) -> TxResult:
        """A refusal: its code and log, and in ``data`` the error's structured payload (canonical
        encoding; empty when it has none), e.g. the sequence an account expects."""
        return cls(err.code, err.codespace, err.log, err.encoded_data, tuple(events))

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class FinalizeResult:
    tx_results: tuple[TxResult, ...]
    events: tuple[Event, ...]
    validator_updates: tuple[ValidatorUpdate, ...]
    app_hash: bytes


@dataclass
class _Pending:
    height: int
    store: CacheStore
    app_hash: bytes
    block_hash: bytes
    validator_updates: list[ValidatorUpdate] = field(default_factory=list)


def _internal(exc: BaseException) -> ChainError:
    log.error("internal_error", error=repr(exc))
    return ErrInternal.wrap(type(exc).__name__)


class Chain:
    def __init__(self, store: CommitStore, *, query_max_scan: int = QUERY_MAX_SCAN) -> None:
        self.store = store
        self.query_max_scan = query_max_scan
        raw = store.get(CHAIN_ID_KEY)
        self.chain_id = "" if raw is None else raw.decode()
        self.auth = AuthKeeper()
        self.bank = BankKeeper()
        self.staking = StakingModule(self.bank, models=InferenceModels())
        self.inference = InferenceModule(
            InferenceKeeper(self.bank, self.staking.miners, self.staking.keeper), self.bank)
        self.staking.add_holder("inference", self.inference.keeper.escrowed)
        self.staking.add_validator_hooks(self.inference.keeper)  # its verdict window restarts on (re)joining
        self.bank_module = BankModule(self.bank)
        self.modules: list[AppModule] = [AuthModule(self.auth), self.bank_module, self.staking, self.inference]
        self.router = Router(self.modules)
        self._genesis: CacheStore | None = None
        self._pending: _Pending | None = None
        self._check = CacheStore(store)
        self._verified: OrderedDict[bytes, Tx] = OrderedDict()  # admitted tx bytes -> decoded, signature checked
        self._verified_bytes = 0

    # Info / InitChain -----------------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.store.height

    @property
    def app_hash(self) -> bytes:
        return self.store.app_hash

    def validate_genesis(self, app_state: Mapping[str, Any]) -> None:
        """Pure check of a whole app_state; raises ValueError naming what is wrong. Each module checks
        its own part; then an exported ``bank.supply`` must equal what the modules hold together
        (balances and fee pool, stake, miner bonds, escrow, deposits), all of which import mints."""
        names = {m.name for m in self.modules}
        unknown = set(app_state) - names
        if unknown:
            raise ValueError(f"app_state has unknown modules: {sorted(unknown)}")
        states = {m.name: app_state.get(m.name, m.default_genesis()) for m in self.modules}
        for module in self.modules:
            if not isinstance(states[module.name], Mapping):
                raise ValueError(f"app_state.{module.name} must be a map")
            module.validate_genesis(states[module.name])
        supply = states[self.bank_module.name].get("supply")
        if supply is not None:
            held = {m.name: m.genesis_supply(states[m.name]) for m in self.modules}
            if sum(held.values()) != supply:
                parts = ", ".join(f"{name} {n}" for name, n in held.items() if n)
                raise ValueError(f"bank.supply {supply} does not match what the modules hold: {sum(held.values())} "
                                 f"({parts or 'nothing'})")

    def init_chain(
        self, chain_id: str, app_state: Mapping[str, Any], time_ns: int = 0
    ) -> tuple[bytes, list[ValidatorUpdate]]:
        """Load genesis into a pending store (persisted with block 1) and return its app hash."""
        self.validate_genesis(app_state)
        self.chain_id = chain_id
        genesis = CacheStore(self.store)
        genesis.set(CHAIN_ID_KEY, chain_id.encode())
        ctx = Context(genesis, chain_id, 0, time_ns)
        updates: list[ValidatorUpdate] = []
        for module in self.modules:
            updates += module.init_genesis(ctx, app_state.get(module.name, module.default_genesis()))
        self._genesis = genesis
        self._check = CacheStore(genesis)
        return self.store.hash_with(genesis.writes()), updates

    def export_genesis(self) -> dict[str, Any]:
        """Every module's state at the last committed height (or the genesis loaded by InitChain, before
        block 1): ``init_chain`` of it, with the same chain id, gives a state with this chain's app hash.
        Heights inside (deadlines, unbonding completions) are absolute, so a network started from an
        export sets CometBFT's ``initial_height`` to the exported height + 1."""
        state = self._base_store()
        return {m.name: m.export_genesis(state) for m in self.modules}

    # txs --------------------------------------------------------------------------------------
    @property
    def verified_txs(self) -> int:
        """How many admitted txs have their decoding and signature check remembered."""
        return len(self._verified)

    def _decode(self, raw: bytes, store: CacheStore) -> Tx:
        """Decode, validate statelessly and verify the signature. A tx passes through CheckTx,
        PrepareProposal, ProcessProposal, FinalizeBlock and rechecks, and this outcome depends on its
        bytes alone, so a tx that was admitted once (``_remember``) is taken from the cache."""
        max_bytes = self.auth.params(store).max_tx_bytes
        tx = self._verified.get(raw)
        if tx is not None and len(raw) <= max_bytes:
            self._verified.move_to_end(raw)
            return tx
        tx = decode_tx(raw, max_bytes=max_bytes)
        tx.verify_signature()
        return tx

    def _remember(self, raw: bytes, tx: Tx) -> None:
        """Cache a tx that passed the whole check (ante and messages), so its sender can pay for it.
        A refused tx is never cached: it costs its sender nothing, so it must cost the node nothing
        either (a 64 KB tx decodes to ~181 KB of objects)."""
        if raw in self._verified:
            self._verified.move_to_end(raw)
            return
        self._verified[raw] = tx
        self._verified_bytes += len(raw)
        while len(self._verified) > VERIFIED_CACHE or self._verified_bytes > VERIFIED_CACHE_BYTES:
            old, _ = self._verified.popitem(last=False)
            self._verified_bytes -= len(old)

    def _run_msgs(self, ctx: Context, tx: Tx) -> bytes:
        """Run each message's handler; the tx's data is the canonical list of their typed responses
        (each as ``encode_response`` makes it). A handler that answers anything but a response
        dataclass is a bug: TypeError, so the tx fails with the internal code."""
        responses = []
        for msg in tx.body.msgs:
            handler = self.router.handler(msg.TYPE)
            if handler is None:
                raise ErrUnknownRequest.wrap(f"no handler for {msg.TYPE}")
            ctx.emit(EVENT_MESSAGE, action=msg.TYPE, sender=tx.body.account, module=msg.TYPE.split("/")[0])
            responses.append(encode_response(handler(ctx, msg)))
        return encode(responses)

    def _deliver(self, parent: Context, raw: bytes) -> tuple[TxResult, Tx | None]:
        """Ante then messages on branches of ``parent``; merges what succeeded. Returns the result
        and the decoded tx (None when it does not decode or its signature fails)."""
        tx: Tx | None = None
        try:
            tx = self._decode(raw, parent.store)
            ante = parent.branch()
            run_ante(ante, tx, self.auth, self.bank, self.auth.params(parent.store).min_fee)
        except ChainError as err:
            return TxResult.from_error(err), tx
        except Exception as exc:
            return TxResult.from_error(_internal(exc)), tx
        parent.merge(ante)
        ante_events = tuple(ante.events)
        run = parent.branch()
        try:
            data = self._run_msgs(run, tx)
        except ChainError as err:
            return TxResult.from_error(err, ante_events), tx
        except Exception as exc:
            return TxResult.from_error(_internal(exc), ante_events), tx
        parent.merge(run)
        return TxResult(data=data, events=ante_events + tuple(run.events)), tx

    def _admit(self, state: Context, raw: bytes) -> TxResult:
        """The one per-tx validity check of CheckTx, PrepareProposal and ProcessProposal: decoding,
        signature, ante (chain id, sequence, fee) and the messages, run on a branch of ``state``. A tx
        that passes entirely is applied to ``state`` and its decoding cached; one that fails leaves no
        trace there (not even its fee or sequence) nor in the cache, so the txs after it are judged as
        if it had never been sent."""
        branch = state.branch()
        result, tx = self._deliver(branch, raw)
        if result.ok and tx is not None:
            state.merge(branch)
            self._remember(raw, tx)
        return result

    def _scratch(self) -> Context:
        """The state a proposal for the next height is judged against: the last committed state
        (with genesis, before block 1), the next height, no block time or entropy. PrepareProposal
        and ProcessProposal judge on equal scratch states, so every node reaches the same verdict."""
        return Context(CacheStore(self._base_store()), self.chain_id, self.height + 1)

    def check_tx(self, raw: bytes) -> TxResult:
        """Validate against the check-state; a tx that passes updates it (sequence, balances)."""
        return self._admit(Context(self._check, self.chain_id, self.height + 1), raw)

    def prepare_txs(self, txs: Sequence[bytes], max_bytes: int) -> list[bytes]:
        """The txs a proposal keeps: those that pass ``_admit`` in order on a scratch state, within
        max_bytes. ``process_txs`` accepts exactly such a list."""
        scratch = self._scratch()
        kept: list[bytes] = []
        total = 0
        for raw in txs:
            if max_bytes > 0 and total + len(raw) > max_bytes:
                break
            if self._admit(scratch, raw).ok:
                kept.append(raw)
                total += len(raw)
        return kept

    def process_txs(self, txs: Sequence[bytes]) -> bool:
        """ProcessProposal's check: every tx passes ``_admit`` in order on a scratch state (the check
        PrepareProposal and CheckTx make). False at the first tx it refuses (bad signature,
        sequence, fee, chain id, or a message that fails): the proposal is rejected."""
        scratch = self._scratch()
        try:
            for i, raw in enumerate(txs):
                result = self._admit(scratch, raw)
                if not result.ok:
                    log.info("process_proposal_reject", tx=i, code=result.code, codespace=result.codespace,
                             log=result.log)
                    return False
        except Exception as exc:  # _admit answers with codes; never let anything reach CometBFT
            log.error("process_proposal_error", error=repr(exc))
            return False
        return True

    def _base_store(self) -> CacheStore:
        return CacheStore(self._genesis if self._genesis is not None else self.store)

    # blocks -----------------------------------------------------------------------------------
    def finalize_block(
        self,
        height: int,
        txs: Sequence[bytes],
        *,
        time_ns: int = 0,
        block_hash: bytes = b"",
        info: BlockInfo | None = None,
    ) -> FinalizeResult:
        """Execute block ``height`` (``block_hash`` is its CometBFT hash, kept at Commit as the next
        block's previous hash): stage its writes and compute the app hash. The block's entropy comes from
        the previous block's hash and this block's time (``abci.entropy``), never from this block's hash,
        which its proposer shapes through its choice of txs."""
        block = self._base_store()
        entropy = block_entropy(height, self.store.block_hash, time_ns)
        ctx = Context(block, self.chain_id, height, time_ns, entropy)
        for module in self.modules:
            module.begin_block(ctx, info or BlockInfo())
        results = [self._deliver(Context(block, self.chain_id, height, time_ns, entropy), raw)[0] for raw in txs]
        updates: list[ValidatorUpdate] = []
        for module in self.modules:
            updates += module.end_block(ctx)
        writes = block.writes()
        if self._genesis is not None:
            writes = {**self._genesis.writes(), **writes}
        app_hash = self.store.hash_with(writes)
        self._pending = _Pending(height, block, app_hash, block_hash, updates)
        return FinalizeResult(tuple(results), tuple(ctx.events), tuple(updates), app_hash)

    def commit(self) -> int:
        """Persist the finalized block atomically; returns the new height."""
        pending = self._pending
        if pending is None:
            raise RuntimeError("Commit without FinalizeBlock")
        writes = pending.store.writes()
        if self._genesis is not None:
            writes = {**self._genesis.writes(), **writes}
        self.store.commit(writes, pending.height, pending.app_hash, pending.block_hash)
        self._genesis = None
        self._pending = None
        self._check = CacheStore(self.store)
        return pending.height

    # queries ----------------------------------------------------------------------------------
    def query(self, path: str, data: bytes, pause: Callable[[], object] | None = None) -> QueryResult:
        """Answer a query from the last committed state, never the block being finalized; safe on another
        thread than FinalizeBlock and Commit, calling ``pause`` now and then (see ``abci.query``)."""
        return answer_query(self.router, self.store, path, data, self.query_max_scan, pause)
