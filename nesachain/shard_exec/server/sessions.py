"""Session table of a miner: KV state, memory reservations, eviction, and the per-session step log.

Step log entries are ``(step, position, n_tokens, input digest, output digest, time)``; digests are
``protocol.steplog.step_digest`` of the frames (and values) as received and as sent. The frames themselves
are kept for a retention window (time and total bytes, oldest dropped first) so verifiers can fetch sampled
steps; logs of closed sessions stay (digests only once their tensors expire) for the later commitment.

Time is read from the table's two clocks, ``clock`` (monotonic: idleness) and ``wall_clock`` (the step
records' ``at``: retention), the real ones unless a test passes fake ones.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nesachain.protocol.errors import WireError
from nesachain.protocol.frames import TensorStreams
from nesachain.protocol.messages import ErrorCode
from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.logstore import LogStore

__all__ = ["Session", "SessionTable", "StepRecord"]


@dataclass
class StepRecord:
    """One executed step."""

    step: int
    position: int
    n_tokens: int
    in_digest: str
    out_digest: str
    at: float
    in_frames: dict[str, bytes] | None = None
    out_frames: dict[str, bytes] | None = None
    out_values: dict[str, Any] | None = None
    in_values: dict[str, Any] | None = None  # kept with the frames: a verifier replays frames and values

    @property
    def frame_bytes(self) -> int:
        return sum(len(b) for d in (self.in_frames or {}, self.out_frames or {}) for b in d.values())

    def frames(self) -> dict[str, Any]:
        """The retained frames and values, as served at ``/sessions/{sid}/steps``."""
        return {"step": self.step, "position": self.position, "in": self.in_frames,
                "in_values": self.in_values or {}, "out": self.out_frames, "out_values": self.out_values or {}}

    def public(self) -> dict[str, Any]:
        return {"step": self.step, "position": self.position, "n_tokens": self.n_tokens,
                "in_digest": self.in_digest, "out_digest": self.out_digest, "at": self.at,
                "tensors_retained": self.in_frames is not None}

    def stored(self) -> dict[str, Any]:
        """The record as the log store keeps it (frames and values included)."""
        return {**self.frames(), "n_tokens": self.n_tokens, "in_digest": self.in_digest,
                "out_digest": self.out_digest, "at": self.at}

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> StepRecord:
        return cls(int(d["step"]), int(d["position"]), int(d["n_tokens"]), str(d["in_digest"]), str(d["out_digest"]),
                   float(d["at"]), d.get("in"), d.get("out"), d.get("out_values"), d.get("in_values"))


@dataclass
class Session:
    """An open session on this miner."""

    sid: str
    owner: Any  # the WebSocketResponse results go to
    batch: int
    max_length: int
    scheme: str
    reserved: int
    state: Any
    next_step: int = 0
    tokens: int = 0
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    log: list[StepRecord] = field(default_factory=list)
    busy: bool = False
    token: str = ""  # what a pushing peer must show to step this session (the owner's connection needs none)
    client: str = ""  # the account that opened it (a chain session), or the peer's address (off chain)
    chain: bool = False  # a chain session: its log is in the log store, kept until the session settles
    push_to: set[str] = field(default_factory=set)  # next-hop URLs this session may push to, once checked
    max_step_bytes: int = 1 << 62  # the largest step message its shape allows (set at open)
    outputs: TensorStreams = field(init=False)  # encodes this session's step outputs, in step order

    def __post_init__(self) -> None:
        self.outputs = TensorStreams(self.scheme)


class SessionTable:
    """Open sessions, the memory budget they reserve, and the logs of closed ones.

    ``clock`` is what ``Session.last_used`` is measured on (idle eviction and expiry); ``wall_clock`` what
    ``StepRecord.at`` is (the retention window)."""

    def __init__(self, cfg: MinerConfig, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, store: LogStore | None = None) -> None:
        self.cfg = cfg
        self.store = store  # chain sessions' logs (a chain miner); None: every log in memory, bounded
        self.clock, self.wall_clock = clock, wall_clock
        self.open: dict[str, Session] = {}
        self.closed_logs: OrderedDict[str, list[StepRecord]] = OrderedDict()
        self.reserved = 0
        self._retained: deque[StepRecord] = deque()
        self._retained_bytes = 0

    def add(self, sess: Session) -> list[str]:
        """Admit a session, evicting idle ones if the budget needs it; returns the evicted ids."""
        if sess.sid in self.open:
            raise WireError(ErrorCode.SESSION_EXISTS, f"session {sess.sid} is already open")
        if sess.sid in self.closed_logs:
            raise WireError(ErrorCode.NAME_USED, f"session name {sess.sid!r} has held a session here: names are never "
                                                 "reused")
        mine = [s for s in self.open.values() if s.client == sess.client]
        if sess.client and len(mine) >= self.cfg.max_sessions_per_client:
            raise WireError(ErrorCode.BUSY, f"{sess.client} has {len(mine)} sessions open here, the most one client "
                                            "may")
        evicted: list[str] = []
        if self.reserved + sess.reserved > self.cfg.memory_budget or len(self.open) >= self.cfg.max_sessions:
            now = self.clock()
            idle = sorted((s for s in self.open.values()
                           if not s.busy and now - s.last_used >= self.cfg.evict_idle_after),
                          key=lambda s: s.last_used)
            for victim in idle:
                if (self.reserved + sess.reserved <= self.cfg.memory_budget
                        and len(self.open) < self.cfg.max_sessions):
                    break
                self.remove(victim.sid)
                evicted.append(victim.sid)
        if self.reserved + sess.reserved > self.cfg.memory_budget:
            raise WireError(ErrorCode.MEMORY_BUDGET,
                            f"session needs {sess.reserved} bytes of KV cache; {self.reserved} of "
                            f"{self.cfg.memory_budget} are reserved by {len(self.open)} sessions")
        if len(self.open) >= self.cfg.max_sessions:
            raise WireError(ErrorCode.MEMORY_BUDGET, f"{len(self.open)} sessions open (max {self.cfg.max_sessions})")
        if sess.chain:
            if self.store is None:
                raise WireError(ErrorCode.FORBIDDEN, "this miner serves no chain sessions")
            self.store.begin(sess.sid)  # name_used or storage_full: refused before anything is reserved
        self.open[sess.sid] = sess
        self.reserved += sess.reserved
        return evicted

    def get(self, sid: Any) -> Session:
        sess = self.open.get(sid) if isinstance(sid, str) else None
        if sess is None:
            raise WireError(ErrorCode.UNKNOWN_SESSION, f"no open session {sid!r}")
        return sess

    def remove(self, sid: str) -> Session | None:
        """Close a session: free its state and reservation, keep its log."""
        sess = self.open.pop(sid, None)
        if sess is None:
            return None
        self.reserved -= sess.reserved
        release = getattr(sess.state, "release", None)
        if callable(release):
            release()
        sess.state = None
        if sess.chain and self.store is not None:
            self.store.end(sid)  # synced: the result agent may commit to it
            return sess
        self.closed_logs[sid] = sess.log
        while len(self.closed_logs) > self.cfg.closed_logs_kept:
            _, old = self.closed_logs.popitem(last=False)
            for rec in old:
                self._forget(rec)
        return sess

    def expire_idle(self) -> list[str]:
        """Close sessions idle past the timeout; returns their ids."""
        now = self.clock()
        stale = [s.sid for s in self.open.values()
                 if not s.busy and now - s.last_used > self.cfg.session_idle_timeout]
        for sid in stale:
            self.remove(sid)
        return stale

    def record(self, sess: Session, rec: StepRecord) -> None:
        """Append to the session's log: a chain session's goes to the store (frames in memory for its last step
        only, which a retry may ask again); another's keeps its tensors within the retention window."""
        if sess.chain and self.store is not None:
            self.store.append(sess.sid, rec.stored())
            if sess.log:
                last = sess.log[-1]
                last.in_frames = last.out_frames = last.in_values = last.out_values = None
            sess.log.append(rec)
            return
        sess.log.append(rec)
        self._retained.append(rec)
        self._retained_bytes += rec.frame_bytes
        self.trim_retention()

    def trim_retention(self) -> None:
        cutoff = self.wall_clock() - self.cfg.retention_seconds
        while self._retained and (self._retained_bytes > self.cfg.retention_bytes
                                  or self._retained[0].at < cutoff):
            self._forget(self._retained.popleft())

    def _forget(self, rec: StepRecord) -> None:
        if rec.in_frames is not None:
            self._retained_bytes -= rec.frame_bytes
            rec.in_frames = rec.out_frames = None
            rec.in_values = rec.out_values = None

    def log_of(self, sid: str) -> list[StepRecord] | None:
        """A session's log: an open session's as it grows (a chain session's from the store, with its frames),
        a closed one's while it is kept."""
        if self.store is not None and self.store.is_chain_name(sid):
            stored = self.store.records(sid)
            return None if stored is None else [StepRecord.from_stored(d) for d in stored]
        if sid in self.open:
            return self.open[sid].log
        return self.closed_logs.get(sid)
