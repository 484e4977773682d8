"""ABCI events: a type and string attributes, all indexed so ``tx_search`` can find them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event"]


@dataclass(frozen=True)
class Event:
    type: str
    attributes: tuple[tuple[str, str], ...]

    @classmethod
    def new(cls, type_: str, **attrs: object) -> Event:
        return cls(type_, tuple((k, str(v)) for k, v in attrs.items()))
