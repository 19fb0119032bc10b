"""Injected time: whatever sleeps or reads a clock in the SDK takes a ``Clock``.

``SystemClock`` is the real one. ``FakeClock`` is for tests (yours and ours): time stands still until
``advance()`` moves it, and sleepers wake when the clock reaches their deadline, so expiry and backoff are
tested in milliseconds. With ``autojump=True`` a ``sleep`` moves the clock itself, like trio's
autojump clock, so code under test never waits for real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock", "Timer", "call_later"]


class Timer(Protocol):
    """A callback scheduled with :func:`call_later`; ``cancel()`` stops it (safe after it ran)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time for deadlines, wall time for JWT ``exp`` and quota resets, and sleeping."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clocks and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(seconds, callback)


SYSTEM_CLOCK = SystemClock()


def call_later(clock: Clock, seconds: float, callback: Callable[[], None]) -> Timer:
    """Run ``callback`` once ``seconds`` have passed on ``clock``, without a task and without moving a fake
    clock (a clock without ``call_later`` of its own times it on the event loop)."""
    schedule: Callable[[float, Callable[[], None]], Timer] | None = getattr(clock, "call_later", None)
    if schedule is None:
        return asyncio.get_running_loop().call_later(seconds, callback)
    return schedule(seconds, callback)


class _FakeTimer:
    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class FakeClock:
    """A clock that moves only when told to (or, with ``autojump``, when someone sleeps)."""

    def __init__(
        self, *, start: float = 1_000.0, wall_start: float = 1_800_000_000.0, autojump: bool = False
    ):
        self._now = start
        self._wall_offset = wall_start - start
        self.autojump = autojump
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if self.autojump:
            self.advance(max(0.0, seconds))
            await asyncio.sleep(0)
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` when the clock reaches ``seconds`` from now (a timer is not a sleeper: it never
        moves an autojump clock)."""
        timer = _FakeTimer(callback)
        heapq.heappush(self._timers, (self._now + max(0.0, seconds), next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, wake every sleeper whose deadline has come and run the timers due."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        while self._timers and self._timers[0][0] <= self._now:
            _, _, timer = heapq.heappop(self._timers)
            callback, timer.callback = timer.callback, None
            if callback is not None:
                callback()

    @property
    def sleepers(self) -> int:
        """How many coroutines are asleep on this clock."""
        return sum(1 for _, _, f in self._sleepers if not f.done())
