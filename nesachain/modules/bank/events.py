"""bank's events: every type the keeper emits, with its attribute keys (``tx_search`` and clients
search by these names, so they never change silently: ``ATTRIBUTES`` is checked against what the
keeper really emits). Amounts are rendered ``<n>unes``."""

from __future__ import annotations

__all__ = ["ATTRIBUTES", "ATTR_AMOUNT", "ATTR_PAYER", "ATTR_RECIPIENT", "ATTR_SENDER", "EVENT_BURN", "EVENT_FEE",
           "EVENT_FEE_POOL_DEPOSIT", "EVENT_TRANSFER"]

EVENT_TRANSFER = "transfer"  # a MsgSend moved tokens
EVENT_FEE = "fee"  # a tx's fee went into the fee pool
EVENT_BURN = "burn"  # tokens a module held left the supply (slashing)
EVENT_FEE_POOL_DEPOSIT = "fee_pool_deposit"  # tokens a module held went into the fee pool (protocol fees)

ATTR_SENDER = "sender"
ATTR_RECIPIENT = "recipient"
ATTR_PAYER = "payer"
ATTR_AMOUNT = "amount"

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    EVENT_TRANSFER: (ATTR_SENDER, ATTR_RECIPIENT, ATTR_AMOUNT),
    EVENT_FEE: (ATTR_PAYER, ATTR_AMOUNT),
    EVENT_BURN: (ATTR_AMOUNT,),
    EVENT_FEE_POOL_DEPOSIT: (ATTR_AMOUNT,),
}
