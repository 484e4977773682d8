"""inference's events: every type the keeper and its lifecycle emit, with its attribute keys.
Clients and ``tx_search``/``block_search`` find a session by ``<type>.session_id`` and a miner by
``<type>.miner``, so these names never change silently: ``ATTRIBUTES`` is checked against what the
module really emits."""

from __future__ import annotations

__all__ = [
    "ATTRIBUTES", "ATTR_CHALLENGE", "ATTR_MINER", "ATTR_MODEL_ID", "ATTR_SESSION_ID", "ATTR_VALIDATOR",
    "EVENT_CHALLENGE_CREATED", "EVENT_CHALLENGE_DECIDED", "EVENT_MINER_PENALIZED", "EVENT_MINER_SLASHED",
    "EVENT_MODEL_REGISTERED", "EVENT_RESULT_COMMITTED", "EVENT_RESULT_REVEALED", "EVENT_SESSIONS_INDEXED",
    "EVENT_SESSION_CLOSED", "EVENT_SESSION_OPENED", "EVENT_SESSION_SETTLED", "EVENT_STAND_IN_ADDED",
    "EVENT_VERDICT_COMMITTED", "EVENT_VERDICT_MISSED", "EVENT_VERDICT_REVEALED", "EVENT_VERIFIER_JAILED",
    "EVENT_VERIFIER_REWARDED",
]

EVENT_MODEL_REGISTERED = "model_registered"
EVENT_SESSION_OPENED = "session_opened"
EVENT_STAND_IN_ADDED = "stand_in_added"
EVENT_SESSION_CLOSED = "session_closed"
EVENT_RESULT_COMMITTED = "result_committed"
EVENT_RESULT_REVEALED = "result_revealed"
EVENT_MINER_PENALIZED = "miner_penalized"  # served tokens without a commitment or a reveal
EVENT_CHALLENGE_CREATED = "challenge_created"
EVENT_VERDICT_COMMITTED = "verdict_committed"
EVENT_VERDICT_REVEALED = "verdict_revealed"
EVENT_MINER_SLASHED = "miner_slashed"  # a 2/3 mismatch verdict
EVENT_CHALLENGE_DECIDED = "challenge_decided"
EVENT_SESSION_SETTLED = "session_settled"
EVENT_VERIFIER_REWARDED = "verifier_rewarded"  # a validator's share of a session's fee for agreeing verdicts
EVENT_VERDICT_MISSED = "verdict_missed"  # a validator with power revealed nothing on a tallied challenge
EVENT_VERIFIER_JAILED = "verifier_jailed"  # it missed too many in its verdict window: slashed and jailed
EVENT_SESSIONS_INDEXED = "sessions_indexed"  # once, on a chain whose sessions predate the indexes

ATTR_SESSION_ID = "session_id"
ATTR_MINER = "miner"
ATTR_VALIDATOR = "validator"
ATTR_CHALLENGE = "challenge"
ATTR_MODEL_ID = "model_id"

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    EVENT_MODEL_REGISTERED: (ATTR_MODEL_ID, "owner", "n_blocks", "price"),
    EVENT_SESSION_OPENED: (ATTR_SESSION_ID, "client", ATTR_MODEL_ID, "escrow", "hops"),
    EVENT_STAND_IN_ADDED: (ATTR_SESSION_ID, "hop", ATTR_MINER, "from_token"),
    EVENT_SESSION_CLOSED: (ATTR_SESSION_ID, "tokens"),
    EVENT_RESULT_COMMITTED: (ATTR_SESSION_ID, ATTR_MINER),
    EVENT_RESULT_REVEALED: (ATTR_SESSION_ID, ATTR_MINER, "root", "n_steps"),
    EVENT_MINER_PENALIZED: (ATTR_SESSION_ID, ATTR_MINER, "reason"),
    EVENT_CHALLENGE_CREATED: (ATTR_SESSION_ID, ATTR_CHALLENGE, ATTR_MINER, "step", "round", "commit_deadline",
                              "reveal_deadline"),
    EVENT_VERDICT_COMMITTED: (ATTR_SESSION_ID, ATTR_CHALLENGE, ATTR_VALIDATOR),
    EVENT_VERDICT_REVEALED: (ATTR_SESSION_ID, ATTR_CHALLENGE, ATTR_VALIDATOR, "verdict"),
    EVENT_MINER_SLASHED: (ATTR_SESSION_ID, ATTR_MINER, "amount"),
    EVENT_CHALLENGE_DECIDED: (ATTR_SESSION_ID, ATTR_CHALLENGE, ATTR_MINER, "outcome", "round", "match_power",
                              "mismatch_power", "total_power"),
    EVENT_SESSION_SETTLED: (ATTR_SESSION_ID, "paid", "fee", "refund"),
    EVENT_VERIFIER_REWARDED: (ATTR_SESSION_ID, ATTR_VALIDATOR, "amount"),
    EVENT_VERDICT_MISSED: (ATTR_SESSION_ID, ATTR_CHALLENGE, ATTR_VALIDATOR, "missed", "window"),
    EVENT_VERIFIER_JAILED: (ATTR_VALIDATOR, "missed", "window", "slashed", "jailed_until"),
    EVENT_SESSIONS_INDEXED: ("sessions",),
}
