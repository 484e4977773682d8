"""The committed state: in memory for reads, on disk (sqlite) for durability, with its app hash.

The app hash commits to every key and value. Keys fall into 256 buckets by the first byte of
sha256(key); a bucket's hash is sha256 over its entries in key order (each length-prefixed), and
the app hash is sha256 over the 256 bucket hashes. A block only rehashes the buckets it touched.

Queries read a ``CommitView`` (``read_view``): the last commit, read from another thread than the one
that runs FinalizeBlock and Commit. FinalizeBlock stages in caches above this store and never touches
it; Commit changes it in place between two bumps of a generation counter (a seqlock), so a view tells
whether everything it read belongs to one commit (``CommitView.current``) and a reader retries if not.
A view also counts the entries it reads and refuses to read past its cap (``ScanLimitExceeded``).

``commit(writes, height, app_hash, block_hash)`` applies a block's writes and records its height, app
hash and block hash in one sqlite transaction, so a crash leaves either the old block or the new one,
never a mix. The block hash is not state (the app hash does not commit to it): it is kept so that the
next block's entropy can name the previous block's hash after a restart.
"""

from __future__ import annotations

import bisect
import hashlib
import sqlite3
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["CommitStore", "CommitView", "ScanLimitExceeded"]

_N_BUCKETS = 256
_CHUNK = 256  # keys a view copies at a time while it iterates


def _bucket(key: bytes) -> int:
    return hashlib.sha256(key).digest()[0]


def _hash_bucket(entries: Mapping[bytes, bytes]) -> bytes:
    h = hashlib.sha256()
    for key in sorted(entries):
        value = entries[key]
        h.update(struct.pack(">I", len(key)))
        h.update(key)
        h.update(struct.pack(">I", len(value)))
        h.update(value)
    return h.digest()


class CommitStore:
    """Committed key-value state. ``path=None`` keeps it in memory only (unit tests)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._buckets: list[dict[bytes, bytes]] = [{} for _ in range(_N_BUCKETS)]
        self._bucket_hashes: list[bytes] = [_hash_bucket({}) for _ in range(_N_BUCKETS)]
        self.height = 0
        self.app_hash = b""
        self.block_hash = b""  # CometBFT's hash of the last committed block (b"" before the first)
        self._generation = 0  # odd while Commit changes the memory state (read by views on other threads)
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._open(Path(path))

    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._db = db
        for key, value in db.execute("SELECT k, v FROM kv"):
            self._put(bytes(key), bytes(value))
        self._keys.sort()
        meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
        if "height" in meta:
            self.height = int(meta["height"])
            self.app_hash = bytes(meta["app_hash"])
            self.block_hash = bytes(meta.get("block_hash", b""))
        self._bucket_hashes = [_hash_bucket(b) for b in self._buckets]

    def _put(self, key: bytes, value: bytes) -> None:
        if key not in self._data:
            self._keys.append(key)
        self._data[key] = value
        self._buckets[_bucket(key)][key] = value

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # reads (KVReader)
    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def iterate(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        lo = bisect.bisect_left(self._keys, start)
        hi = len(self._keys) if end is None else bisect.bisect_left(self._keys, end)
        for key in self._keys[lo:hi]:
            yield key, self._data[key]

    # hashing
    def _bucket_hashes_with(self, writes: Mapping[bytes, bytes | None]) -> dict[int, bytes]:
        touched: dict[int, dict[bytes, bytes | None]] = {}
        for key, value in writes.items():
            touched.setdefault(_bucket(key), {})[key] = value
        out: dict[int, bytes] = {}
        for idx, changes in touched.items():
            entries = dict(self._buckets[idx])
            for key, value in changes.items():
                if value is None:
                    entries.pop(key, None)
                else:
                    entries[key] = value
            out[idx] = _hash_bucket(entries)
        return out

    def hash_with(self, writes: Mapping[bytes, bytes | None]) -> bytes:
        """The app hash the state would have with ``writes`` applied (nothing is changed)."""
        changed = self._bucket_hashes_with(writes)
        h = hashlib.sha256()
        for idx in range(_N_BUCKETS):
            h.update(changed.get(idx, self._bucket_hashes[idx]))
        return h.digest()

    # commit
    def commit(self, writes: Mapping[bytes, bytes | None], height: int, app_hash: bytes,
               block_hash: bytes = b"") -> None:
        """Apply a block's writes and record its height, app hash and block hash, atomically on disk."""
        if self._db is not None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for key, value in writes.items():
                    if value is None:
                        db.execute("DELETE FROM kv WHERE k = ?", (key,))
                    else:
                        db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
                db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('height', ?)", (str(height).encode(),))
                db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('app_hash', ?)", (app_hash,))
                db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('block_hash', ?)", (block_hash,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        changed = self._bucket_hashes_with(writes)
        self._generation += 1
        for key, value in writes.items():
            idx = _bucket(key)
            if value is None:
                if key in self._data:
                    del self._data[key]
                    del self._buckets[idx][key]
                    pos = bisect.bisect_left(self._keys, key)
                    del self._keys[pos]
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value
                self._buckets[idx][key] = value
        for idx, digest in changed.items():
            self._bucket_hashes[idx] = digest
        self.height = height
        self.app_hash = app_hash
        self.block_hash = block_hash
        self._generation += 1

    def read_view(self, max_scan: int) -> CommitView:
        """A read view of the last commit that reads at most ``max_scan`` entries (gets and iterated items)."""
        return CommitView(self, max_scan)


class ScanLimitExceeded(Exception):
    """A view was asked to read more entries than its cap."""

    def __init__(self, max_scan: int) -> None:
        super().__init__(f"read more than {max_scan} entries")
        self.max_scan = max_scan


class CommitView:
    """The last commit of a ``CommitStore``, for a reader on another thread (a KVReader).

    Nothing here blocks the thread that commits: a Commit that lands while the view is read makes
    ``current()`` false, and what was read must then be thrown away (it may mix two commits, or miss
    keys). Every entry read counts against ``max_scan``.
    """

    def __init__(self, store: CommitStore, max_scan: int) -> None:
        self._store = store
        self._generation = store._generation
        self.height = store.height
        self.max_scan = max_scan
        self.scanned = 0

    def current(self) -> bool:
        """True when no Commit ran while this view was read: everything it read is the commit at ``height``."""
        return self._generation % 2 == 0 and self._store._generation == self._generation

    def _count(self) -> None:
        self.scanned += 1
        if self.scanned > self.max_scan:
            raise ScanLimitExceeded(self.max_scan)

    def get(self, key: bytes) -> bytes | None:
        self._count()
        return self._store._data.get(key)

    def iterate(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Like ``CommitStore.iterate``, copying keys a chunk at a time (a commit may change the list meanwhile)."""
        keys, data = self._store._keys, self._store._data
        i = bisect.bisect_left(keys, start)
        while True:
            chunk = keys[i : i + _CHUNK]
            for key in chunk:
                if end is not None and key >= end:
                    return
                value = data.get(key)
                if value is None:  # deleted by a commit meanwhile: current() is false already
                    continue
                self._count()
                yield key, value
            if len(chunk) < _CHUNK:
                return
            i += _CHUNK
