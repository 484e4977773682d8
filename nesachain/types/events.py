"""ABCI events: a type and string attributes, all indexed so ``tx_search`` can find them.

Each module declares its event types (and the attribute keys clients search by) in its own
``events.py``; keepers emit through those names. The app itself emits one event per message.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ATTR_ACTION", "ATTR_MODULE", "ATTR_SENDER", "EVENT_MESSAGE", "Event"]

EVENT_MESSAGE = "message"  # one per message of a tx, before it runs
ATTR_ACTION = "action"  # the message's @type, e.g. "bank/MsgSend"
ATTR_SENDER = "sender"  # the tx's account
ATTR_MODULE = "module"  # the module that handles the message


@dataclass(frozen=True)
class Event:
    type: str
    attributes: tuple[tuple[str, str], ...]

    @classmethod
    def new(cls, type_: str, **attrs: object) -> Event:
        return cls(type_, tuple((k, str(v)) for k, v in attrs.items()))
