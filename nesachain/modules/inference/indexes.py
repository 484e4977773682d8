"""inference's read-only views for other modules and the session indexes: the block count of a registered
model, whether a miner is still answerable, and which sessions have a status or name a miner. Kept apart
from the keeper (which writes the indexes in ``set_session``) so either can be read on its own."""

from __future__ import annotations

from nesachain.modules.inference import keys
from nesachain.modules.inference.types import UNSETTLED, Model, Session
from nesachain.store.kv import KVReader, prefix_end
from nesachain.types.encoding import decode_canonical
from nesachain.types.keys import u64

__all__ = ["InferenceModels", "index_keys", "registered_model_blocks", "session_ids"]


def registered_model_blocks(store: KVReader, model_id: str) -> int | None:
    """The block count of a registered model, or None (reads inference state only)."""
    raw = store.get(keys.model_key(model_id))
    return None if raw is None else Model.from_state(decode_canonical(raw)).n_blocks


class InferenceModels:
    """staking's ModelRegistry, answered from the inference module's models."""

    def model_blocks(self, store: KVReader, model_id: str) -> int | None:
        return registered_model_blocks(store, model_id)

    def miner_in_unsettled_session(self, store: KVReader, miner: bytes) -> bool:
        """Whether a session not yet settled names ``miner`` (in its route or as a stand-in): a look at
        the miner's index, whatever the number of sessions."""
        for status in UNSETTLED:
            prefix = keys.miner_prefix(miner, status)
            if next(iter(store.iterate(prefix, prefix_end(prefix))), None) is not None:
                return True
        return False


def session_ids(store: KVReader, status: str | None = None, miner: bytes | None = None) -> list[int]:
    """Ids of the sessions of ``status`` (one of STATUSES, "unsettled", or None: any) naming ``miner``
    (None: any), ascending; from the indexes, so the cost follows the sessions that match."""
    statuses = UNSETTLED if status == "unsettled" else (status,) if status is not None else None
    if miner is not None:
        prefixes = [keys.miner_prefix(miner, st) for st in statuses] if statuses else [keys.miner_prefix(miner)]
    elif statuses is not None:
        prefixes = [keys.status_prefix(st) for st in statuses]
    else:
        prefixes = [keys.SESSION]
    return sorted(int.from_bytes(key[-8:], "big") for p in prefixes for key, _ in store.iterate(p, prefix_end(p)))


def index_keys(s: Session) -> list[bytes]:
    return sorted({keys.status_prefix(s.status) + u64(s.id),
                   *(keys.miner_prefix(h.miner, s.status) + u64(s.id) for h in s.hops)})
