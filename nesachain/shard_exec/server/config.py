"""Miner settings (one frozen dataclass; the CLI fills it from flags)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from nesachain.shard_exec.errors import ShardExecError

__all__ = ["MinerConfig"]


@dataclass(frozen=True)
class MinerConfig:
    """Everything a miner needs to start; sizes in bytes, times in seconds."""

    shard_dir: Path
    start: int
    end: int
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port (the bound port is printed and in /info)
    max_sessions: int = 256
    max_length: int = 4096  # upper bound on a session's tokens
    memory_budget: int = 1 << 30  # KV caches of all open sessions together
    session_idle_timeout: float = 300.0  # close sessions idle this long
    evict_idle_after: float = 30.0  # under budget pressure, evict sessions idle at least this long
    step_timeout: float = 60.0
    max_tensor_bytes: int = 64 << 20
    max_message_bytes: int = 96 << 20
    retention_seconds: float = 600.0  # keep step tensors this long for verifiers
    retention_bytes: int = 256 << 20  # and at most this many bytes of them
    closed_logs_kept: int = 1024  # step logs (digests) of closed sessions kept for commitments
    threads: int = 0  # torch threads; 0 leaves torch's default
    probe_steps: int = 8  # steps timed at start for the throughput figure
    warm_ahead: bool = True  # warm the compute path just before a steady session's next step is due
    max_sessions_per_client: int = 32  # open sessions of one client account (a chain session) or peer address
    max_connections_per_peer: int = 32  # WebSockets open from one peer address at once
    idle_connection_timeout: float = 30.0  # close a WebSocket that holds no session and sends nothing this long
    log_dir: Path | None = None  # a chain miner's step-log store (None: off chain, logs in memory, bounded)
    log_quota_bytes: int = 4 << 30  # the store refuses new chain sessions past this
    push_allow: tuple[str, ...] = ()  # off chain: "host" or "host:port" a session may push to (on chain: the route)

    def __post_init__(self) -> None:
        """Refuse settings no miner can serve with, naming each (before anything is loaded or bound)."""
        positive = {"max_sessions": self.max_sessions, "max_length": self.max_length,
                    "memory_budget": self.memory_budget, "max_tensor_bytes": self.max_tensor_bytes,
                    "max_message_bytes": self.max_message_bytes, "session_idle_timeout": self.session_idle_timeout,
                    "step_timeout": self.step_timeout, "probe_steps": self.probe_steps,
                    "max_sessions_per_client": self.max_sessions_per_client,
                    "max_connections_per_peer": self.max_connections_per_peer,
                    "idle_connection_timeout": self.idle_connection_timeout, "log_quota_bytes": self.log_quota_bytes}
        at_least_zero = {"evict_idle_after": self.evict_idle_after, "retention_seconds": self.retention_seconds,
                         "retention_bytes": self.retention_bytes, "closed_logs_kept": self.closed_logs_kept,
                         "threads": self.threads}
        bad = [f"{k} must be > 0, got {v}" for k, v in positive.items() if not (math.isfinite(v) and v > 0)]
        bad += [f"{k} must be >= 0, got {v}" for k, v in at_least_zero.items() if not (math.isfinite(v) and v >= 0)]
        if not 0 <= self.port <= 65535:
            bad.append(f"port must be in 0..65535, got {self.port}")
        if bad:
            raise ShardExecError("miner settings: " + "; ".join(bad))
