"""ABCI queries, answered from the last committed state on whatever thread asks.

The server runs queries in a worker thread, outside the lock that FinalizeBlock and Commit hold, so a
slow or hostile public-RPC query cannot stall consensus. A query reads a ``CommitView`` of the last
commit: FinalizeBlock's staging never touches it, and Commits that land while the query reads do not
change what it sees (it reads again, up to ``QUERY_ATTEMPTS`` times, only if more than ``HISTORY``
commits land while it reads, since the store keeps what that many commits replaced). Each
query may read at most ``max_scan`` entries (gets and iterated items); past that it is refused with
``ErrQueryTooLarge``, whose log says how to narrow it. List queries page through ``limit`` and
``offset`` (each module sets a default and a maximum page). A query also gives way to consensus: every
few hundred entries it calls ``pause``, which the server makes wait while a consensus or mempool request
is being handled (under the GIL, a query thread would otherwise take about half of FinalizeBlock's time).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from nesachain.abci.errors import ErrQueryInterrupted, ErrQueryTooLarge
from nesachain.abci.router import Router
from nesachain.store.commit import CommitStore
from nesachain.store.view import CommitView, ScanLimitExceeded
from nesachain.types.errors import ChainError
from nesachain.types.module import QueryFn
from nesachain.types.sdk_errors import ErrInternal, ErrInvalidRequest, ErrNotFound, ErrUnknownRequest

__all__ = ["QUERY_ATTEMPTS", "QUERY_MAX_SCAN", "QueryResult", "answer_query"]

log = structlog.get_logger("nesachain.query")

QUERY_MAX_SCAN = 100_000  # entries one query may read: under a second (staking/pool: 30,000 balances in 0.23 s)
QUERY_ATTEMPTS = 3  # reads of a query that outlived the store's history, before it answers ErrQueryInterrupted


@dataclass(frozen=True)
class QueryResult:
    code: int = 0
    codespace: str = ""
    log: str = ""
    value: bytes = b""
    height: int = 0


def _error(err: ChainError, height: int) -> QueryResult:
    return QueryResult(err.code, err.codespace, err.log, height=height)


def answer_query(router: Router, store: CommitStore, path: str, data: bytes, max_scan: int,
                 pause: Callable[[], object] | None = None) -> QueryResult:
    """The answer to ``path`` with JSON ``data``: a registered code for every refusal, never an exception."""
    fn = router.query(path)
    if fn is None:
        known = ", ".join(router.query_paths())
        return _error(ErrUnknownRequest.wrap(f"unknown query path {path!r}; known: {known}"), store.height)
    try:
        params = json.loads(data.decode()) if data else {}
        if not isinstance(params, dict):
            raise ValueError("query data must be a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(ErrInvalidRequest.wrap(str(exc)), store.height)
    for _ in range(QUERY_ATTEMPTS):
        view = store.read_view(max_scan, pause)
        result = _run(fn, view, path, params)
        if view.consistent():
            return result
    return _error(ErrQueryInterrupted.wrap(f"{QUERY_ATTEMPTS} commits landed while {path} read; ask again"),
                  store.height)


def _run(fn: QueryFn, view: CommitView, path: str, params: dict[str, Any]) -> QueryResult:
    try:
        value = fn(view, params)
    except ScanLimitExceeded as exc:
        return _error(ErrQueryTooLarge.wrap(f"{path} would read more than {exc.max_scan} entries; narrow it with "
                                            "its filters or page it (limit, offset)"), view.height)
    except ChainError as err:
        return _error(err, view.height)
    except LookupError as exc:
        return _error(ErrNotFound.wrap(str(exc)), view.height)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(ErrInvalidRequest.wrap(str(exc)), view.height)
    except Exception as exc:
        if view.consistent():  # otherwise a Commit changed what it read under it, and the caller reads again
            log.error("query_internal_error", path=path, error=repr(exc))
        return _error(ErrInternal.wrap(type(exc).__name__), view.height)
    return QueryResult(value=json.dumps(value, sort_keys=True).encode(), height=view.height)
