"""Helpers for the shard_exec tests: miner subprocesses on 127.0.0.1 and sharded-model bundles."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
START_TIMEOUT = 120.0


@dataclass
class MinerProc:
    """A miner subprocess we started (only ever killed by its own pid)."""

    proc: subprocess.Popen[str]
    url: str
    port: int
    blocks: str
    log_path: Path
    ready_line: str

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def hop(self) -> str:
        return f"{self.addr}@{self.blocks}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)


def _read_lines(proc: subprocess.Popen[str], out: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(line)


NEW_FLAGS = {"--push-allow", "--max-connections-per-peer", "--max-sessions-per-client", "--idle-connection-timeout"}


def start_miners(shard_dir: Path, ranges: list[str], log_dir: Path, *extra: str,
                 cpu: int | None = None) -> list[MinerProc]:
    """Start one miner per block range in parallel (all pinned to ``cpu`` if given); wait (bounded) until
    each prints its URL."""
    old = os.environ.get("NESA_ADVERSARIAL_OLD")  # an older checkout's miners (see tests/adversarial/conftest.py)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([*([old] if old else []), str(HERE), str(REPO),
                                           os.environ.get("PYTHONPATH", "")]))
    flags = ["--push-allow", "127.0.0.1", *extra]
    if old:  # flags that checkout did not have yet
        flags = [f for i, f in enumerate(flags) if f not in NEW_FLAGS and (i == 0 or flags[i - 1] not in NEW_FLAGS)]
    started = []
    for rng in ranges:
        log_path = log_dir / f"miner-{shard_dir.name}-{rng.replace(':', '_')}-{time.monotonic_ns()}.log"
        cmd = [sys.executable, "-m", "nesachain.cli.main", "miner", "start", "--model", str(shard_dir),
               "--blocks", rng, "--port", "0", "--threads", "1", "--exit-with-parent", str(os.getpid()), *flags]
        pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True, env=env,
                                cwd=old or str(REPO), preexec_fn=pin)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_read_lines, args=(proc, lines), daemon=True).start()
        started.append((proc, rng, log_path, lines))
    miners = []
    deadline = time.monotonic() + START_TIMEOUT
    for proc, rng, log_path, lines in started:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty as exc:
                for p, *_ in started:
                    if p.poll() is None:
                        p.kill()
                raise RuntimeError(
                    f"miner {rng} did not start in {START_TIMEOUT}s: {log_path.read_text()[-2000:]}"
                ) from exc
            if line.startswith("miner listening"):
                fields = dict(f.split("=", 1) for f in line.split()[2:])
                url = fields["url"]
                port = int(url.rsplit(":", 1)[1].split("/")[0])
                miners.append(MinerProc(proc, url, port, rng, log_path, line.strip()))
                break
    return miners


def stop_miners(miners: list[MinerProc]) -> None:
    for m in miners:
        if m.proc.poll() is None:
            os.kill(m.proc.pid, signal.SIGTERM)
    for m in miners:
        try:
            m.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait(timeout=15)


@dataclass
class Sharded:
    dir: Path
    manifest: dict[str, Any]
    model: Any
    tokenizer: Any
