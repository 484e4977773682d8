"""inference queries: models, sessions (with commitments, challenges, verdicts, payments), params."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nesachain.modules.inference.keeper import InferenceKeeper
from nesachain.store.kv import KVReader

__all__ = ["Queries"]

MAX_PAGE = 100


def _page(params: Mapping[str, Any]) -> tuple[int, int]:
    limit, offset = params.get("limit", MAX_PAGE), params.get("offset", 0)
    if not isinstance(limit, int) or not isinstance(offset, int) or not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValueError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    return limit, offset


class Queries:
    def __init__(self, keeper: InferenceKeeper) -> None:
        self._k = keeper

    def model(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        model_id = params.get("model_id")
        if not isinstance(model_id, str):
            raise ValueError("query inference/model needs a 'model_id'")
        m = self._k.model(store, model_id)
        if m is None:
            raise LookupError(f"model {model_id!r} is not registered")
        return m.to_json()

    def models(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        limit, offset = _page(params)
        ms = list(self._k.models(store))
        return {"models": [m.to_json() for m in ms[offset : offset + limit]], "total": len(ms)}

    def session(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        sid = params.get("session_id")
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 <= sid < 2**64:
            raise ValueError(f"query inference/session needs a 'session_id' in 0..2^64-1, got {sid!r}")
        s = self._k.session(store, sid)
        if s is None:
            raise LookupError(f"session {sid} not found")
        return s.to_json()

    def sessions(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        limit, offset = _page(params)
        ss = list(self._k.sessions(store))
        return {"sessions": [s.to_json() for s in ss[offset : offset + limit]], "total": len(ss)}

    def params(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._k.params(store).to_dict()
