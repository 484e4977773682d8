"""A read view of one commit of a ``CommitStore``, for a reader on another thread while commits land.

The committing thread changes the store in place, but before each commit records the values its writes
replace, in order. A view opened at commit g reads a key's current value, then the records of the
commits after g (in that order, so it cannot miss a record whose commit changed the value it read): the
first record naming the key holds its value at g. It iterates the store's sorted keys a chunk at a time
(cut under a lock the committer holds only to change that list), merged with the keys those records
name, so keys deleted since g are found and keys inserted since g are skipped. Records are kept for
``HISTORY`` commits; a view that outlives them is no longer ``consistent()`` and its reads must be thrown
away. Every entry read counts against ``max_scan`` (``ScanLimitExceeded`` past it), and every ``CHUNK``
entries the view calls ``pause``.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator

__all__ = ["CHUNK", "CommitView", "ScanLimitExceeded"]

CHUNK = 256  # keys cut from the sorted list at a time, and entries read between pauses
_History = list[tuple[int, dict[bytes, bytes | None]]]


class ScanLimitExceeded(Exception):
    """A view was asked to read more entries than its cap."""

    def __init__(self, max_scan: int) -> None:
        super().__init__(f"read more than {max_scan} entries")
        self.max_scan = max_scan


class CommitView:
    """The state at one commit (a KVReader); ``height`` is that commit's height."""

    def __init__(self, data: dict[bytes, bytes], keys: list[bytes], keys_lock: threading.Lock, history: _History,
                 generation: int, height: int, max_scan: int, pause: Callable[[], object] | None = None) -> None:
        self._data = data
        self._keys = keys
        self._keys_lock = keys_lock
        self._history = history
        self._generation = generation
        self.height = height
        self.max_scan = max_scan
        self.scanned = 0
        self._pause = pause

    def consistent(self) -> bool:
        """True while the records reach back to this view's commit: everything read is the state at it."""
        history = self._history
        return not history or history[-1][0] <= self._generation or history[0][0] <= self._generation + 1

    def _count(self) -> None:
        self.scanned += 1
        if self.scanned > self.max_scan:
            raise ScanLimitExceeded(self.max_scan)
        if self._pause is not None and self.scanned % CHUNK == 0:
            self._pause()

    def _later(self) -> list[tuple[int, dict[bytes, bytes | None]]]:
        """The records of the commits after this view's, oldest first (a copy)."""
        return [r for r in tuple(self._history) if r[0] > self._generation]

    def _at(self, key: bytes) -> bytes | None:
        value = self._data.get(key)  # first the current value, then the records: see the module docstring
        history = self._history
        if not history or history[-1][0] <= self._generation:
            return value
        for _, replaced in self._later():
            if key in replaced:
                return replaced[key]
        return value

    def get(self, key: bytes) -> bytes | None:
        self._count()
        return self._at(key)

    def iterate(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Items with start <= key < end at this view's commit, in ascending key order."""
        last: bytes | None = None
        while True:
            with self._keys_lock:
                lo = bisect.bisect_left(self._keys, start) if last is None else bisect.bisect_right(self._keys, last)
                chunk = self._keys[lo : lo + CHUNK]
            full = len(chunk) == CHUNK
            upper = chunk[-1] if full else end  # this round covers keys up to upper (inclusive when full)
            named = {key for _, replaced in self._later() for key in replaced
                     if key >= start and (last is None or key > last)
                     and (upper is None or key < upper or (full and key == upper))}
            for key in sorted(named.union(chunk)):
                if end is not None and key >= end:
                    return
                value = self._at(key)
                if value is not None:
                    self._count()
                    yield key, value
            if not full:
                return
            last = upper
