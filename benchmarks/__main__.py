"""The benchmark suite: ``nox -s bench`` (full) or ``nox -s bench -- --quick`` (under two minutes).

Every figure is measured in this run and every goal is a ratio against a reference measured beside it,
because absolute figures swing from run to run on shared machines. The results go to
``benchmarks/results/latest.json`` and a table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bench_sandbox, memory, overhead, ratelimit, rollover, scale, shared, telemetry

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"

# (figure, goal description, check)
GOALS: list[tuple[str, str, Callable[[float], bool]]] = [
    ("overhead_cpu_ratio_c16", "<= 1.15", lambda v: v <= 1.15),
    ("overhead_cpu_ratio_c64", "<= 1.15", lambda v: v <= 1.15),
    ("overhead_cpu_ratio_c256", "<= 1.15", lambda v: v <= 1.15),
    ("httpx_vs_sdk_cpu_ratio_c16", ">= 8", lambda v: v >= 8),
    ("httpx_vs_sdk_cpu_ratio_c64", ">= 8", lambda v: v >= 8),
    ("httpx_vs_sdk_cpu_ratio_c256", ">= 8", lambda v: v >= 8),
    ("ratelimit_wall_ratio", "<= 1.03", lambda v: v <= 1.03),
    ("ratelimit_429_share", "<= 0.005", lambda v: v <= 0.005),
    ("rollover_token_requests", "== 1", lambda v: v == 1),
    ("rss_mb_100k", "< 150", lambda v: v < 150),
    ("rss_growth_ratio", "<= 1.25 (flat)", lambda v: v <= 1.25),
    *(
        goal
        for w in shared.WORKERS
        for goal in (
            (f"shared_w{w}_redis_wall_ratio", "<= 1.05", lambda v: v <= 1.05),
            (f"shared_w{w}_redis_429_share", "<= 0.005", lambda v: v <= 0.005),
            (f"shared_w{w}_redis_token_requests", "== 1", lambda v: v == 1),
        )
    ),
    *(
        goal
        for e in scale.BASES
        for goal in (
            (f"scale_e{e}_cold_list_share", "<= 1 (of E/50 + 0.1 N)", lambda v: v <= 1),
            (f"scale_e{e}_warm_list_share", "<= 1 (of 0.1 N)", lambda v: v <= 1),
            (f"scale_e{e}_warm_requests_per_account", "<= 1.15", lambda v: v <= 1.15),
        )
    ),
    ("sandbox_creates_per_s", ">= 2000", lambda v: v >= 2000),
    ("sandbox_cpu_ratio", "<= 1.5", lambda v: v <= 1.5),
]


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def run_all(quick: bool, only: set[str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    sections: dict[str, Callable[[], dict[str, float]]] = {
        "overhead": lambda: asyncio.run(overhead.run_suite(quick=quick)),
        "ratelimit": lambda: asyncio.run(ratelimit.run(quick=quick)),
        "rollover": lambda: asyncio.run(rollover.run(quick=quick)),
        "memory": lambda: asyncio.run(memory.run(quick=quick)),
        "shared": lambda: asyncio.run(shared.run(quick=quick)),
        "scale": lambda: asyncio.run(scale.run(quick=quick)),
        "telemetry": lambda: asyncio.run(telemetry.run(quick=quick)),
        "sandbox": lambda: {
            (k if k.startswith(("sandbox_", "bare_")) else f"sandbox_{k}"): v
            for k, v in bench_sandbox.run(quick).items()
        },
    }
    for name, section in sections.items():
        if only and name not in only:
            continue
        started = time.perf_counter()
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        figures.update(section())
        print(f"   {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    return figures


def table(figures: dict[str, float]) -> str:
    lines = [f"{'figure':36} {'value':>12}  goal"]
    goals = {name: (text, check) for name, text, check in GOALS}
    for name, value in figures.items():
        text, check = goals.get(name, ("", None))
        mark = "" if check is None else ("  met" if check(value) else "  MISSED")
        lines.append(f"{name:36} {value:12.4g}  {text}{mark}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ctct_partner_async benchmarks")
    parser.add_argument("--quick", action="store_true", help="short runs, under two minutes")
    parser.add_argument("--only", action="append", default=[], help="run only this section (repeatable)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    figures = run_all(args.quick, set(args.only))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "quick": args.quick,
        "machine": machine(),
        "seconds": time.perf_counter() - started,
        "figures": figures,
    }
    if not args.only:
        RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(table(figures))
    if "scale_rate" in figures:
        print(f"\nscale, {figures['scale_creates']:.0f} creates a job at {figures['scale_rate']:g}/s:")
        print(scale.table(figures))
    if "shared_rate" in figures:
        print(f"\nshared, {figures['shared_creates']:.0f} creates at {figures['shared_rate']:g}/s:")
        print(shared.table(figures))
    print(f"\n{'quick' if args.quick else 'full'} run, {document['seconds']:.0f}s; results in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
