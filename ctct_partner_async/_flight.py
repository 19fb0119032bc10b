"""``SingleFlight``: one shared piece of work at a time, however many coroutines wait for it.

The token manager renews the JWT with it and the reconciler sweeps the account list with it. The work
runs as its own task, so a waiter that is cancelled (a request timing out, a web client going away)
never cancels it for the others; ``close()`` cancels it and waits for it to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

from ._errors import ClientClosedError

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """At most one task of shared work; ``started_at`` is when the current (or last) one began."""

    __slots__ = ("_closed", "_name", "_task", "_work", "started_at")

    def __init__(self, name: str) -> None:
        self._name = name
        self._task: asyncio.Task[T] | None = None
        self._work: Coroutine[Any, Any, T] | None = None
        self._closed = False
        self.started_at = -float("inf")

    @property
    def running(self) -> asyncio.Task[T] | None:
        """The task in flight, if any."""
        return self._task

    def start(self, work: Coroutine[Any, Any, T], *, at: float) -> asyncio.Task[T]:
        """Run ``work`` as the shared task (the caller has checked that none runs); ``at`` is now."""
        if self._closed:
            work.close()
            raise ClientClosedError("this client is closed; create a new one")
        task = asyncio.get_running_loop().create_task(self._run(work), name=self._name)
        self._task, self._work, self.started_at = task, work, at
        return task

    async def _run(self, work: Coroutine[Any, Any, T]) -> T:
        try:
            return await work
        finally:
            if self._task is asyncio.current_task():
                self._task = self._work = None

    async def join(self, task: asyncio.Task[T]) -> T:
        """The shared task's result; a waiter's cancellation never cancels it for the others."""
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                raise ClientClosedError(f"the client was closed during the {self._name}") from None
            raise

    async def close(self) -> None:
        """Cancel the work in flight and wait for it to end; no new work starts. Safe to call twice."""
        self._closed = True
        task = self._task
        if task is not None and not task.done() and not task.get_loop().is_closed():
            task.cancel()
            await asyncio.wait([task])
        if self._work is not None:
            self._work.close()  # a task cancelled before its first step never started its work
        self._task = self._work = None
