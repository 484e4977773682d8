"""The context every keeper call gets: the store to use, block data and an event sink.

Block data is the only source of time (``time_ns`` from the header) and randomness (``entropy``,
derived from the previous block's hash and this block's time, the weighted median of the last commit's
precommit timestamps: see ``nesachain.abci.entropy``) in the state machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nesachain.store.kv import CacheStore
from nesachain.types.events import Event

__all__ = ["Context"]


@dataclass
class Context:
    store: CacheStore
    chain_id: str
    height: int = 0
    time_ns: int = 0
    entropy: bytes = b""
    events: list[Event] = field(default_factory=list)

    def emit(self, type_: str, **attrs: object) -> None:
        self.events.append(Event.new(type_, **attrs))

    def branch(self) -> Context:
        """A child context whose writes and events reach this one only through ``merge``."""
        return Context(CacheStore(self.store), self.chain_id, self.height, self.time_ns, self.entropy)

    def merge(self, child: Context) -> None:
        child.store.write()
        self.events.extend(child.events)
