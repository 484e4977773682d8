"""auth keeper: account sequences (replay protection) and tx params. The only code touching auth/."""

from __future__ import annotations

from nesachain.modules.auth import keys
from nesachain.modules.auth.params import Params
from nesachain.store.kv import KVReader, KVStore
from nesachain.types.encoding import decode_canonical, encode

__all__ = ["AuthKeeper"]


class AuthKeeper:
    def sequence(self, store: KVReader, address: bytes) -> int:
        raw = store.get(keys.sequence_key(address))
        return 0 if raw is None else int(decode_canonical(raw))

    def increment_sequence(self, store: KVStore, address: bytes) -> int:
        seq = self.sequence(store, address) + 1
        store.set(keys.sequence_key(address), encode(seq))
        return seq

    def params(self, store: KVReader) -> Params:
        raw = store.get(keys.PARAMS)
        return Params() if raw is None else Params.from_dict(decode_canonical(raw))

    def set_params(self, store: KVStore, params: Params) -> None:
        params.validate()
        store.set(keys.PARAMS, encode(params.to_dict()))

    def init_genesis(self, store: KVStore, state: dict[str, object]) -> None:
        params = state.get("params", {})
        if not isinstance(params, dict):
            raise ValueError("auth.params must be a map")
        self.set_params(store, Params.from_dict(params))

    def export_genesis(self, store: KVReader) -> dict[str, object]:
        return {"params": self.params(store).to_dict()}
