"""Miner settings (one frozen dataclass; the CLI fills it from flags)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    test_perturb: float = 0.0  # TEST ONLY: relative noise added to every output (a cheating miner)
    test_refuse_data: bool = False  # TEST ONLY: never serve step frames to verifiers
