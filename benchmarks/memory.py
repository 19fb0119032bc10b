"""Peak RSS of a bulk create job streaming N generated rows against the sandbox.

Each row count runs in a fresh process (``python -m benchmarks.memory --rows N --base URL``) so its
peak RSS is its own. Goal: under 150 MB and flat from 10,000 to 100,000 rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys

from benchmarks import harness


async def stream(base: str, count: int) -> dict[str, float]:
    done = 0
    async with harness.client(base, rate_limit=None, max_concurrency=64) as client:
        async for outcome in client.bulk.create_accounts(harness.rows(count, f"mem{count}"), concurrency=64):
            done += outcome.ok
    return {
        "rows": float(count),
        "ok": float(done),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(base: str, count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--rows", str(count), "--base", base],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def run(*, quick: bool) -> dict[str, float]:
    sizes = (5_000, 20_000) if quick else (10_000, 100_000)
    results: dict[str, float] = {}
    with harness.sandbox("--rate-limit", "0") as base:
        for size in sizes:
            figure = measure(base, size)
            assert figure["ok"] == size, figure
            results[f"rss_mb_{size // 1000}k"] = figure["rss_mb"]
    small, large = (results[f"rss_mb_{s // 1000}k"] for s in sizes)
    results["rss_growth_ratio"] = large / small
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--base", required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(stream(args.base, args.rows))))


if __name__ == "__main__":
    main()
