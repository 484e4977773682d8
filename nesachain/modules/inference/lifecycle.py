"""Session phase changes at deadlines, run from end_block in height order.

    open ──close──▶ committing ──reveal deadline──▶ (no challenge) settled
                                               └──▶ challenging ──verdict deadline──▶ settled

At the reveal deadline a miner that served tokens (a route hop, or a stand-in the client reported
after a failover) with no commitment or no reveal is penalized (reputation failure) and unpaid.
Challenges are drawn from block entropy: each revealed (session, miner) is challenged with
probability challenge_rate, at a step drawn the same way. At the verdict deadline each
challenge is tallied by stake: ≥ 2/3 of all voting power saying "mismatch" slashes the miner's
bond and applies the reputation penalty; ≥ 2/3 saying "match" applies the reward. Short of both,
more than 1/3 saying "mismatch" ("contested") withholds that miner's pay for the session, back to
the client, without a slash or a reputation change: honest validators hold more than 2/3 of the
power, so the rest cannot withhold an honest miner's pay, while a cheat the verifiers are too slow
to convict in time is no longer paid. Anything else ("undecided") decides nothing and pays. No
account can decide alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from nesachain.modules.inference import keys
from nesachain.modules.inference.events import (
    EVENT_CHALLENGE_CREATED,
    EVENT_CHALLENGE_DECIDED,
    EVENT_MINER_PENALIZED,
    EVENT_MINER_SLASHED,
    EVENT_SESSION_SETTLED,
)
from nesachain.modules.inference.keeper import InferenceKeeper
from nesachain.modules.inference.params import PPM
from nesachain.modules.inference.types import (
    CHALLENGING,
    COMMITTING,
    CONTESTED,
    MATCH,
    MISMATCH,
    OPEN,
    SETTLED,
    Challenge,
    Session,
    SessionHop,
)
from nesachain.types.address import encode_address
from nesachain.types.context import Context
from nesachain.types.keys import u64

__all__ = ["end_block"]


def end_block(k: InferenceKeeper, ctx: Context) -> None:
    due = list(ctx.store.iterate(keys.DUE, keys.due_key(ctx.height + 1, 0)))
    for key, _ in due:
        ctx.store.delete(key)
        session_id = int.from_bytes(key[len(keys.DUE) + 8 :], "big")
        s = k.session(ctx.store, session_id)
        if s is None:
            continue
        if s.status == OPEN and ctx.height >= s.opened_height + k.params(ctx.store).session_timeout:
            k.close_session(ctx, s, 0)
        elif s.status == COMMITTING and ctx.height >= s.reveal_deadline:
            _after_reveals(k, ctx, s)
        elif s.status == CHALLENGING and ctx.height >= s.verdict_reveal_deadline:
            _after_verdicts(k, ctx, s)


def _draw(entropy: bytes, session_id: int, hop: int) -> tuple[int, int]:
    d = hashlib.sha256(b"nesachain/challenge" + entropy + u64(session_id) + u64(hop)).digest()
    return int.from_bytes(d[:8], "big") % PPM, int.from_bytes(d[8:16], "big")


def _after_reveals(k: InferenceKeeper, ctx: Context, s: Session) -> None:
    p = k.params(ctx.store)
    hops = list(s.hops)
    challenges: list[Challenge] = []
    for i, hop in enumerate(hops):
        if hop.tokens == 0 and not hop.commitment:
            continue  # it served no token (unused session, or a stand-in took over at once): nothing to prove
        if not hop.commitment or not hop.revealed:
            reason = "no_commit" if not hop.commitment else "no_reveal"
            hops[i] = replace(hop, failed=reason)
            k.miners.record_miner_outcome(ctx, hop.miner, failed=True)
            ctx.emit(EVENT_MINER_PENALIZED, session_id=s.id, miner=encode_address(hop.miner), reason=reason)
            continue
        roll, step = _draw(ctx.entropy, s.id, i)
        if hop.n_steps > 0 and roll < p.challenge_rate_ppm:
            challenges.append(Challenge(hop=i, step=step % hop.n_steps))
            ctx.emit(EVENT_CHALLENGE_CREATED, session_id=s.id, challenge=len(challenges) - 1,
                     miner=encode_address(hop.miner), step=step % hop.n_steps)
    s = s.with_(hops=tuple(hops), challenges=tuple(challenges))
    if not challenges:
        _settle(k, ctx, s)
        return
    s = s.with_(status=CHALLENGING, verdict_commit_deadline=ctx.height + p.verdict_commit_window,
                verdict_reveal_deadline=ctx.height + p.verdict_commit_window + p.verdict_reveal_window)
    k.set_session(ctx.store, s)
    k.schedule(ctx.store, s.verdict_reveal_deadline, s.id)


def _after_verdicts(k: InferenceKeeper, ctx: Context, s: Session) -> None:
    p = k.params(ctx.store)
    total = k.validators.total_voting_power(ctx.store)
    hops = list(s.hops)
    decided: list[Challenge] = []
    for c in s.challenges:
        power = {MATCH: 0, MISMATCH: 0}
        for validator_hex, verdict in sorted(c.reveals.items()):
            power[verdict] += k.validators.voting_power(ctx.store, bytes.fromhex(validator_hex))
        outcome = "undecided"
        hop = hops[c.hop]
        if total > 0 and 3 * power[MISMATCH] >= 2 * total:
            outcome = MISMATCH
            slashed = k.miners.slash_miner(ctx, hop.miner, p.slash_fraction_ppm)
            k.miners.record_miner_outcome(ctx, hop.miner, failed=True)
            hops[c.hop] = replace(hop, failed="challenge_mismatch")
            ctx.emit(EVENT_MINER_SLASHED, session_id=s.id, miner=encode_address(hop.miner), amount=slashed)
        elif total > 0 and 3 * power[MATCH] >= 2 * total:
            outcome = MATCH
            k.miners.record_miner_outcome(ctx, hop.miner, failed=False)
        elif total > 0 and 3 * power[MISMATCH] > total:
            outcome = CONTESTED
            hops[c.hop] = replace(hop, failed="challenge_contested")
        decided.append(replace(c, outcome=outcome, match_power=power[MATCH], mismatch_power=power[MISMATCH]))
        ctx.emit(EVENT_CHALLENGE_DECIDED, session_id=s.id, miner=encode_address(hop.miner), outcome=outcome,
                 match_power=power[MATCH], mismatch_power=power[MISMATCH], total_power=total)
    _settle(k, ctx, s.with_(hops=tuple(hops), challenges=tuple(decided)))


def _settle(k: InferenceKeeper, ctx: Context, s: Session) -> None:
    """Pay each unpenalized miner blocks × the tokens it served × price, the fee to the fee pool, the
    rest back."""
    p = k.params(ctx.store)
    hops: list[SessionHop] = []
    total = 0
    for hop in s.hops:
        pay = 0 if hop.failed else hop.blocks * hop.tokens * s.price
        if pay:
            m = k.miners.get_miner(ctx.store, hop.miner)
            payee = m.owner if m is not None else hop.miner
            k.bank.unlock(ctx, payee, pay)
        hops.append(replace(hop, paid=pay))
        total += pay
    fee = total * p.protocol_fee_ppm // PPM
    refund = s.escrow - total - fee
    if refund < 0:  # open_session's escrow check makes this impossible; never mint to cover it
        raise ValueError(f"session {s.id} owes {total + fee}unes from an escrow of {s.escrow}unes")
    if fee:
        k.bank.locked_to_fee_pool(ctx, fee)
    if refund:
        k.bank.unlock(ctx, s.client, refund)
    k.set_session(ctx.store, s.with_(status=SETTLED, hops=tuple(hops), fee=fee, refund=refund))
    ctx.emit(EVENT_SESSION_SETTLED, session_id=s.id, paid=total, fee=fee, refund=refund)
