"""What a module gives the app: genesis, Msg handlers, queries and block hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nesachain.store.kv import KVReader
from nesachain.types.context import Context

__all__ = ["AppModule", "BlockInfo", "QueryFn", "ValidatorUpdate"]

MsgHandler = Callable[[Context, Any], object]  # answers a typed response dataclass (see tx.msg.encode_response)
QueryFn = Callable[[KVReader, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class ValidatorUpdate:
    pubkey: bytes  # ed25519, 32 bytes
    power: int  # 0 removes the validator


@dataclass(frozen=True)
class BlockInfo:
    """What FinalizeBlock tells the modules about the block beyond its txs."""

    proposer: bytes = b""
    # (validator address, power, signed the previous block)
    last_commit: tuple[tuple[bytes, int, bool], ...] = ()
    # (kind: "duplicate_vote" | "light_client_attack", validator address, power, height)
    misbehavior: tuple[tuple[str, bytes, int, int], ...] = ()


class AppModule(Protocol):
    name: str

    def default_genesis(self) -> dict[str, Any]: ...

    def validate_genesis(self, state: Mapping[str, Any]) -> None:
        """Pure check; raises ValueError naming what is wrong."""
        ...

    def genesis_supply(self, state: Mapping[str, Any]) -> int:
        """The unes a valid genesis state of this module holds (balances, stake, escrow, deposits):
        ``init_genesis`` brings exactly these into the supply. Pure. The app checks that an exported
        ``bank.supply`` equals the sum over all modules."""
        ...

    def init_genesis(self, ctx: Context, state: Mapping[str, Any]) -> list[ValidatorUpdate]: ...

    def export_genesis(self, store: KVReader) -> dict[str, Any]:
        """Everything the module keeps, so that ``init_genesis`` of the export rebuilds the same state."""
        ...

    def msg_handlers(self) -> Mapping[str, MsgHandler]: ...

    def queries(self) -> Mapping[str, QueryFn]: ...

    def begin_block(self, ctx: Context, info: BlockInfo) -> None: ...

    def end_block(self, ctx: Context) -> list[ValidatorUpdate]: ...
