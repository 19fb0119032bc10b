"""Several workers, one API key: W worker processes share N creates on one key the sandbox admits at R/s.

Each worker is a real process with its own ``PartnerClient`` at ``rate_limit=R`` (what each would be
configured with: the key's rate), started together. Without Redis each paces itself as if it owned the
key; with ``redis_url`` they book the key's slots in one Redis (a fresh ``redis-server`` per run) and
share its token. The sandbox runs in its own process with the key's limit (``--rate-limit R``) and the
token endpoint's 1 request/s per client id.

Figures per W (1, 3, 6) and mode (``alone``, ``redis``): wall time from the start to the last worker's
end over the ideal N/R, the share of API answers that were 429, the token requests of the run, and the
spread of the workers' finish times (seconds; a fair share ends them together). Goals with Redis: wall
ratio <= 1.05, 429 share <= 0.5%, one token request for all the workers.

A worker is ``python -m benchmarks.shared worker BASE COUNT TAG RATE [REDIS_URL]``: it prints ``ready``
once its client is built, waits for a line on stdin, runs its creates and prints its start, end and
outcome counts as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks import harness
from ctct_partner_async import TokenSettings

WORKERS = (1, 3, 6)
MODES = ("alone", "redis")


async def worker(base: str, count: int, tag: str, rate: float, redis_url: str | None) -> None:
    """One worker process: ``count`` creates at the key's ``rate``, started on a line from stdin."""
    shared: dict[str, Any] = {} if redis_url is None else {"redis_url": redis_url}
    client = harness.client(
        base, rate_limit=rate, max_concurrency=8, token_settings=TokenSettings(), **shared
    )
    async with client:
        await client.refresh_quota()  # Redis connected (no API request) before the start
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.time()
        states = Counter(
            [str(o.state) async for o in client.bulk.create_accounts(harness.rows(count, tag), concurrency=8)]
        )
        finished = time.time()
    print(json.dumps({"started": started, "finished": finished, "states": states}), flush=True)


def stats(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/_sandbox/stats") as resp:
        data: dict[str, Any] = json.load(resp)
        return data


@contextlib.asynccontextmanager
async def redis_for(mode: str) -> AsyncIterator[str | None]:
    """A fresh redis-server for a ``redis`` run (the tests' helper), nothing for ``alone``."""
    if mode != "redis":
        yield None
        return
    from tests.redis_server import running_redis  # the tests' real redis-server on a free port

    with tempfile.TemporaryDirectory() as workdir:
        async with running_redis(Path(workdir)) as url:
            yield url


async def one_run(base: str, workers: int, mode: str, rate: float, count: int, run: int) -> dict[str, float]:
    """``count`` creates split over ``workers`` processes; the figures of this (W, mode)."""
    async with redis_for(mode) as redis_url:
        procs = []
        for w in range(workers):
            share = count // workers + (w < count % workers)
            argv = ["-m", "benchmarks.shared", "worker", base, str(share), f"sh{run}w{w}", str(rate)]
            argv += [redis_url] if redis_url else []
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, *argv, cwd=harness.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            assert line.strip() == b"ready", line
        await asyncio.sleep(1.1)  # the sandbox's per-second window and the token endpoint's 1/s start afresh
        before = stats(base)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        reports = []
        for proc in procs:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=600)
            assert proc.returncode == 0, f"worker exited {proc.returncode}"
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
        after = stats(base)
    created = sum(r["states"].get("created", 0) for r in reports)
    assert created == count, f"{created} of {count} created: {[r['states'] for r in reports]}"
    requests = after["api_requests"] - before["api_requests"]
    throttled = after["responses_by_status"].get("429", 0) - before["responses_by_status"].get("429", 0)
    finishes = [r["finished"] for r in reports]
    wall = max(finishes) - min(r["started"] for r in reports)
    key = f"shared_w{workers}_{mode}"
    return {
        f"{key}_wall_ratio": wall / (count / rate),
        f"{key}_429_share": throttled / requests,
        f"{key}_token_requests": float(after["token_requests"] - before["token_requests"]),
        f"{key}_spread_s": max(finishes) - min(finishes),
    }


async def run(*, quick: bool) -> dict[str, float]:
    rate, count = (20.0, 200) if quick else (8.0, 180)
    figures: dict[str, float] = {"shared_rate": rate, "shared_creates": float(count)}
    with harness.sandbox("--rate-limit", str(rate), "--token-rate-limit", "1") as base:
        run_number = 0
        for workers in WORKERS:
            for mode in MODES:
                run_number += 1
                figures.update(await one_run(base, workers, mode, rate, count, run_number))
    return figures


def table(figures: dict[str, float]) -> str:
    """The README's table: a row per W and mode."""
    lines = [
        "| workers | Redis | wall / (N/R) | 429 share | token requests | finish spread |",
        "|---|---|---|---|---|---|",
    ]
    for workers in WORKERS:
        for mode in MODES:
            key = f"shared_w{workers}_{mode}"
            if f"{key}_wall_ratio" not in figures:
                continue
            lines.append(
                f"| {workers} | {'yes' if mode == 'redis' else 'no'} | {figures[f'{key}_wall_ratio']:.2f}x | "
                f"{figures[f'{key}_429_share']:.1%} | {figures[f'{key}_token_requests']:.0f} | "
                f"{figures[f'{key}_spread_s']:.1f} s |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        base, count, tag, rate = sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
        asyncio.run(worker(base, count, tag, rate, sys.argv[6] if len(sys.argv) > 6 else None))
    else:
        print(table(asyncio.run(run(quick="--quick" in sys.argv))))
