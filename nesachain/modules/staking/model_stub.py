"""The stand-in model registry: models listed in staking's genesis (``staking.models``).

Each entry is ``{"model_id": str, "n_blocks": int}``. The inference module (issue 6) replaces this
with its on-chain registry (MsgRegisterModel) by implementing ``expected_keepers.ModelRegistry``.
"""

from __future__ import annotations

from collections.abc import Iterator

from nesachain.modules.staking import keys
from nesachain.store.kv import KVReader, KVStore, prefix_end
from nesachain.types.encoding import decode_canonical, encode

__all__ = ["GenesisModels"]

MAX_MODEL_ID = 128
MAX_BLOCKS = 4096


def check_model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not 0 < len(model_id) <= MAX_MODEL_ID or not model_id.isprintable():
        raise ValueError(f"model id must be 1-{MAX_MODEL_ID} printable characters, got {model_id!r}")
    return model_id


class GenesisModels:
    def model_blocks(self, store: KVReader, model_id: str) -> int | None:
        raw = store.get(keys.model_key(model_id))
        return None if raw is None else int(decode_canonical(raw))

    def models(self, store: KVReader) -> Iterator[tuple[str, int]]:
        for key, raw in store.iterate(keys.MODEL, prefix_end(keys.MODEL)):
            yield key[len(keys.MODEL) + 1 :].decode(), int(decode_canonical(raw))

    def set_model(self, store: KVStore, model_id: str, n_blocks: int) -> None:
        check_model_id(model_id)
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or not 0 < n_blocks <= MAX_BLOCKS:
            raise ValueError(f"model {model_id!r}: n_blocks must be an integer in [1, {MAX_BLOCKS}]")
        store.set(keys.model_key(model_id), encode(n_blocks))
