"""Ordered key-value state: the committed store, caches above it, and the app-hash commitment."""

from __future__ import annotations

from nesachain.store.commit import CommitStore
from nesachain.store.kv import CacheStore, KVReader, KVStore, prefix_end
from nesachain.store.view import CommitView, ScanLimitExceeded

__all__ = ["CacheStore", "CommitStore", "CommitView", "KVReader", "KVStore", "ScanLimitExceeded", "prefix_end"]
