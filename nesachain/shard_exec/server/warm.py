"""Warm a miner's compute path just before its next decode step is due.

A miner of a decode pipeline idles while the other miners and the client work, and its layers run
slower right after a pause (``bench/idle_gap.py``). Touching its weights beforehand, with a
matrix-vector product or a reduction over each, won back little of that; running its first layer on a
scratch token just before the step won back most of it, while the core stays the one the step then
runs on, and what it wins back fades within a few milliseconds. So, for a miner pinned to one CPU,
when steps come at a steady pace the miner runs ``runner.warm()`` (about a tenth of a step's compute)
from a few milliseconds before the next step is due, back to back until it comes, at most
``max_warms`` times. Warm-ups run on the compute thread, never during a step; a step that arrives
during one stops it between two of its operations (the miner passes ``warm`` a stop flag it sets when a
step arrives) and waits only for the operation under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

__all__ = ["StepWarmer", "pinned_to_one_cpu"]

log = structlog.get_logger(__name__)


def pinned_to_one_cpu() -> bool:
    """Whether this process may run on one CPU only (``taskset -c N``): then a warm-up and the step after
    it run on the same core, which is what makes warming ahead pay."""
    return hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) == 1


class StepWarmer:
    """Predicts the next decode step from the last arrivals and warms the compute path ahead of it."""

    def __init__(self, warm: Callable[[], Awaitable[None]], lead: float = 0.005, max_warms: int = 8,
                 history: int = 6) -> None:
        self._warm = warm  # one warm-up on the compute thread
        self.lead, self.max_warms = lead, max_warms
        self._arrivals: deque[float] = deque(maxlen=history)  # event-loop times of recent decode steps
        self._task: asyncio.Task[None] | None = None
        self.warm_ups = 0  # done since start (in /info)
        self.broken = False  # a warm-up raised: no more of them (steps report their own errors)

    def arrived(self, now: float, decode: bool) -> None:
        """A step came in (``decode``: it adds one token). Cancels the warm-ups planned for it."""
        self.cancel()
        if decode:
            self._arrivals.append(now)
        else:
            self._arrivals.clear()  # a prefill or a stateless step: the pace starts over

    def period(self) -> float | None:
        """The shortest of the recent gaps between decode steps, when there are at least three gaps and
        they are steady (their median under twice the shortest); else None."""
        if len(self._arrivals) < 4:
            return None
        gaps = [b - a for a, b in itertools.pairwise(self._arrivals)]
        shortest = min(gaps)
        return shortest if 0 < shortest and statistics.median(gaps) < 2 * shortest else None

    def step_done(self, loop: asyncio.AbstractEventLoop) -> None:
        """After a step, with nothing else queued: plan warm-ups ahead of the next one if the pace is steady."""
        self.cancel()
        period = self.period()
        if period is None or self.broken:
            return
        last = self._arrivals[-1]
        due = last + period - self.lead
        if due > loop.time():
            self._task = loop.create_task(self._run(due, last + 1.5 * period))

    async def _run(self, due: float, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(due - loop.time())
        for _ in range(self.max_warms):
            if loop.time() >= deadline:  # the step is late: the session paused or ended
                return
            try:
                await self._warm()
            except Exception:
                log.exception("warm_up_failed")
                self.broken = True
                return
            self.warm_ups += 1

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
