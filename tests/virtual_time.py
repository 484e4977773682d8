"""Virtual time for tests of code that waits: a fake clock to pass where a clock is injected, and an event
loop whose clock jumps to its next timer instead of waiting for it.

    clock = FakeClock(); table = SessionTable(cfg, clock=clock); clock.advance(60.0)
    result = run_on_virtual_time(main())      # asyncio.run, on virtual time

On the virtual loop, ``asyncio.sleep``, ``wait_for`` timeouts and ``loop.time()`` all read virtual time,
which moves only when nothing is ready to run, straight to the earliest timer; executor jobs
(``asyncio.to_thread``, ``run_in_executor``) run inline, at once and in the loop's thread. So a run takes
no wall-clock time for its sleeps, every interleaving is the same on every run, and a loaded machine only
makes it slower, never different. Meant for code that waits on its own timers and on work it hands to
threads; not for real sockets (their I/O is polled, and time does not wait for it).
"""

from __future__ import annotations

import asyncio
import contextvars
import selectors
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar

__all__ = ["FakeClock", "VirtualTimeLoop", "run_on_virtual_time"]

T = TypeVar("T")


class FakeClock:
    """A clock that stands still until ``advance``d: pass it where production code takes ``time.monotonic``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "a clock never goes back"
        self.now += seconds


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without waiting; where the loop would wait ``timeout`` for its next timer, moves the clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if events:
            return events
        if timeout is None:  # no timer at all: only another thread or a socket can wake the loop
            return super().select(None)
        self._clock.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on virtual time (see the module's doc); ``clock`` is its time."""

    def __init__(self, start: float = 0.0) -> None:
        self.clock = FakeClock(start)
        super().__init__(_JumpingSelector(self.clock))

    def time(self) -> float:
        return self.clock()

    def run_in_executor(self, executor: Executor | None, func: Callable[..., T],  # type: ignore[override]
                        *args: Any) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self.create_future()
        try:
            future.set_result(contextvars.copy_context().run(func, *args))
        except Exception as exc:
            future.set_exception(exc)
        return future


def run_on_virtual_time(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a ``VirtualTimeLoop``."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
