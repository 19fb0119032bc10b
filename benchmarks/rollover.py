"""Token rollover under load: 10,000 calls paced across the moment the JWT is renewed.

The sandbox issues tokens that live a few seconds; the client renews in its advisory window while
calls keep flowing. Figures: token requests during the run (goal exactly 1) and the latency at p50/p99
of calls that overlapped the renewal, beside calls that did not.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import urllib.request

from benchmarks import harness
from ctct_partner_async._auth import TokenRefresh, TokenSettings

TTL = 16.0
ADVISORY = 4.0


def token_requests(base: str) -> int:
    with urllib.request.urlopen(base + "/_sandbox/stats") as resp:
        return int(json.load(resp)["token_requests"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure(base: str, calls: int, spread: float) -> dict[str, float]:
    refreshes: list[tuple[float, float]] = []

    reasons: list[str] = []

    def on_refresh(event: TokenRefresh) -> None:
        now = time.perf_counter()
        refreshes.append((now - event.duration, now))
        reasons.append(f"{event.reason}:{event.outcome}:{event.status}")

    settings = TokenSettings(advisory_window=ADVISORY, mandatory_window=0.5)
    spans: list[tuple[float, float]] = []
    async with harness.client(base, rate_limit=None, max_concurrency=256, token_settings=settings,
                              on_token_refresh=on_refresh) as client:  # fmt: skip
        await client.webhooks.list()
        fetched = time.perf_counter()
        before = token_requests(base)
        refreshes.clear()

        async def one() -> None:
            start = time.perf_counter()
            await client.webhooks.get(1)
            spans.append((start, time.perf_counter()))

        renew_at = fetched + TTL - ADVISORY
        await asyncio.sleep(max(0.0, renew_at - spread / 2 - time.perf_counter()))
        tasks = []
        for i in range(calls):
            tasks.append(asyncio.create_task(one()))
            if i % 50 == 49:
                await asyncio.sleep(spread * 50 / calls)
        await asyncio.gather(*tasks)
        after = token_requests(base)
    print("token refreshes during the run:", reasons, file=sys.stderr)
    straddling = [e - s for s, e in spans if any(s <= r_end and e >= r_start for r_start, r_end in refreshes)]
    others = [e - s for s, e in spans if not any(s <= r_end and e >= r_start for r_start, r_end in refreshes)]
    return {
        "rollover_calls": float(len(spans)),
        "rollover_token_requests": float(after - before),
        "rollover_straddling_calls": float(len(straddling)),
        "rollover_p50_ms_straddling": percentile(straddling, 0.5) * 1e3,
        "rollover_p99_ms_straddling": percentile(straddling, 0.99) * 1e3,
        "rollover_p50_ms_other": statistics.median(others) * 1e3,
        "rollover_p99_ms_other": percentile(others, 0.99) * 1e3,
    }


async def run(*, quick: bool) -> dict[str, float]:
    with harness.sandbox("--rate-limit", "0", "--token-ttl", str(TTL)) as base:
        return await measure(base, 10_000, 4.0)
