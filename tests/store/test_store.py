"""The committed store and caches: ordering, app hash, atomic persistence."""

from __future__ import annotations

import sqlite3

import pytest

from nesachain.store import CacheStore, CommitStore, prefix_end


def test_cache_store_iterates_merged_in_order_with_deletes():
    base = CommitStore()
    base.commit({b"a": b"1", b"b": b"2", b"d": b"4"}, 1, b"")
    cache = CacheStore(base)
    cache.set(b"c", b"3")
    cache.delete(b"b")
    cache.set(b"a", b"9")
    assert list(cache.iterate(b"", None)) == [(b"a", b"9"), (b"c", b"3"), (b"d", b"4")]
    assert list(cache.iterate(b"b", b"d")) == [(b"c", b"3")]
    child = CacheStore(cache)
    child.set(b"e", b"5")
    child.write()
    assert cache.get(b"e") == b"5" and base.get(b"e") is None


def test_prefix_end_bounds_the_prefix():
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None


def test_app_hash_commits_to_every_value_and_not_to_order():
    a, b = CommitStore(), CommitStore()
    a.commit({b"k1": b"v1", b"k2": b"v2"}, 1, b"")
    b.commit({b"k2": b"v2"}, 1, b"")
    b.commit({b"k1": b"v1"}, 2, b"")
    assert a.hash_with({}) == b.hash_with({})
    assert a.hash_with({b"k1": b"v1x"}) != a.hash_with({})
    assert a.hash_with({b"k1": None}) != a.hash_with({})
    assert a.hash_with({b"new": b""}) != a.hash_with({})
    assert a.get(b"k1") == b"v1"  # hash_with changed nothing


def test_commit_store_reopens_with_height_hash_and_state(tmp_path):
    s = CommitStore(tmp_path / "s.db")
    h = s.hash_with({b"x": b"1"})
    s.commit({b"x": b"1", b"y": b"2"}, 1, h)
    s.commit({b"y": None}, 2, b"h2")
    s.close()
    r = CommitStore(tmp_path / "s.db")
    assert (r.height, r.app_hash) == (2, b"h2")
    assert list(r.iterate(b"", None)) == [(b"x", b"1")]
    assert r.hash_with({}) == h


def test_commit_store_failure_mid_commit_leaves_previous_block(tmp_path, monkeypatch):
    s = CommitStore(tmp_path / "s.db")
    s.commit({b"a": b"1"}, 1, b"h1")
    real = s._db
    assert real is not None

    class Failing:
        calls = 0

        def execute(self, sql, *args):
            Failing.calls += 1
            if "meta" in sql:  # die after the kv writes, before the height is recorded
                raise sqlite3.OperationalError("disk I/O error")
            return real.execute(sql, *args)

    monkeypatch.setattr(s, "_db", Failing())
    with pytest.raises(sqlite3.OperationalError):
        s.commit({b"a": b"2", b"b": b"3"}, 2, b"h2")
    assert (s.height, s.get(b"a")) == (1, b"1")
    real.close()
    r = CommitStore(tmp_path / "s.db")
    assert (r.height, r.app_hash, r.get(b"a"), r.get(b"b")) == (1, b"h1", b"1", None)
