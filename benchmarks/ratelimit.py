"""Rate-limited bulk: the sandbox admits R requests/s; N creates through the bulk runner at R/s.

Figures: wall time over the ideal N/R (goal <= 1.03) and the share of responses that were 429
(goal <= 0.5%).
"""

from __future__ import annotations

import time
from collections import Counter

from benchmarks import harness
from ctct_partner_async import OutcomeState
from ctct_partner_async._hooks import ResponseDetails


async def measure(base: str, rate: float, count: int) -> dict[str, float]:
    statuses: Counter[int | None] = Counter()

    def on_response(details: ResponseDetails) -> None:
        statuses[details.status] += 1

    async with harness.client(base, rate_limit=rate, max_concurrency=64, on_response=on_response) as client:
        await client.webhooks.list()  # the token and a connection, before the clock starts
        statuses.clear()
        started = time.perf_counter()
        states = Counter(
            [o.state async for o in client.bulk.create_accounts(harness.rows(count, "rl"), concurrency=64)]
        )
        wall = time.perf_counter() - started
    total = sum(statuses.values())
    return {
        "ratelimit_rate": rate,
        "ratelimit_creates": float(count),
        "ratelimit_created": float(states[OutcomeState.CREATED]),
        "ratelimit_wall_s": wall,
        "ratelimit_wall_ratio": wall / (count / rate),
        "ratelimit_429_share": statuses[429] / total,
    }


async def run(*, quick: bool) -> dict[str, float]:
    rate, count = (100.0, 500) if quick else (200.0, 2000)
    with harness.sandbox("--rate-limit", str(rate)) as base:
        return await measure(base, rate, count)
