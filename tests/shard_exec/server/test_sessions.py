"""The miner's session table: the memory budget, idle eviction and expiry, and the retention of step
tensors, on fake clocks (``nesachain.shard_exec.server.sessions``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nesachain.protocol.errors import WireError
from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.sessions import Session, SessionTable, StepRecord
from tests.virtual_time import FakeClock


def _session(sid: str, reserved: int, clock: FakeClock) -> Session:
    """A session opened now, by ``clock``."""
    return Session(sid, owner=None, batch=1, max_length=8, scheme="none", reserved=reserved, state=None,
                   created=clock(), last_used=clock())


def _record(i: int, wall: FakeClock, nbytes: int = 200) -> StepRecord:
    return StepRecord(i, i, 1, "d", "d", wall(), {"x": b"0" * nbytes}, {"y": b"1" * nbytes})


def test_session_table_budget_evicts_idle_sessions_first(tmp_path: Path) -> None:
    clock = FakeClock()
    table = SessionTable(MinerConfig(tmp_path, 0, 1, memory_budget=100, evict_idle_after=10.0), clock=clock)
    table.add(_session("old", 60, clock))
    clock.advance(60.0)
    table.add(_session("busy", 30, clock))
    assert table.add(_session("new", 50, clock)) == ["old"]  # the idle one makes room
    assert set(table.open) == {"busy", "new"} and table.reserved == 80
    with pytest.raises(WireError) as exc:
        table.add(_session("toobig", 50, clock))  # nobody is idle long enough to evict
    assert exc.value.code == "memory_budget_exhausted"
    assert table.log_of("old") == []  # the evicted session's log is kept for commitments


def test_session_table_expires_idle_sessions_and_bounds_retained_tensors(tmp_path: Path) -> None:
    clock, wall = FakeClock(), FakeClock(1_700_000_000.0)
    table = SessionTable(MinerConfig(tmp_path, 0, 1, session_idle_timeout=5.0, retention_bytes=1000),
                         clock=clock, wall_clock=wall)
    a = _session("a", 1, clock)
    table.add(a)
    clock.advance(10.0)
    table.add(_session("b", 1, clock))
    for i in range(10):
        table.record(a, _record(i, wall))
    assert sum(r.in_frames is not None for r in a.log) == 2  # 400 bytes a step, 1000 bytes kept
    assert table.expire_idle() == ["a"]
    assert set(table.open) == {"b"} and len(table.log_of("a") or []) == 10


def test_sessions_idle_past_the_timeout_expire_and_busy_or_recent_ones_stay(tmp_path: Path) -> None:
    clock = FakeClock()
    table = SessionTable(MinerConfig(tmp_path, 0, 1, session_idle_timeout=5.0), clock=clock)
    for sid in ("idle", "busy", "used"):
        table.add(_session(sid, 1, clock))
    table.get("busy").busy = True  # a step is running on it
    clock.advance(5.0)
    assert table.expire_idle() == []  # idle exactly the timeout: not past it
    table.get("used").last_used = clock()  # a step just ended
    clock.advance(0.5)
    assert table.expire_idle() == ["idle"]
    clock.advance(5.0)
    assert table.expire_idle() == ["used"] and set(table.open) == {"busy"}


def test_sessions_step_tensors_are_dropped_once_older_than_the_retention_window(tmp_path: Path) -> None:
    clock, wall = FakeClock(), FakeClock(1_700_000_000.0)
    table = SessionTable(MinerConfig(tmp_path, 0, 1, retention_seconds=600.0), clock=clock, wall_clock=wall)
    s = _session("s", 1, clock)
    table.add(s)
    for i in range(3):  # steps at 0, 300 and 600 s
        table.record(s, _record(i, wall))
        wall.advance(300.0)
    table.trim_retention()  # now 900 s: step 0 is past the window, steps 1 and 2 are within it
    assert [r.in_frames is not None for r in s.log] == [False, True, True]
    wall.advance(300.0)
    table.trim_retention()  # 1200 s: step 2 is exactly 600 s old, at the window's edge: kept
    assert [r.in_frames is not None for r in s.log] == [False, False, True]
    wall.advance(1e-3)
    table.trim_retention()
    assert [r.in_frames is not None for r in s.log] == [False, False, False]
    assert [r.step for r in table.log_of("s") or []] == [0, 1, 2]  # the digests stay for the commitment
