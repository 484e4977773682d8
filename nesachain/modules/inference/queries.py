"""inference queries: models, sessions (with commitments, challenges, verdicts, payments), params."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nesachain.modules.inference import verdict_window, verifiers
from nesachain.modules.inference.keeper import InferenceKeeper, session_ids
from nesachain.modules.inference.types import SESSION_FILTERS
from nesachain.store.kv import KVReader
from nesachain.types.address import check_address

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
        """Sessions, oldest first, optionally only those of a ``status`` (or "unsettled") and naming a
        ``miner`` (route or stand-in); read through the indexes, so a page costs what matches."""
        limit, offset = _page(params)
        status, miner = params.get("status"), params.get("miner")
        if status is not None and status not in SESSION_FILTERS:
            raise ValueError(f"status must be one of {', '.join(SESSION_FILTERS)}, got {str(status)[:40]!r}")
        if miner is not None and not isinstance(miner, str):
            raise ValueError("miner must be a nesa1… address")
        ids = session_ids(store, status, None if miner is None else check_address(miner, "miner"))
        page = [self._k.session(store, i) for i in ids[offset : offset + limit]]
        return {"sessions": [s.to_json() for s in page if s is not None], "total": len(ids)}

    def verifier_stats(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        """What each validator did with the challenges tallied while it had power (agreed, disagreed, undecided,
        abstained, missed), the rewards it earned, and its current verdict window (``window``: the challenges it
        holds and the misses among them, out of ``verdict_window``); one ``validator``'s, or a page of all, by
        address bytes."""
        validator = params.get("validator")
        if validator is not None:
            if not isinstance(validator, str):
                raise ValueError("validator must be a nesa1… address")
            return self._with_window(store, verifiers.stats(store, check_address(validator, "validator")))
        limit, offset = _page(params)
        every = list(verifiers.all_stats(store))
        return {"verifier_stats": [self._with_window(store, st) for st in every[offset : offset + limit]],
                "total": len(every)}

    def _with_window(self, store: KVReader, st: verifiers.VerifierStats) -> dict[str, Any]:
        n = self._k.params(store).verdict_window
        w = verdict_window.window(store, st.validator)
        return {**st.to_json(), "window": {"challenges": min(w.counted, n), "missed": w.missed, "size": n}}

    def params(self, store: KVReader, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._k.params(store).to_dict()
