"""Ordered key-value stores: the committed store on disk and write-buffering caches above it.

Layering during a block (Cosmos' multistore, without the IAVL tree):

    CommitStore (what Commit persisted)  ←  block CacheStore  ←  per-tx CacheStore

A tx's cache is written into the block's cache only when the tx succeeds, so a failing tx leaves
nothing behind. The block's writes reach the CommitStore (memory and disk, atomically with the
height and app hash) only in Commit.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Protocol

__all__ = ["CacheStore", "KVReader", "KVStore", "prefix_end"]


class KVReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Items with start <= key < end (end None: no upper bound), in ascending key order."""
        ...


class KVStore(KVReader, Protocol):
    def set(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with ``prefix`` (None: no bound)."""
    b = bytearray(prefix)
    while b:
        if b[-1] != 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return None


class CacheStore:
    """Buffers writes over a parent reader; ``write()`` pushes them down, ``writes()`` hands them out."""

    def __init__(self, parent: KVReader) -> None:
        self._parent = parent
        self._writes: dict[bytes, bytes | None] = {}
        self._sorted: list[bytes] | None = None

    def get(self, key: bytes) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self._parent.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise TypeError("store keys and values are bytes")
        if key not in self._writes:
            self._sorted = None
        self._writes[key] = value

    def delete(self, key: bytes) -> None:
        if key not in self._writes:
            self._sorted = None
        self._writes[key] = None

    def iterate(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        if self._sorted is None:
            self._sorted = sorted(self._writes)
        lo = bisect.bisect_left(self._sorted, start)
        hi = len(self._sorted) if end is None else bisect.bisect_left(self._sorted, end)
        mine = self._sorted[lo:hi]
        parent = self._parent.iterate(start, end)
        i = 0
        nxt = next(parent, None)
        while i < len(mine) or nxt is not None:
            if nxt is None or (i < len(mine) and mine[i] <= nxt[0]):
                key = mine[i]
                i += 1
                if nxt is not None and nxt[0] == key:
                    nxt = next(parent, None)
                value = self._writes[key]
                if value is not None:
                    yield key, value
            else:
                yield nxt
                nxt = next(parent, None)

    def writes(self) -> dict[bytes, bytes | None]:
        return dict(self._writes)

    def write(self) -> None:
        """Push buffered writes into the parent (which must be writable) and clear the buffer."""
        parent = self._parent
        if not isinstance(parent, CacheStore):
            raise TypeError("only a CacheStore parent accepts write(); use CommitStore.commit")
        for key in sorted(self._writes):
            value = self._writes[key]
            if value is None:
                parent.delete(key)
            else:
                parent.set(key, value)
        self._writes.clear()
        self._sorted = None
