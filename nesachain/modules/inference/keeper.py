"""inference keeper: models, sessions, result commitments and verdicts. The only code that
touches inference/ state; phase changes at deadlines live in ``lifecycle.py``.

A session's escrow is locked out of the client's balance at open and held by this module until
settlement pays the miners, the protocol fee goes to the fee pool and the rest goes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from nesachain.modules.inference import keys, verdict_window
from nesachain.modules.inference.errors import (
    ErrAlreadyCommitted,
    ErrDeadlinePassed,
    ErrEscrowTooSmall,
    ErrInvalidModel,
    ErrInvalidStandIn,
    ErrInvalidStepCount,
    ErrMinerUnavailable,
    ErrModelExists,
    ErrNotCommitted,
    ErrNotInRoute,
    ErrNotValidator,
    ErrRevealMismatch,
    ErrRouteGap,
    ErrUnauthorizedMiner,
    ErrUnknownChallenge,
    ErrUnknownModel,
    ErrUnknownSession,
    ErrWrongPhase,
)
from nesachain.modules.inference.events import (
    EVENT_MODEL_REGISTERED,
    EVENT_RESULT_COMMITTED,
    EVENT_RESULT_REVEALED,
    EVENT_SESSION_CLOSED,
    EVENT_SESSION_OPENED,
    EVENT_STAND_IN_ADDED,
    EVENT_VERDICT_COMMITTED,
    EVENT_VERDICT_REVEALED,
)
from nesachain.modules.inference.expected_keepers import BankKeeper, Miners, Validators
from nesachain.modules.inference.indexes import InferenceModels, index_keys, registered_model_blocks, session_ids
from nesachain.modules.inference.params import Params
from nesachain.modules.inference.types import (
    CHALLENGING,
    COMMITTING,
    OPEN,
    Challenge,
    Model,
    Session,
    SessionHop,
    max_cost,
    result_commitment,
    verdict_commitment,
    verdict_deadlines,
)
from nesachain.store.kv import KVReader, KVStore, prefix_end
from nesachain.types.address import encode_address
from nesachain.types.context import Context
from nesachain.types.encoding import decode_canonical, encode

__all__ = ["InferenceKeeper", "InferenceModels", "registered_model_blocks", "session_ids"]


class InferenceKeeper:
    def __init__(self, bank: BankKeeper, miners: Miners, validators: Validators) -> None:
        self.bank = bank
        self.miners = miners
        self.validators = validators

    def after_validator_bonded(self, ctx: Context, operator: bytes) -> None:
        """Staking's hook: the validator joined the set or unjailed, so its verdict window starts afresh."""
        verdict_window.reset(ctx.store, operator)

    # params, models -----------------------------------------------------------------------------
    def params(self, store: KVReader) -> Params:
        raw = store.get(keys.PARAMS)
        return Params() if raw is None else Params.from_dict(decode_canonical(raw))

    def set_params(self, store: KVStore, params: Params) -> None:
        params.validate()
        store.set(keys.PARAMS, encode(params.to_dict()))

    def model(self, store: KVReader, model_id: str) -> Model | None:
        raw = store.get(keys.model_key(model_id))
        return None if raw is None else Model.from_state(decode_canonical(raw))

    def models(self, store: KVReader) -> Iterator[Model]:
        for _, raw in store.iterate(keys.MODEL, prefix_end(keys.MODEL)):
            yield Model.from_state(decode_canonical(raw))

    def register_model(self, ctx: Context, model: Model) -> None:
        if self.model(ctx.store, model.model_id) is not None:
            raise ErrModelExists.wrap(model.model_id)
        minimum = self.params(ctx.store).min_model_deposit
        if model.deposit < minimum:
            raise ErrInvalidModel.wrap(f"deposit {model.deposit}unes is below the minimum {minimum}unes")
        self.bank.lock(ctx, model.owner, model.deposit)
        self.set_model(ctx.store, model)
        ctx.emit(EVENT_MODEL_REGISTERED, model_id=model.model_id, owner=encode_address(model.owner),
                 n_blocks=model.n_blocks, price=model.price)

    def set_model(self, store: KVStore, model: Model) -> None:
        store.set(keys.model_key(model.model_id), encode(model.to_state()))

    # sessions -----------------------------------------------------------------------------------
    def session(self, store: KVReader, session_id: int) -> Session | None:
        raw = store.get(keys.session_key(session_id))
        return None if raw is None else Session.from_state(decode_canonical(raw))

    def must_session(self, store: KVReader, session_id: int) -> Session:
        s = self.session(store, session_id)
        if s is None:
            raise ErrUnknownSession.wrap(f"session {session_id}")
        return s

    def set_session(self, store: KVStore, s: Session) -> None:
        """Write ``s`` and move its index entries (status, and miners with status) along with it."""
        old = self.session(store, s.id)
        before = index_keys(old) if old is not None else []
        after = index_keys(s)
        for key in before:
            if key not in after:
                store.delete(key)
        for key in after:
            if key not in before:
                store.set(key, b"")
        store.set(keys.session_key(s.id), encode(s.to_state()))

    def ensure_indexes(self, store: KVStore) -> int:
        """Index every session once (a chain whose sessions were written before the indexes existed);
        returns how many were indexed. Idempotent: a marker says when it is done."""
        if store.get(keys.INDEX_VERSION) is not None:
            return 0
        sessions = list(self.sessions(store))
        for s in sessions:
            for key in index_keys(s):
                store.set(key, b"")
        store.set(keys.INDEX_VERSION, b"1")
        return len(sessions)

    def sessions(self, store: KVReader) -> Iterator[Session]:
        for _, raw in store.iterate(keys.SESSION, prefix_end(keys.SESSION)):
            yield Session.from_state(decode_canonical(raw))

    def escrowed(self, store: KVReader) -> int:
        """Tokens this module holds: escrow of unsettled sessions plus model deposits."""
        held = sum(m.deposit for m in self.models(store))
        sessions = (self.session(store, i) for i in session_ids(store, "unsettled"))  # settled ones hold none
        return held + sum(s.escrow for s in sessions if s is not None)

    def schedule(self, store: KVStore, height: int, session_id: int) -> None:
        store.set(keys.due_key(height, session_id), b"")

    def due(self, store: KVReader) -> Iterator[tuple[int, int]]:
        """Every scheduled (height, session id), in that order; some name a session whose phase has
        moved on already (end_block then finds nothing to do for them)."""
        for key, _ in store.iterate(keys.DUE, prefix_end(keys.DUE)):
            yield int.from_bytes(key[len(keys.DUE) : len(keys.DUE) + 8], "big"), int.from_bytes(key[-8:], "big")

    def next_session_id(self, store: KVReader) -> int:
        raw = store.get(keys.NEXT_SESSION)
        return 1 if raw is None else int(decode_canonical(raw))

    def set_next_session_id(self, store: KVStore, next_id: int) -> None:
        """Set the id the next session gets (genesis); 1, before any session, is not stored."""
        if next_id > 1:
            store.set(keys.NEXT_SESSION, encode(next_id))

    def check_route(self, store: KVReader, model: Model, route: list[tuple[bytes, int, int]]) -> None:
        pos = 0
        seen: set[bytes] = set()
        for miner_addr, start, end in route:
            if start != pos:
                raise ErrRouteGap.wrap(f"route jumps from block {pos} to {start}")
            if miner_addr in seen:
                raise ErrRouteGap.wrap(f"miner {encode_address(miner_addr)} appears twice")
            seen.add(miner_addr)
            self._check_miner(store, model, miner_addr, start, end)
            pos = end
        if pos != model.n_blocks:
            raise ErrRouteGap.wrap(f"route ends at block {pos}, the model has {model.n_blocks}")

    def _check_miner(self, store: KVReader, model: Model, miner_addr: bytes, start: int, end: int) -> None:
        m = self.miners.get_miner(store, miner_addr)
        who = encode_address(miner_addr)
        if m is None:
            raise ErrMinerUnavailable.wrap(f"{who} is not a registered miner")
        if m.status != "active" or m.bond <= 0:
            raise ErrMinerUnavailable.wrap(f"{who} is {m.status}")
        if m.model_id != model.model_id or not m.block_start <= start < end <= m.block_end:
            raise ErrMinerUnavailable.wrap(
                f"{who} serves {m.model_id} blocks [{m.block_start}, {m.block_end}), not [{start}, {end})")

    def open_session(self, ctx: Context, client: bytes, model_id: str, route: list[tuple[bytes, int, int]],
                     max_tokens: int, escrow: int) -> Session:
        model = self.model(ctx.store, model_id)
        if model is None:
            raise ErrUnknownModel.wrap(model_id)
        params = self.params(ctx.store)
        if len(route) > params.max_route_hops:
            raise ErrRouteGap.wrap(f"route has {len(route)} hops, the limit is {params.max_route_hops}")
        self.check_route(ctx.store, model, route)
        need = max_cost(model.price, model.n_blocks, max_tokens, params.protocol_fee_ppm)
        if escrow < need:
            raise ErrEscrowTooSmall.wrap(f"escrow {escrow}unes < maximum cost {need}unes")
        self.bank.lock(ctx, client, escrow)
        sid = self.next_session_id(ctx.store)
        ctx.store.set(keys.NEXT_SESSION, encode(sid + 1))
        s = Session(sid, client, model_id, tuple(SessionHop(m, a, b) for m, a, b in route), max_tokens,
                    escrow, model.price, ctx.height)
        self.set_session(ctx.store, s)
        self.schedule(ctx.store, ctx.height + params.session_timeout, sid)
        ctx.emit(EVENT_SESSION_OPENED, session_id=sid, client=encode_address(client), model_id=model_id,
                 escrow=escrow, hops=len(route))
        return s

    def add_stand_in(self, ctx: Context, s: Session, hop: int, miner: bytes, from_token: int,
                     attempt: int) -> Session:
        """The client reports a failover: ``miner`` took over route hop ``hop``'s blocks after
        ``from_token`` tokens, under the client's ``attempt``-th session name for that hop. It is then
        paid, committed and challenged for the tokens it served, like a route hop."""
        if s.status != OPEN:
            raise ErrWrongPhase.wrap(f"session {s.id} is {s.status}, stand-ins are reported before it closes")
        if not 0 <= hop < s.route_len:
            raise ErrInvalidStandIn.wrap(f"session {s.id} has route hops 0-{s.route_len - 1}, not {hop}")
        if s.hop_index(miner) is not None:
            raise ErrInvalidStandIn.wrap(f"miner {encode_address(miner)} is in session {s.id} already")
        p = self.params(ctx.store)
        if len(s.hops) - s.route_len >= p.max_route_hops:
            raise ErrInvalidStandIn.wrap(f"session {s.id} has {p.max_route_hops} stand-ins, the limit")
        earlier = [h for h in s.hops if h.stands_in_for == hop]
        last_from, last_attempt = (earlier[-1].from_token, earlier[-1].attempt) if earlier else (0, 0)
        if attempt <= last_attempt:
            raise ErrInvalidStandIn.wrap(f"attempt {attempt} must be above {last_attempt}")
        if not last_from <= from_token <= s.max_tokens:
            raise ErrInvalidStandIn.wrap(f"from_token {from_token} must lie in [{last_from}, {s.max_tokens}]")
        model = self.model(ctx.store, s.model_id)
        if model is None:
            raise ErrUnknownModel.wrap(s.model_id)
        route_hop = s.hops[hop]
        self._check_miner(ctx.store, model, miner, route_hop.start, route_hop.end)
        s = s.with_(hops=(*s.hops, SessionHop(miner, route_hop.start, route_hop.end, stands_in_for=hop,
                                              attempt=attempt, from_token=from_token)))
        self.set_session(ctx.store, s)
        ctx.emit(EVENT_STAND_IN_ADDED, session_id=s.id, hop=hop, miner=encode_address(miner), from_token=from_token)
        return s

    def close_session(self, ctx: Context, s: Session, tokens: int) -> Session:
        if s.status != OPEN:
            raise ErrWrongPhase.wrap(f"session {s.id} is {s.status}")
        tokens = min(tokens, s.max_tokens)
        p = self.params(ctx.store)
        commit_deadline = ctx.height + p.commit_window
        s = s.with_(status=COMMITTING, tokens=tokens, closed_height=ctx.height, commit_deadline=commit_deadline,
                    reveal_deadline=commit_deadline + p.reveal_window, hops=s.with_served_tokens(tokens))
        self.set_session(ctx.store, s)
        self.schedule(ctx.store, s.reveal_deadline, s.id)
        ctx.emit(EVENT_SESSION_CLOSED, session_id=s.id, tokens=tokens)
        return s

    # miners' commit–reveal ------------------------------------------------------------------------
    def _hop(self, store: KVReader, s: Session, owner: bytes, miner: bytes) -> int:
        idx = s.hop_index(miner)
        if idx is None:
            raise ErrNotInRoute.wrap(f"{encode_address(miner)} in session {s.id}")
        m = self.miners.get_miner(store, miner)
        if m is None or m.owner != owner:
            raise ErrUnauthorizedMiner.wrap(f"{encode_address(owner)} for miner {encode_address(miner)}")
        return idx

    def commit_result(self, ctx: Context, session_id: int, owner: bytes, miner: bytes, commitment: bytes) -> None:
        s = self.must_session(ctx.store, session_id)
        if s.status != COMMITTING:
            raise ErrWrongPhase.wrap(f"session {s.id} is {s.status}, commitments need a closed session")
        if ctx.height > s.commit_deadline:
            raise ErrDeadlinePassed.wrap(f"commit deadline was height {s.commit_deadline}")
        i = self._hop(ctx.store, s, owner, miner)
        if s.hops[i].commitment:
            raise ErrAlreadyCommitted.wrap(f"miner {encode_address(miner)} in session {s.id}")
        hops = list(s.hops)
        hops[i] = replace(hops[i], commitment=commitment)
        self.set_session(ctx.store, s.with_(hops=tuple(hops)))
        ctx.emit(EVENT_RESULT_COMMITTED, session_id=s.id, miner=encode_address(miner))

    def reveal_result(self, ctx: Context, session_id: int, owner: bytes, miner: bytes, root: bytes, salt: bytes,
                      n_steps: int) -> None:
        """Reveal root, salt and step count. The count must lie in [from_token + 1, max_tokens] for a hop that
        served tokens: its log holds the ``from_token`` steps a stand-in replays, then one step per token it
        served (the prefill, then one decode step per further token), and no session runs more than
        ``max_tokens`` steps. A count short of from_token + tokens is taken, and pays only the tokens it
        covers (``SessionHop.proven_tokens``); one above is not refused, because the tokens are the client's
        word, and pays no more than the tokens."""
        s = self.must_session(ctx.store, session_id)
        if s.status != COMMITTING:
            raise ErrWrongPhase.wrap(f"session {s.id} is {s.status}")
        if ctx.height > s.reveal_deadline:
            raise ErrDeadlinePassed.wrap(f"reveal deadline was height {s.reveal_deadline}")
        i = self._hop(ctx.store, s, owner, miner)
        hop = s.hops[i]
        if not hop.commitment:
            raise ErrNotCommitted.wrap(f"miner {encode_address(miner)} in session {s.id}")
        if hop.revealed:
            raise ErrAlreadyCommitted.wrap(f"miner {encode_address(miner)} already revealed")
        if result_commitment(s.id, miner, root, n_steps, salt) != hop.commitment:
            raise ErrRevealMismatch.wrap(f"miner {encode_address(miner)} in session {s.id}")
        if n_steps > s.max_tokens:
            raise ErrInvalidStepCount.wrap(f"{n_steps} steps in a session of at most {s.max_tokens} tokens")
        if hop.tokens > 0 and n_steps <= hop.from_token:
            raise ErrInvalidStepCount.wrap(
                f"{n_steps} steps cover none of the {hop.tokens} tokens served from token {hop.from_token}")
        hops = list(s.hops)
        hops[i] = replace(hop, root=root, n_steps=n_steps, revealed=True)
        self.set_session(ctx.store, s.with_(hops=tuple(hops)))
        ctx.emit(EVENT_RESULT_REVEALED, session_id=s.id, miner=encode_address(miner), root=root.hex(), n_steps=n_steps)

    # validators' commit–reveal --------------------------------------------------------------------
    def _challenge(self, ctx: Context, session_id: int, challenge: int, validator: bytes) -> tuple[Session, int]:
        s = self.must_session(ctx.store, session_id)
        if s.status != CHALLENGING:
            raise ErrWrongPhase.wrap(f"session {s.id} is {s.status}, not challenging")
        if not 0 <= challenge < len(s.challenges):
            raise ErrUnknownChallenge.wrap(f"session {s.id} has {len(s.challenges)} challenges")
        if not s.challenges[challenge].is_open:
            raise ErrWrongPhase.wrap(f"challenge {challenge} of session {s.id} is decided: "
                                     f"{s.challenges[challenge].outcome}")
        if self.validators.voting_power(ctx.store, validator) <= 0:
            raise ErrNotValidator.wrap(encode_address(validator))
        return s, challenge

    def _put_challenge(self, ctx: Context, s: Session, idx: int, c: Challenge) -> None:
        challenges = list(s.challenges)
        challenges[idx] = c
        self.set_session(ctx.store, s.with_(challenges=tuple(challenges)))

    def commit_verdict(self, ctx: Context, session_id: int, challenge: int, validator: bytes,
                       commitment: bytes) -> None:
        s, idx = self._challenge(ctx, session_id, challenge, validator)
        c = s.challenges[idx]
        commit_deadline, _ = verdict_deadlines(s, c)
        if ctx.height > commit_deadline:
            raise ErrDeadlinePassed.wrap(f"verdict commit deadline was height {commit_deadline}")
        if validator.hex() in c.commits:
            raise ErrAlreadyCommitted.wrap(f"validator {encode_address(validator)} already committed a verdict")
        self._put_challenge(ctx, s, idx, replace(c, commits={**c.commits, validator.hex(): commitment}))
        ctx.emit(EVENT_VERDICT_COMMITTED, session_id=s.id, challenge=idx, validator=encode_address(validator))

    def reveal_verdict(self, ctx: Context, session_id: int, challenge: int, validator: bytes, verdict: str,
                       salt: bytes) -> None:
        s, idx = self._challenge(ctx, session_id, challenge, validator)
        c = s.challenges[idx]
        commit_deadline, reveal_deadline = verdict_deadlines(s, c)
        if ctx.height <= commit_deadline:
            raise ErrWrongPhase.wrap(f"verdicts are revealed after height {commit_deadline}")
        if ctx.height > reveal_deadline:
            raise ErrDeadlinePassed.wrap(f"verdict reveal deadline was height {reveal_deadline}")
        key = validator.hex()
        if key not in c.commits:
            raise ErrNotCommitted.wrap(f"validator {encode_address(validator)} committed no verdict")
        if key in c.reveals:
            raise ErrAlreadyCommitted.wrap(f"validator {encode_address(validator)} already revealed")
        if verdict_commitment(s.id, idx, validator, verdict, salt) != c.commits[key]:
            raise ErrRevealMismatch.wrap(f"verdict of {encode_address(validator)}")
        self._put_challenge(ctx, s, idx, replace(c, reveals={**c.reveals, key: verdict}))
        ctx.emit(EVENT_VERDICT_REVEALED, session_id=s.id, challenge=idx, validator=encode_address(validator),
                 verdict=verdict)
