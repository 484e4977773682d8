"""A read view of the last commit: unaffected by staging, told apart from a later commit, capped."""

from __future__ import annotations

import pytest

from nesachain.store import CacheStore, CommitStore, ScanLimitExceeded


def _store(n: int) -> CommitStore:
    s = CommitStore()
    s.commit({b"k%04d" % i: b"v" for i in range(n)}, 1, b"h1")
    return s


def test_commit_view_staging_unseen_commit_makes_it_stale() -> None:
    s = _store(600)
    view = s.read_view(10_000)
    staged = CacheStore(s)
    staged.set(b"k0000", b"staged")
    staged.delete(b"k0001")
    assert view.get(b"k0000") == b"v" and view.get(b"k0001") == b"v"
    assert len(list(view.iterate(b"", None))) == 600  # across chunks of keys
    assert view.current() and view.height == 1
    s.commit(staged.writes(), 2, b"h2")
    assert not view.current()
    fresh = s.read_view(10_000)
    assert fresh.current() and fresh.height == 2 and fresh.get(b"k0000") == b"staged"


def test_commit_view_counts_gets_and_items_and_stops_past_its_cap() -> None:
    view = _store(100).read_view(60)
    assert len(list(view.iterate(b"k0000", b"k0050"))) == 50
    for _ in range(10):
        view.get(b"k0099")
    with pytest.raises(ScanLimitExceeded):
        view.get(b"k0099")
    assert view.scanned == 61
