"""auth keeper: account sequences (replay protection) and tx params. The only code touching auth/."""

from __future__ import annotations

from collections.abc import Iterator

from nesachain.modules.auth import keys
from nesachain.modules.auth.params import Params
from nesachain.store.kv import KVReader, KVStore, prefix_end
from nesachain.types.encoding import decode_canonical, encode

__all__ = ["AuthKeeper"]


class AuthKeeper:
    def sequence(self, store: KVReader, address: bytes) -> int:
        raw = store.get(keys.sequence_key(address))
        return 0 if raw is None else int(decode_canonical(raw))

    def increment_sequence(self, store: KVStore, address: bytes) -> int:
        seq = self.sequence(store, address) + 1
        self.set_sequence(store, address, seq)
        return seq

    def set_sequence(self, store: KVStore, address: bytes, sequence: int) -> None:
        """Store an account's next sequence; 0 (an account that never sent a tx) is not stored."""
        if sequence == 0:
            store.delete(keys.sequence_key(address))
        else:
            store.set(keys.sequence_key(address), encode(sequence))

    def sequences(self, store: KVReader) -> Iterator[tuple[bytes, int]]:
        """Every account that has sent a tx and its next sequence, in address order."""
        for key, raw in store.iterate(keys.SEQUENCE, prefix_end(keys.SEQUENCE)):
            yield keys.address_from_sequence_key(key), int(decode_canonical(raw))

    def params(self, store: KVReader) -> Params:
        raw = store.get(keys.PARAMS)
        return Params() if raw is None else Params.from_dict(decode_canonical(raw))

    def set_params(self, store: KVStore, params: Params) -> None:
        params.validate()
        store.set(keys.PARAMS, encode(params.to_dict()))
