"""A read view of one commit: staging unseen, later commits unseen (deleted keys still found, inserted
ones skipped, across the chunks it iterates by), the history it needs bounded, its reads capped."""

from __future__ import annotations

import random

import pytest

from nesachain.store import CacheStore, CommitStore, ScanLimitExceeded
from nesachain.store.commit import HISTORY


def _store(n: int) -> CommitStore:
    s = CommitStore()
    s.commit({b"k%04d" % i: b"v" for i in range(n)}, 1, b"h1")
    return s


def test_commit_view_reads_its_commit_while_staging_and_later_commits_change_the_store() -> None:
    rng = random.Random(3)
    s = _store(1000)
    snapshot = dict(s.iterate(b"", None))
    view = s.read_view(10**6)
    staged = CacheStore(s)
    staged.set(b"k0000", b"staged")
    assert view.get(b"k0000") == b"v"
    items = view.iterate(b"k0100", b"k0900")
    seen = [next(items) for _ in range(300)]
    for height in range(2, 6):  # commits land mid-iteration: deletes, inserts and updates on both sides
        writes: dict[bytes, bytes | None] = {}
        for _ in range(200):
            key = b"k%04d" % rng.randrange(1100) + rng.choice([b"", b"x"])
            writes[key] = None if rng.random() < 0.5 else b"new%d" % height
        s.commit(writes, height, b"h")
    seen += list(items)
    assert seen == [(k, v) for k, v in sorted(snapshot.items()) if b"k0100" <= k < b"k0900"]
    assert dict(view.iterate(b"", None)) == snapshot
    assert all(view.get(k) == v for k, v in snapshot.items()) and view.get(b"k0001x") is None
    assert view.consistent() and view.height == 1
    fresh = s.read_view(10**6)
    assert fresh.height == 5 and dict(fresh.iterate(b"", None)) == dict(s.iterate(b"", None))


def test_commit_view_outlived_by_more_commits_than_the_history_is_not_consistent() -> None:
    s = _store(10)
    view = s.read_view(100)
    for height in range(2, 2 + HISTORY):
        s.commit({b"k0000": b"%d" % height}, height, b"h")
    assert view.consistent() and view.get(b"k0000") == b"v"
    s.commit({b"k0000": b"last"}, 2 + HISTORY, b"h")
    assert not view.consistent()


def test_commit_view_counts_gets_and_items_and_stops_past_its_cap() -> None:
    pauses: list[int] = []
    view = _store(1000).read_view(600, pause=lambda: pauses.append(1))
    assert len(list(view.iterate(b"k0000", b"k0590"))) == 590
    for _ in range(10):
        view.get(b"k0999")
    with pytest.raises(ScanLimitExceeded):
        view.get(b"k0999")
    assert view.scanned == 601 and len(pauses) == 2  # a pause every 256 entries read
