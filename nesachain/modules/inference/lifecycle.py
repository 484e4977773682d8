"""Session phase changes at deadlines, run from end_block in height order.

    open ──close──▶ committing ──reveal deadline──▶ (no challenge) settled
                                               └──▶ challenging ──verdict deadline──▶ settled
                                                        ▲                │ (a hop's round decided nothing)
                                                        └── next round ──┘

At the reveal deadline a miner that served tokens (a route hop, or a stand-in the client reported
after a failover) with no commitment or no reveal is penalized (reputation failure) and unpaid.
Challenges are drawn from block entropy: each revealed (session, miner) is challenged with
probability challenge_rate, at a step drawn uniformly from [0, n_steps), decode steps included.
At a round's verdict deadline each open challenge is tallied by stake: ≥ 2/3 of all voting power
saying "mismatch" slashes the miner's bond and applies the reputation penalty; ≥ 2/3 saying "match"
applies the reward. Short of both, more than 1/3 saying "mismatch" ("contested") withholds that
miner's pay for the session, back to the client, without a slash or a reputation change: honest
validators hold more than 2/3 of the power, so the rest cannot withhold an honest miner's pay, while
a cheat the verifiers are too slow to convict in time is no longer paid. Anything else ("undecided")
never pays: the miner's share stays in escrow and a new challenge of the same hop is drawn (another
step, the entropy of the deadline's block), as a new entry with its own index and deadlines; after
``max_undecided_rounds`` undecided rounds the share returns to the client, with no slash. A session
settles when no challenge is open. No account can decide alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from nesachain.modules.inference import keys, verifiers
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
    UNDECIDED,
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


def _draw(entropy: bytes, session_id: int, hop: int, round_: int) -> tuple[int, int]:
    """(a roll in [0, PPM), a 128-bit number for the step) for a hop's round-``round_`` challenge; the step is
    this number mod n_steps, uniform over [0, n_steps) up to 2^-64."""
    d = hashlib.sha256(b"nesachain/challenge/v2" + entropy + u64(session_id) + u64(hop) + u64(round_)).digest()
    return int.from_bytes(d[:8], "big") % PPM, int.from_bytes(d[8:24], "big")


def _new_challenge(k: InferenceKeeper, ctx: Context, s: Session, index: int, hop_index: int, step: int,
                   round_: int) -> Challenge:
    """Challenge ``index`` of ``s``: step ``step`` of hop ``hop_index``, open for verdicts from now."""
    p = k.params(ctx.store)
    commit_deadline = ctx.height + p.verdict_commit_window
    c = Challenge(hop=hop_index, step=step, round=round_, commit_deadline=commit_deadline,
                  reveal_deadline=commit_deadline + p.verdict_reveal_window)
    ctx.emit(EVENT_CHALLENGE_CREATED, session_id=s.id, challenge=index, miner=encode_address(s.hops[hop_index].miner),
             step=step, round=round_, commit_deadline=c.commit_deadline, reveal_deadline=c.reveal_deadline)
    return c


def _challenge_round(k: InferenceKeeper, ctx: Context, s: Session, new: list[Challenge]) -> None:
    """Open a round of ``new`` challenges (appended to ``s``'s), or settle ``s`` when there is none."""
    if not new:
        _settle(k, ctx, s)
        return
    s = s.with_(status=CHALLENGING, challenges=(*s.challenges, *new), verdict_commit_deadline=new[0].commit_deadline,
                verdict_reveal_deadline=new[0].reveal_deadline)
    k.set_session(ctx.store, s)
    k.schedule(ctx.store, s.verdict_reveal_deadline, s.id)


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
        roll, step = _draw(ctx.entropy, s.id, i, 1)
        if hop.n_steps > 0 and roll < p.challenge_rate_ppm:
            challenges.append(_new_challenge(k, ctx, s, len(challenges), i, step % hop.n_steps, 1))
    _challenge_round(k, ctx, s.with_(hops=tuple(hops)), challenges)


def _after_verdicts(k: InferenceKeeper, ctx: Context, s: Session) -> None:
    """Tally the open round. A hop whose challenge decided nothing keeps its share in escrow and is challenged
    again at a fresh step, until ``max_undecided_rounds`` rounds have decided nothing: then its share goes back
    to the client, with no slash and no reputation change."""
    p = k.params(ctx.store)
    total = k.validators.total_voting_power(ctx.store)
    hops = list(s.hops)
    challenges = list(s.challenges)
    redraw: list[Challenge] = []
    for idx, c in enumerate(s.challenges):
        if not c.is_open:
            continue
        power = {MATCH: 0, MISMATCH: 0}
        for validator_hex, verdict in sorted(c.reveals.items()):
            if verdict in power:  # an abstain decides nothing
                power[verdict] += k.validators.voting_power(ctx.store, bytes.fromhex(validator_hex))
        outcome = UNDECIDED
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
        elif c.round < p.max_undecided_rounds:
            _, step = _draw(ctx.entropy, s.id, c.hop, c.round + 1)
            redraw.append(_new_challenge(k, ctx, s, len(challenges) + len(redraw), c.hop, step % hop.n_steps,
                                         c.round + 1))
        else:
            hops[c.hop] = replace(hop, failed="challenge_undecided")
        challenges[idx] = replace(c, outcome=outcome, match_power=power[MATCH], mismatch_power=power[MISMATCH])
        verifiers.count_tally(k.validators, ctx, p, s.id, idx, c, outcome)
        ctx.emit(EVENT_CHALLENGE_DECIDED, session_id=s.id, challenge=idx, miner=encode_address(hop.miner),
                 outcome=outcome, round=c.round, match_power=power[MATCH], mismatch_power=power[MISMATCH],
                 total_power=total)
    _challenge_round(k, ctx, s.with_(hops=tuple(hops), challenges=tuple(challenges)), redraw)


def _settle(k: InferenceKeeper, ctx: Context, s: Session) -> None:
    """Pay each unpenalized miner blocks × the tokens its revealed steps cover × price, the fee to the
    validators whose verdicts agreed (``verifier_reward_ppm`` of it) and the fee pool, the rest back."""
    p = k.params(ctx.store)
    hops: list[SessionHop] = []
    total = 0
    for hop in s.hops:
        pay = 0 if hop.failed else hop.blocks * hop.proven_tokens * s.price
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
    rewards = verifiers.reward_verifiers(k.bank, k.validators, ctx, s, fee, p.verifier_reward_ppm)
    if fee - rewards:
        k.bank.locked_to_fee_pool(ctx, fee - rewards)
    if refund:
        k.bank.unlock(ctx, s.client, refund)
    k.set_session(ctx.store, s.with_(status=SETTLED, hops=tuple(hops), fee=fee, refund=refund,
                                     verifier_rewards=rewards))
    ctx.emit(EVENT_SESSION_SETTLED, session_id=s.id, paid=total, fee=fee, refund=refund)
