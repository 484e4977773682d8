"""inference genesis: params, registered models, every session (open, committing, challenging or
settled, with its hops, commitments, reveals, challenges, verdicts and payments), the session
counter and the due schedule. Import and export mirror each other: a chain exported and imported
holds the same state, byte for byte (the session indexes are rebuilt from the sessions, exactly as
the keeper keeps them).

The tokens this module holds exist only inside it after an export (a model's deposit, an unsettled
session's escrow): import mints them into the supply and locks them here at once, never taking them
from a listed balance. A settled session holds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from nesachain.modules.inference import verdict_window, verifiers
from nesachain.modules.inference.keeper import InferenceKeeper
from nesachain.modules.inference.msgs import MsgRegisterModel
from nesachain.modules.inference.params import Params
from nesachain.modules.inference.types import (
    CONTESTED,
    MATCH,
    MISMATCH,
    SETTLED,
    STATUSES,
    UNDECIDED,
    VERDICTS,
    Model,
    Session,
)
from nesachain.modules.inference.verdict_window import VerdictWindow
from nesachain.modules.inference.verifiers import VerifierStats
from nesachain.store.kv import KVReader, KVStore
from nesachain.tx.msg import decode_msg
from nesachain.types.address import decode_address, encode_address
from nesachain.types.coin import MAX_AMOUNT
from nesachain.types.context import Context
from nesachain.types.errors import ChainError

__all__ = ["default_genesis", "export_genesis", "genesis_supply", "init_genesis", "validate_genesis"]

FIELDS = {"params", "models", "sessions", "next_session", "due", "verifier_stats", "verdict_windows"}
HOP_FAILURES = ("", "no_commit", "no_reveal", "challenge_mismatch", "challenge_contested", "challenge_undecided")
OUTCOMES = ("", MATCH, MISMATCH, CONTESTED, UNDECIDED)
_U64 = 2**64 - 1


class GenesisBank(Protocol):
    def mint_genesis(self, store: KVStore, address: bytes, amount: int) -> None: ...

    def lock(self, ctx: Context, owner: bytes, amount: int) -> None: ...


def default_genesis() -> dict[str, Any]:
    return {"params": Params().to_dict(), "models": []}


def _as_msg(entry: Mapping[str, Any]) -> MsgRegisterModel:
    if not isinstance(entry, Mapping):
        raise ValueError("a model entry must be a map")
    msg = decode_msg({"@type": MsgRegisterModel.TYPE, **entry})
    assert isinstance(msg, MsgRegisterModel)
    msg.validate_basic()
    return msg


def _list(state: Mapping[str, Any], name: str) -> list[Any]:
    value = state.get(name, [])
    if not isinstance(value, list):
        raise ValueError(f"inference.{name} must be a list")
    return value


def _nat(value: object, what: str, lo: int = 0, hi: int = _U64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _hash(value: bytes, what: str) -> None:
    if len(value) not in (0, 32):
        raise ValueError(f"{what} must be empty or 32 bytes, got {len(value)}")


def _check_hops(s: Session, n_blocks: int, what: str) -> None:
    if not s.hops:
        raise ValueError(f"{what}.hops is empty")
    route = s.route_len
    pos = 0
    for j, h in enumerate(s.hops):
        w = f"{what}.hops[{j}]"
        for name in ("start", "end", "n_steps", "paid", "attempt", "from_token", "tokens"):
            _nat(getattr(h, name), f"{w}.{name}")
        if not h.start < h.end <= n_blocks:
            raise ValueError(f"{w}: blocks [{h.start}, {h.end}) are not inside the model's [0, {n_blocks})")
        _hash(h.commitment, f"{w}.commitment")
        _hash(h.root, f"{w}.root")
        if not isinstance(h.revealed, bool) or (h.revealed and not h.commitment):
            raise ValueError(f"{w}.revealed must be a boolean, and true only with a commitment")
        if h.failed not in HOP_FAILURES:
            raise ValueError(f"{w}.failed must be one of {HOP_FAILURES}, got {h.failed!r}")
        if j < route:  # the route opened with, in block order, then the stand-ins
            if h.stands_in_for != -1 or h.start != pos:
                raise ValueError(f"{w}: the route's hops come first and cover the blocks in order from {pos}")
            pos = h.end
        elif not isinstance(h.stands_in_for, int) or not 0 <= h.stands_in_for < route:
            raise ValueError(f"{w}.stands_in_for must name a route hop in [0, {route}), got {h.stands_in_for!r}")
        elif (h.start, h.end) != (s.hops[h.stands_in_for].start, s.hops[h.stands_in_for].end):
            raise ValueError(f"{w}: a stand-in serves exactly the blocks of the route hop it took over")
    if pos != n_blocks:
        raise ValueError(f"{what}: the route ends at block {pos}, the model has {n_blocks}")
    if len({h.miner for h in s.hops}) != len(s.hops):
        raise ValueError(f"{what}: a miner appears twice in the session's hops")


def _check_challenges(s: Session, raw: Mapping[str, Any], what: str) -> None:
    for c_idx, c in enumerate(s.challenges):
        w = f"{what}.challenges[{c_idx}]"
        if isinstance(c.hop, bool) or not isinstance(c.hop, int) or not 0 <= c.hop < len(s.hops):
            raise ValueError(f"{w}.hop must name one of the session's {len(s.hops)} hops, got {c.hop!r}")
        for name in ("step", "match_power", "mismatch_power", "commit_deadline", "reveal_deadline"):
            _nat(getattr(c, name), f"{w}.{name}")
        _nat(c.round, f"{w}.round", 1)
        if c.commit_deadline > c.reveal_deadline:
            raise ValueError(f"{w}: its verdict commit deadline is after its reveal deadline")
        for commitment in c.commits.values():
            if len(commitment) != 32:
                raise ValueError(f"{w}: a verdict commitment must be 32 bytes")
        if not set(c.reveals) <= set(c.commits):
            raise ValueError(f"{w}: a validator revealed a verdict it never committed")
        if any(v not in VERDICTS for v in c.reveals.values()):
            raise ValueError(f"{w}: a verdict must be one of {VERDICTS}")
        if c.outcome not in OUTCOMES:
            raise ValueError(f"{w}.outcome must be one of {OUTCOMES}, got {c.outcome!r}")
        miner = raw["challenges"][c_idx].get("miner")
        if miner is not None and miner != encode_address(s.hops[c.hop].miner):
            raise ValueError(f"{w}.miner {miner} is not the miner of hop {c.hop}")


def _check_session(s: Session, raw: Mapping[str, Any], models: Mapping[str, int], what: str) -> None:
    for name in ("id", "max_tokens", "escrow", "price", "opened_height", "tokens", "closed_height",
                 "commit_deadline", "reveal_deadline", "verdict_commit_deadline", "verdict_reveal_deadline", "fee",
                 "refund", "verifier_rewards"):
        _nat(getattr(s, name), f"{what}.{name}", 1 if name in ("id", "max_tokens") else 0)
    _nat(s.escrow, f"{what}.escrow", 0, MAX_AMOUNT)
    if not isinstance(s.model_id, str) or s.model_id not in models:
        raise ValueError(f"{what}.model_id {s.model_id!r} is not a model of inference.models")
    if s.status not in STATUSES:
        raise ValueError(f"{what}.status must be one of {STATUSES}, got {s.status!r}")
    if s.tokens > s.max_tokens:
        raise ValueError(f"{what}: tokens {s.tokens} exceed max_tokens {s.max_tokens}")
    _check_hops(s, models[s.model_id], what)
    _check_challenges(s, raw, what)
    paid = sum(h.paid for h in s.hops)
    if "paid" in raw and raw["paid"] != paid:
        raise ValueError(f"{what}.paid {raw['paid']!r} is not the sum of its hops' pay {paid}")
    if s.status == SETTLED:
        if paid + s.fee + s.refund != s.escrow:
            raise ValueError(f"{what}: a settled session's pay {paid} + fee {s.fee} + refund {s.refund} must "
                             f"add up to its escrow {s.escrow}")
        if s.verifier_rewards > s.fee:
            raise ValueError(f"{what}: verifier rewards {s.verifier_rewards} exceed the fee {s.fee} they are part of")
    elif paid or s.fee or s.refund or s.verifier_rewards:
        raise ValueError(f"{what}: a session that has not settled has paid nothing yet (pay, fee and refund are 0)")


def validate_genesis(state: Mapping[str, Any]) -> None:
    """Pure check; raises ValueError naming the first problem (and the entry it is in)."""
    unknown = set(state) - FIELDS
    if unknown:
        raise ValueError(f"unknown inference genesis fields: {sorted(unknown)}")
    raw_params = state.get("params", {})
    if not isinstance(raw_params, dict):
        raise ValueError("inference.params must be a map")
    params = Params.from_dict(raw_params)
    models: dict[str, int] = {}
    for i, entry in enumerate(_list(state, "models")):
        try:
            msg = _as_msg(entry)
        except ChainError as err:
            raise ValueError(f"inference.models[{i}]: {err.log}") from None
        if msg.model_id in models:
            raise ValueError(f"inference.models[{i}]: duplicate model {msg.model_id}")
        if msg.deposit < params.min_model_deposit:
            raise ValueError(f"inference.models[{i}]: deposit {msg.deposit} is below min_model_deposit "
                             f"{params.min_model_deposit}")
        models[msg.model_id] = msg.n_blocks
    next_session = _nat(state.get("next_session", 1), "inference.next_session", 1)
    ids: set[int] = set()
    for i, raw in enumerate(_list(state, "sessions")):
        what = f"inference.sessions[{i}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{what} must be a map")
        try:
            s = Session.from_json(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{what} is malformed: {exc!r}") from None
        _check_session(s, raw, models, what)
        if s.id in ids:
            raise ValueError(f"{what}: duplicate session id {s.id}")
        if s.id >= next_session:
            raise ValueError(f"{what}: id {s.id} is not below inference.next_session {next_session}")
        ids.add(s.id)
    due: set[tuple[int, int]] = set()
    for i, entry in enumerate(_list(state, "due")):
        if not isinstance(entry, dict) or set(entry) != {"height", "session_id"}:
            raise ValueError(f"inference.due[{i}] must have exactly height and session_id")
        height = _nat(entry["height"], f"inference.due[{i}].height")
        sid = _nat(entry["session_id"], f"inference.due[{i}].session_id")
        if sid not in ids:
            raise ValueError(f"inference.due[{i}] names session {sid}, which inference.sessions does not hold")
        if (height, sid) in due:
            raise ValueError(f"inference.due[{i}]: session {sid} is scheduled twice at height {height}")
        due.add((height, sid))
    seen: set[bytes] = set()
    for i, entry in enumerate(_list(state, "verifier_stats")):
        try:
            st = VerifierStats.from_json(entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"inference.verifier_stats[{i}] is malformed: {exc}") from None
        if st.validator in seen:
            raise ValueError(f"inference.verifier_stats[{i}]: {entry['validator']} appears twice")
        seen.add(st.validator)
    seen = set()
    for i, entry in enumerate(_list(state, "verdict_windows")):
        try:
            w = VerdictWindow.from_json(entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"inference.verdict_windows[{i}] is malformed: {exc}") from None
        if len(w.bitmap) != (params.verdict_window + 7) // 8:
            raise ValueError(f"inference.verdict_windows[{i}]: its bitmap is not {params.verdict_window} bits")
        if w.validator in seen:
            raise ValueError(f"inference.verdict_windows[{i}]: {entry['validator']} appears twice")
        seen.add(w.validator)


def genesis_supply(state: Mapping[str, Any]) -> int:
    """The unes a (valid) inference genesis holds, all minted at import: model deposits and the escrow
    of every session that has not settled."""
    deposits = sum(int(m["deposit"]) for m in state.get("models", []))
    escrow = sum(int(s["escrow"]) for s in state.get("sessions", []) if s["status"] != SETTLED)
    return deposits + escrow


def init_genesis(k: InferenceKeeper, bank: GenesisBank, ctx: Context, state: Mapping[str, Any]) -> None:
    validate_genesis(state)
    store = ctx.store
    k.set_params(store, Params.from_dict(dict(state.get("params", {}))))
    for entry in state.get("models", []):
        msg = _as_msg(entry)
        owner = decode_address(msg.owner)
        bank.mint_genesis(store, owner, msg.deposit)
        k.register_model(ctx, Model(msg.model_id, owner, msg.architecture, msg.n_blocks,
                                    tuple(msg.block_hashes), msg.price, msg.deposit))
    for raw in state.get("sessions", []):
        s = Session.from_json(raw)
        if s.status != SETTLED and s.escrow:
            bank.mint_genesis(store, s.client, s.escrow)
            bank.lock(ctx, s.client, s.escrow)
        k.set_session(store, s)
    k.set_next_session_id(store, state.get("next_session", 1))
    for entry in state.get("due", []):
        k.schedule(store, entry["height"], entry["session_id"])
    for entry in state.get("verifier_stats", []):
        verifiers.set_stats(store, VerifierStats.from_json(entry))
    for entry in state.get("verdict_windows", []):
        verdict_window.set_window(store, VerdictWindow.from_json(entry))


def export_genesis(k: InferenceKeeper, store: KVReader) -> dict[str, Any]:
    models = []
    for m in k.models(store):
        models.append({"owner": encode_address(m.owner), "model_id": m.model_id, "architecture": m.architecture,
                       "n_blocks": m.n_blocks, "block_hashes": list(m.block_hashes), "price": m.price,
                       "deposit": m.deposit})
    return {
        "params": k.params(store).to_dict(),
        "models": models,
        "sessions": [s.to_json() for s in k.sessions(store)],
        "next_session": k.next_session_id(store),
        "due": [{"height": h, "session_id": sid} for h, sid in k.due(store)],
        "verifier_stats": [st.to_json() for st in verifiers.all_stats(store)],
        "verdict_windows": [w.to_json() for w in verdict_window.all_windows(store)],
    }
