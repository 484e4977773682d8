"""The committed state: in memory for reads, on disk (sqlite) for durability, with its app hash.

The app hash commits to every key and value. Keys fall into 256 buckets by the first byte of
sha256(key); a bucket's hash is sha256 over its entries in key order (each length-prefixed), and
the app hash is sha256 over the 256 bucket hashes. A block only rehashes the buckets it touched.

Queries read a ``CommitView`` (``read_view``, ``store/view.py``): one commit, read from another thread
than the one that runs FinalizeBlock and Commit, while later commits land. FinalizeBlock stages in
caches above this store and never touches it. Commit changes it in place, but first records the values
its writes replace (the last ``HISTORY`` commits' are kept), so a view reads the state of the commit it
was opened at for as long as those records reach back to it.

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
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from nesachain.store.view import CommitView

__all__ = ["HISTORY", "CommitStore"]

_N_BUCKETS = 256
HISTORY = 16  # commits whose replaced values are kept for views opened before them


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
        # for views on other threads: (commits applied, height), replaced as one; per commit, the values
        # its writes replaced (None: absent), recorded before it changes anything; a lock held only to
        # change the sorted key list or to cut a slice of it
        self._tip = (0, 0)
        self._history: list[tuple[int, dict[bytes, bytes | None]]] = []
        self._keys_lock = threading.Lock()
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
        self._tip = (0, self.height)
        self._bucket_hashes = [_hash_bucket(b) for b in self._buckets]

    def _put(self, key: bytes, value: bytes) -> None:
        if key not in self._data:
            self._keys.append(key)
        self._data[key] = value
        self._buckets[_bucket(key)][key] = value

    def __getstate__(self) -> dict[str, object]:
        """For copies (tests deep-copy whole chains): everything but the lock, which a copy gets anew."""
        state = dict(self.__dict__)
        del state["_keys_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._keys_lock = threading.Lock()

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
        generation = self._tip[0] + 1
        self._history.append((generation, {key: self._data.get(key) for key in writes}))
        if len(self._history) > HISTORY:
            del self._history[0]
        for key, value in writes.items():
            idx = _bucket(key)
            if value is None:
                if key in self._data:
                    with self._keys_lock:
                        del self._keys[bisect.bisect_left(self._keys, key)]
                    del self._data[key]
                    del self._buckets[idx][key]
            else:
                if key not in self._data:
                    with self._keys_lock:
                        bisect.insort(self._keys, key)
                self._data[key] = value
                self._buckets[idx][key] = value
        for idx, digest in changed.items():
            self._bucket_hashes[idx] = digest
        self.height = height
        self.app_hash = app_hash
        self.block_hash = block_hash
        self._tip = (generation, height)

    def read_view(self, max_scan: int, pause: Callable[[], object] | None = None) -> CommitView:
        """A read view of the last commit that reads at most ``max_scan`` entries (gets and iterated items),
        calling ``pause`` every few hundred (a reader's way to give way to the thread that commits)."""
        generation, height = self._tip
        return CommitView(self._data, self._keys, self._keys_lock, self._history, generation, height, max_scan,
                          pause)
