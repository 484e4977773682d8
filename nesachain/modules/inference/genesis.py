"""inference genesis: params and registered models (sessions start empty). Import/export mirror."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from nesachain.modules.inference.keeper import InferenceKeeper
from nesachain.modules.inference.msgs import MsgRegisterModel
from nesachain.modules.inference.params import Params
from nesachain.modules.inference.types import Model
from nesachain.store.kv import KVReader, KVStore
from nesachain.tx.msg import decode_msg
from nesachain.types.address import decode_address, encode_address
from nesachain.types.context import Context
from nesachain.types.errors import ChainError

__all__ = ["default_genesis", "export_genesis", "init_genesis", "validate_genesis"]


class GenesisBank(Protocol):
    def mint_genesis(self, store: KVStore, address: bytes, amount: int) -> None: ...


def default_genesis() -> dict[str, Any]:
    return {"params": Params().to_dict(), "models": []}


def _as_msg(entry: Mapping[str, Any]) -> MsgRegisterModel:
    msg = decode_msg({"@type": MsgRegisterModel.TYPE, **entry})
    assert isinstance(msg, MsgRegisterModel)
    msg.validate_basic()
    return msg


def validate_genesis(state: Mapping[str, Any]) -> None:
    unknown = set(state) - {"params", "models"}
    if unknown:
        raise ValueError(f"unknown inference genesis fields: {sorted(unknown)}")
    Params.from_dict(dict(state.get("params", {})))
    seen = set()
    for i, entry in enumerate(state.get("models", [])):
        try:
            msg = _as_msg(entry)
        except ChainError as err:
            raise ValueError(f"inference.models[{i}]: {err.log}") from None
        if msg.model_id in seen:
            raise ValueError(f"inference.models[{i}]: duplicate model {msg.model_id}")
        seen.add(msg.model_id)


def init_genesis(k: InferenceKeeper, bank: GenesisBank, ctx: Context, state: Mapping[str, Any]) -> None:
    """A genesis model's deposit exists only inside this module (as it does after an export): it is
    minted into the supply and locked here, never taken from the owner's listed balance."""
    validate_genesis(state)
    k.set_params(ctx.store, Params.from_dict(dict(state.get("params", {}))))
    for entry in state.get("models", []):
        msg = _as_msg(entry)
        owner = decode_address(msg.owner)
        bank.mint_genesis(ctx.store, owner, msg.deposit)
        k.register_model(ctx, Model(msg.model_id, owner, msg.architecture, msg.n_blocks,
                                    tuple(msg.block_hashes), msg.price, msg.deposit))


def export_genesis(k: InferenceKeeper, store: KVReader) -> dict[str, Any]:
    models = []
    for m in k.models(store):
        models.append({"owner": encode_address(m.owner), "model_id": m.model_id, "architecture": m.architecture,
                       "n_blocks": m.n_blocks, "block_hashes": list(m.block_hashes), "price": m.price,
                       "deposit": m.deposit})
    return {"params": k.params(store).to_dict(), "models": models}
