"""Step logs of chain sessions, on disk until their session has settled on chain.

A chain miner commits to the merkle root of each session's step log and must serve the log and its frames to
the validators that judge a challenge, until the session settles: no other session's traffic may evict them
(sessions of strangers, or a flood of frames), and a restart must not lose them. So each chain session's steps
go to a file of their own under the store's folder, appended one record at a time:

    <root>/<session name>.log     records: u32 length | msgpack {step, position, n_tokens, in_digest, out_digest,
                                  at, in, in_values, out, out_values}

A name is taken when its session opens and stays taken while its file exists, so a name that has held a
session is never reused (the file is created exclusively). A record torn by a crash is dropped when the file is
read back; the ones before it stand. The file is flushed at every step and synced at close, before the
miner's result agent can commit to it. The store refuses new sessions once ``quota_bytes`` are used
(``storage_full``); a session already open may grow past it (its log is committed to), by at most its own
max length of steps. Logs go when the miner's registrar sees their session settled on chain (``delete``).
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode
from nesachain.protocol.sessions import parse_chain_session_name

__all__ = ["LogStore"]

_LEN = struct.Struct("<I")
MAX_RECORD = 1 << 30


class LogStore:
    """Chain sessions' step records, one append-only file per session name. Thread-safe: the result agent reads
    from its own thread."""

    def __init__(self, root: Path, quota_bytes: int) -> None:
        self.root, self.quota_bytes = root, quota_bytes
        self._open: dict[str, BinaryIO] = {}
        self._lock = threading.Lock()
        self._used = 0

    @classmethod
    def create(cls, root: Path, quota_bytes: int) -> LogStore:
        """A store in ``root`` (made if missing), counting what earlier runs left there."""
        root.mkdir(parents=True, exist_ok=True)
        store = cls(root, quota_bytes)
        store._used = sum(p.stat().st_size for p in root.glob("*.log"))
        return store

    @staticmethod
    def is_chain_name(name: str) -> bool:
        return parse_chain_session_name(name) is not None

    def _path(self, name: str) -> Path:
        if not self.is_chain_name(name):
            raise WireError(ErrorCode.BAD_REQUEST, f"{name!r} is not a chain session name")
        return self.root / f"{name}.log"

    @property
    def used_bytes(self) -> int:
        return self._used

    def names(self) -> list[str]:
        """Every session name the store holds a log of, oldest file first."""
        with self._lock:
            paths = sorted(self.root.glob("*.log"), key=lambda p: (p.stat().st_mtime, p.name))
        return [p.stem for p in paths if self.is_chain_name(p.stem)]

    def holds(self, name: str) -> bool:
        return self._path(name).exists()

    def begin(self, name: str) -> None:
        """Take ``name`` for a new session: ``name_used`` if it ever held one here, ``storage_full`` past the quota."""
        path = self._path(name)
        with self._lock:
            if self._used >= self.quota_bytes:
                raise WireError(ErrorCode.STORAGE_FULL, f"the step-log store holds {self._used} bytes, its quota is "
                                                         f"{self.quota_bytes}: no new chain session until settled "
                                                         "sessions' logs are pruned")
            try:
                self._open[name] = open(path, "xb")
            except FileExistsError:
                raise WireError(ErrorCode.NAME_USED, f"session name {name!r} has held a session on this miner: "
                                                     "names are never reused") from None

    def append(self, name: str, record: dict[str, Any]) -> None:
        """One step's record, flushed to the file before the step's result is sent."""
        raw = bytes(msgpack.packb(record, use_bin_type=True))
        with self._lock:
            f = self._open.get(name)
            if f is None:
                raise WireError(ErrorCode.UNKNOWN_SESSION, f"no open log for {name!r}")
            f.write(_LEN.pack(len(raw)) + raw)
            f.flush()
            self._used += _LEN.size + len(raw)

    def end(self, name: str) -> None:
        """The session closed: its log is synced to disk, then read-only."""
        with self._lock:
            f = self._open.pop(name, None)
            if f is not None:
                os.fsync(f.fileno())
                f.close()

    def records(self, name: str) -> list[dict[str, Any]] | None:
        """The session's records in step order (None: no log of that name); a torn last record is left out."""
        try:
            path = self._path(name)
        except WireError:
            return None
        with self._lock:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                return None
        out: list[dict[str, Any]] = []
        offset = 0
        while offset + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, offset)
            if n > MAX_RECORD or offset + _LEN.size + n > len(data):
                break
            try:
                rec = msgpack.unpackb(data[offset + _LEN.size : offset + _LEN.size + n], raw=False)
            except Exception:  # a torn or damaged record: the ones before it stand
                break
            if not isinstance(rec, dict):
                break
            out.append(rec)
            offset += _LEN.size + n
        return out

    def delete(self, name: str) -> None:
        """Drop a settled session's log (its name stays unusable only while the file exists: a settled chain
        session is never opened again, the chain refuses it)."""
        path = self._path(name)
        with self._lock:
            f = self._open.pop(name, None)
            if f is not None:
                f.close()
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                return
            self._used -= size

    def close(self) -> None:
        with self._lock:
            for f in self._open.values():
                f.close()
            self._open.clear()
