"""staking's events: every type its keepers (validators, slashing, miners) emit, with its attribute
keys. ``tx_search``/``block_search`` queries and clients use these names (``tombstone.evidence``,
``miner_inactive.miner``), so they never change silently: ``ATTRIBUTES`` is checked against what the
keepers really emit. Amounts are rendered ``<n>unes``; consensus addresses upper-case hex."""

from __future__ import annotations

__all__ = [
    "ATTRIBUTES", "ATTR_AMOUNT", "ATTR_CONS_ADDRESS", "ATTR_DELEGATOR", "ATTR_MINER", "ATTR_OWNER", "ATTR_REASON",
    "ATTR_VALIDATOR", "EVENT_COMPLETE_MINER_UNBONDING", "EVENT_COMPLETE_UNBONDING", "EVENT_CREATE_VALIDATOR",
    "EVENT_DELEGATE", "EVENT_JAIL", "EVENT_LIVENESS", "EVENT_MINER_ACTIVE", "EVENT_MINER_HEARTBEAT",
    "EVENT_MINER_INACTIVE", "EVENT_MINER_REPUTATION", "EVENT_REGISTER_MINER", "EVENT_SLASH", "EVENT_SLASH_MINER",
    "EVENT_TOMBSTONE", "EVENT_UNBOND", "EVENT_UNBOND_MINER", "EVENT_UNJAIL", "EVENT_UPDATE_MINER",
    "EVENT_VALIDATOR_SET_KEPT", "EVENT_VALIDATOR_UPDATE",
]

# validators and delegations
EVENT_CREATE_VALIDATOR = "create_validator"
EVENT_DELEGATE = "delegate"
EVENT_UNBOND = "unbond"
EVENT_COMPLETE_UNBONDING = "complete_unbonding"
EVENT_VALIDATOR_UPDATE = "validator_update"  # a power change sent to CometBFT
EVENT_VALIDATOR_SET_KEPT = "validator_set_kept"  # the new set would be empty: the last one stays
# slashing
EVENT_SLASH = "slash"
EVENT_JAIL = "jail"
EVENT_UNJAIL = "unjail"
EVENT_LIVENESS = "liveness"  # a validator missed a block
EVENT_TOMBSTONE = "tombstone"  # double-sign evidence: slashed, jailed for good
# miners
EVENT_REGISTER_MINER = "register_miner"
EVENT_UPDATE_MINER = "update_miner"
EVENT_MINER_HEARTBEAT = "miner_heartbeat"
EVENT_MINER_ACTIVE = "miner_active"
EVENT_MINER_INACTIVE = "miner_inactive"
EVENT_UNBOND_MINER = "unbond_miner"
EVENT_COMPLETE_MINER_UNBONDING = "complete_miner_unbonding"
EVENT_MINER_REPUTATION = "miner_reputation"
EVENT_SLASH_MINER = "slash_miner"

ATTR_VALIDATOR = "validator"  # operator address (bech32)
ATTR_CONS_ADDRESS = "cons_address"
ATTR_DELEGATOR = "delegator"
ATTR_MINER = "miner"
ATTR_OWNER = "owner"
ATTR_AMOUNT = "amount"
ATTR_REASON = "reason"

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    EVENT_CREATE_VALIDATOR: (ATTR_VALIDATOR, ATTR_CONS_ADDRESS, "moniker", ATTR_AMOUNT),
    EVENT_DELEGATE: (ATTR_DELEGATOR, ATTR_VALIDATOR, ATTR_AMOUNT, "shares"),
    EVENT_UNBOND: (ATTR_DELEGATOR, ATTR_VALIDATOR, ATTR_AMOUNT, "completion_height"),
    EVENT_COMPLETE_UNBONDING: (ATTR_DELEGATOR, ATTR_VALIDATOR, ATTR_AMOUNT),
    EVENT_VALIDATOR_UPDATE: (ATTR_VALIDATOR, ATTR_CONS_ADDRESS, "power", "previous_power"),
    EVENT_VALIDATOR_SET_KEPT: (ATTR_REASON,),
    EVENT_SLASH: (ATTR_VALIDATOR, ATTR_CONS_ADDRESS, ATTR_REASON, "fraction_ppm", "burned", "infraction_height"),
    EVENT_JAIL: (ATTR_VALIDATOR, ATTR_REASON, "jailed_until"),
    EVENT_UNJAIL: (ATTR_VALIDATOR,),
    EVENT_LIVENESS: (ATTR_VALIDATOR, ATTR_CONS_ADDRESS, "missed_blocks", "height"),
    EVENT_TOMBSTONE: (ATTR_VALIDATOR, ATTR_CONS_ADDRESS, "evidence", "infraction_height"),
    EVENT_REGISTER_MINER: (ATTR_MINER, ATTR_OWNER, "model_id", "block_start", "block_end", "endpoint", "bond",
                           "throughput"),
    EVENT_UPDATE_MINER: (ATTR_MINER, "model_id", "block_start", "block_end", "endpoint", "throughput"),
    EVENT_MINER_HEARTBEAT: (ATTR_MINER, "height"),
    EVENT_MINER_ACTIVE: (ATTR_MINER,),
    EVENT_MINER_INACTIVE: (ATTR_MINER, "last_heartbeat"),
    EVENT_UNBOND_MINER: (ATTR_MINER, ATTR_OWNER, ATTR_AMOUNT, "completion_height"),
    EVENT_COMPLETE_MINER_UNBONDING: (ATTR_MINER, ATTR_OWNER, ATTR_AMOUNT),
    EVENT_MINER_REPUTATION: (ATTR_MINER, "failed", "reputation", "previous"),
    EVENT_SLASH_MINER: (ATTR_MINER, ATTR_REASON, "burned"),
}
