"""Safe create at scale: what reconciliation costs when the partner already has E accounts.

The sandbox (its own process) starts with E existing accounts (0, 10,000, 50,000) and answers 5% of the
creates 503 (stored, created ``deferred_delay`` later) and drops 3% of the connections after the commit
(an ambiguous create). One client runs two bulk jobs of N creates each: the first cold, the second warm
(the same client, so what it read of the list before). Figures per E and job: list requests, total API
requests per created account, and wall time over ((N + E/50) / R), the time one full read of the list
and the creates take at the scaled rate R. Goals: list requests <= E/50 + 0.1 N cold and <= 0.1 N warm
(``list_share``: the list requests over that budget, <= 1); total requests per account <= 1.15 warm.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from typing import Any

from benchmarks import harness
from ctct_partner_async import OutcomeState

BASES = (0, 10_000, 50_000)
DONE = {OutcomeState.CREATED, OutcomeState.RECONCILED}


def stats(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/_sandbox/stats") as resp:
        data: dict[str, Any] = json.load(resp)
        return data


def list_requests(data: dict[str, Any]) -> int:
    return int(data["requests_by_operation"].get("list_accounts", 0))


async def measure(existing: int, count: int, rate: float) -> dict[str, float]:
    flags = ["--existing-accounts", str(existing), "--rate-limit", str(rate), "--seed", "3",
             "--fault", "create_503=0.05", "--fault", "drop_after_commit=0.03", "--fault", "deferred_delay=1"]  # fmt: skip
    figures: dict[str, float] = {}
    with harness.sandbox(*flags) as base:
        async with harness.client(base, rate_limit=rate, max_concurrency=16) as client:
            await client.webhooks.list()  # the token and a connection, before the clock starts
            for job in ("cold", "warm"):
                before = stats(base)
                started = time.perf_counter()
                rows = harness.rows(count, f"sc{existing}{job}")
                states = Counter([o.state async for o in client.bulk.create_accounts(rows, concurrency=16)])
                wall = time.perf_counter() - started
                after = stats(base)
                done = sum(states[s] for s in DONE)
                assert done == count, f"E={existing} {job}: {dict(states)}"
                lists = list_requests(after) - list_requests(before)
                total = after["api_requests"] - before["api_requests"]
                key = f"scale_e{existing}_{job}"
                figures[f"{key}_list_requests"] = float(lists)
                budget = (existing / 50 if job == "cold" else 0) + 0.1 * count
                figures[f"{key}_list_budget"] = budget
                figures[f"{key}_list_share"] = lists / budget
                figures[f"{key}_requests_per_account"] = total / count
                figures[f"{key}_wall_ratio"] = wall / ((count + existing / 50) / rate)
    return figures


async def run(*, quick: bool) -> dict[str, float]:
    count, rate = (200, 200.0) if quick else (500, 200.0)
    figures: dict[str, float] = {"scale_creates": float(count), "scale_rate": rate}
    for existing in BASES if not quick else BASES[:2]:
        figures.update(await measure(existing, count, rate))
    return figures


def table(figures: dict[str, float]) -> str:
    """The README's table: a row per E and job."""
    lines = [
        "| existing accounts | job | list requests (goal) | requests per account | wall / ((N + E/50)/R) |",
        "|---|---|---|---|---|",
    ]
    for existing in BASES:
        for job in ("cold", "warm"):
            key = f"scale_e{existing}_{job}"
            if f"{key}_list_requests" not in figures:
                continue
            lines.append(
                f"| {existing:,} | {job} | {figures[f'{key}_list_requests']:.0f} "
                f"(<= {figures[f'{key}_list_budget']:.0f}) | {figures[f'{key}_requests_per_account']:.3f} | "
                f"{figures[f'{key}_wall_ratio']:.2f}x |"
            )
    return "\n".join(lines)
