"""SingleFlight: one shared task, waiters that can be cancelled alone, and a close that ends it."""

from __future__ import annotations

import asyncio

import pytest

from ctct_partner_async import ClientClosedError
from ctct_partner_async._flight import SingleFlight


async def test_one_task_serves_every_waiter() -> None:
    """Waiters joining while the work runs share its one result; the next start is new work."""
    runs = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return runs

    flight: SingleFlight[int] = SingleFlight("work")
    task = flight.start(work(), at=1.0)
    assert flight.running is task and flight.started_at == 1.0
    waiters = [asyncio.create_task(flight.join(task)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [1] * 50
    assert flight.running is None
    assert await flight.join(flight.start(work(), at=2.0)) == 2


async def test_cancelled_waiter_does_not_cancel_the_work() -> None:
    """A waiter cancelled mid-wait leaves the work running for the others."""
    gate = asyncio.Event()

    async def work() -> str:
        await gate.wait()
        return "done"

    flight: SingleFlight[str] = SingleFlight("work")
    task = flight.start(work(), at=0.0)
    impatient = asyncio.create_task(flight.join(task))
    patient = asyncio.create_task(flight.join(task))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    gate.set()
    assert await patient == "done"


async def test_failure_reaches_every_waiter() -> None:
    """An exception in the work is raised to each waiter, and the flight is free again."""

    async def work() -> None:
        raise ValueError("broken")

    flight: SingleFlight[None] = SingleFlight("work")
    task = flight.start(work(), at=0.0)
    results = await asyncio.gather(flight.join(task), flight.join(task), return_exceptions=True)
    assert [type(r) for r in results] == [ValueError, ValueError]
    assert flight.running is None


async def test_close_cancels_and_awaits_the_work() -> None:
    """close() cancels the work, waits for it to end, tells waiters the owner closed; nothing new starts."""
    cleaned = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    flight: SingleFlight[None] = SingleFlight("account list sweep")
    task = flight.start(work(), at=0.0)
    waiter = asyncio.create_task(flight.join(task))
    await asyncio.sleep(0)
    await flight.close()
    assert cleaned.is_set() and task.done()
    with pytest.raises(ClientClosedError, match="account list sweep"):
        await waiter
    coro = work()
    with pytest.raises(ClientClosedError):
        flight.start(coro, at=1.0)
    await flight.close()  # twice is fine
