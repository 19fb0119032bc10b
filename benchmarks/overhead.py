"""Client CPU per create: the full SDK against raw aiohttp and httpx, side by side in one run.

The sandbox runs in its own process pinned to its own core (rate limits and faults off); the clients run
on the other core, each measurement in a fresh process (``python -m benchmarks.overhead VARIANT BASE
COUNT WORKERS``), so no run inherits another's heap, garbage or warm caches. Each variant sends the same
create body (unique login names) with the same headers through ``workers`` concurrent coroutines; the
figure is that process's CPU time per request, after a warm-up.
The SDK variant is the whole stack: ``PartnerClient.accounts.create(NewAccount)`` with the token
manager, a rate limiter set to a rate it never reaches, the retry policy and the models.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from benchmarks import harness
from benchmarks.bench_sandbox import create_body
from ctct_partner_async import NewAccount, PartnerClient, TokenSettings

API_KEY = "sandbox-api-key"
_tags = itertools.count()
_RUN = uuid.uuid4().hex[:8]  # login names stay unique across the fresh processes of one sandbox


async def drive(send: Callable[[int], Awaitable[Any]], count: int, workers: int) -> tuple[float, float]:
    """Send ``count`` requests through ``workers`` coroutines; (CPU seconds, wall seconds) spent."""
    counter = itertools.count()

    async def worker() -> None:
        while (index := next(counter)) < count:
            await send(index)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.process_time() - cpu, time.perf_counter() - wall


def _sdk_client(base: str, workers: int) -> PartnerClient:
    return PartnerClient(
        api_key=API_KEY,
        client_id="sandbox-client",
        client_secret="sandbox-secret",
        base_url=base + "/v3",
        token_url=base + "/oauth2/token",
        rate_limit=1_000_000.0,
        max_concurrency=workers,
        token_settings=TokenSettings(first_request_jitter=0),  # one process: nobody to spread out from
    )


async def run_sdk(base: str, count: int, workers: int) -> tuple[float, float]:
    tag = f"sdk{_RUN}{next(_tags)}"
    async with _sdk_client(base, workers) as client:
        await client.webhooks.list()  # the token, and a warm connection

        async def send(i: int) -> None:
            result = await client.accounts.create(NewAccount(**create_body(i, tag)))  # type: ignore[arg-type]
            assert result.encoded_account_id

        return await drive(send, count, workers)


async def _token(session: aiohttp.ClientSession, base: str) -> str:
    basic = base64.b64encode(b"sandbox-client:sandbox-secret").decode()
    async with session.post(
        base + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + basic},
    ) as resp:
        return str((await resp.json())["access_token"])


async def run_raw(base: str, count: int, workers: int) -> tuple[float, float]:
    tag = f"raw{_RUN}{next(_tags)}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as session:
        headers = {"x-api-key": API_KEY, "Authorization": await _token(session, base),
                   "Content-Type": "application/json", "Accept": "application/json"}  # fmt: skip
        url = base + "/v3/partner/accounts"

        async def send(i: int) -> None:
            body = json.dumps(create_body(i, tag)).encode()
            async with session.post(url, data=body, headers=headers) as resp:
                data = await resp.json()
                assert resp.status == 201 and data["encoded_account_id"]

        return await drive(send, count, workers)


async def run_httpx(base: str, count: int, workers: int) -> tuple[float, float]:
    import httpx

    tag = f"hx{_RUN}{next(_tags)}"
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(limits=limits) as session:
        token_resp = await session.post(base + "/oauth2/token", data={"grant_type": "client_credentials"},
                                        auth=("sandbox-client", "sandbox-secret"))  # fmt: skip
        headers = {"x-api-key": API_KEY, "Authorization": token_resp.json()["access_token"],
                   "Content-Type": "application/json", "Accept": "application/json"}  # fmt: skip
        url = base + "/v3/partner/accounts"

        async def send(i: int) -> None:
            resp = await session.post(url, content=json.dumps(create_body(i, tag)).encode(), headers=headers)
            assert resp.status_code == 201 and resp.json()["encoded_account_id"]

        return await drive(send, count, workers)


VARIANTS = {"raw": run_raw, "sdk": run_sdk, "httpx": run_httpx}


async def _measure_here(base: str, name: str, count: int, workers: int) -> dict[str, float]:
    n = count if name != "httpx" else max(200, count // 5)
    await VARIANTS[name](base, min(200, n), workers)  # warm-up: connections, token
    cpu, wall = await VARIANTS[name](base, n, workers)
    return {"cpu_us": cpu / n * 1e6, "rps": n / wall}


async def _one(base: str, name: str, count: int, workers: int) -> dict[str, float]:
    """One measurement in a fresh process (which inherits this one's core)."""
    argv = [sys.executable, "-m", "benchmarks.overhead", name, base, str(count), str(workers)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # one source of run-to-run variance fewer
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, cwd=harness.ROOT, env=env
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} run failed with exit code {proc.returncode}")
    result: dict[str, float] = json.loads(out)
    return result


async def measure(base: str, *, count: int, workers: int, rounds: int) -> dict[str, dict[str, float]]:
    """Per variant, medians over ``rounds`` of CPU microseconds per request and requests per second,
    and the median of the per-round ratios. Each round runs raw, SDK, SDK, raw (then httpx), so drift in
    the machine's speed cancels out of the SDK/raw ratio of that round."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    sdk_raw: list[float] = []
    httpx_sdk: list[float] = []
    for _ in range(rounds):
        order = [await _one(base, name, count, workers) for name in ("raw", "sdk", "sdk", "raw", "httpx")]
        raw, sdk, hx = order[0:4:3], order[1:3], order[4]
        samples["raw"] += raw
        samples["sdk"] += sdk
        samples["httpx"].append(hx)
        sdk_cpu = sum(x["cpu_us"] for x in sdk)
        sdk_raw.append(sdk_cpu / sum(x["cpu_us"] for x in raw))
        httpx_sdk.append(hx["cpu_us"] / (sdk_cpu / 2))
    result = {
        name: {key: statistics.median(s[key] for s in runs) for key in ("cpu_us", "rps")}
        for name, runs in samples.items()
    }
    result["ratios"] = {
        "sdk_raw": statistics.median(sdk_raw),
        "sdk_raw_min": min(sdk_raw),
        "sdk_raw_max": max(sdk_raw),
        "httpx_sdk": statistics.median(httpx_sdk),
        "httpx_raw": result["httpx"]["cpu_us"] / result["raw"]["cpu_us"],
    }
    return result


async def run_suite(*, quick: bool) -> dict[str, float]:
    """The overhead figures for concurrency 16, 64 and 256, against a sandbox in its own process."""
    with harness.sandbox("--rate-limit", "0") as base:
        return await run(base, quick=quick)


async def run(base: str, *, quick: bool) -> dict[str, float]:
    """The overhead figures for concurrency 16, 64 and 256."""
    results: dict[str, float] = {}
    for workers in (16, 64, 256):
        best = await measure(base, count=600 if quick else 1500, workers=workers, rounds=3 if quick else 7)
        for name in VARIANTS:
            results[f"{name}_cpu_us_c{workers}"] = best[name]["cpu_us"]
            results[f"{name}_rps_c{workers}"] = best[name]["rps"]
        results[f"overhead_cpu_ratio_c{workers}"] = best["ratios"]["sdk_raw"]
        results[f"overhead_cpu_ratio_min_c{workers}"] = best["ratios"]["sdk_raw_min"]
        results[f"overhead_cpu_ratio_max_c{workers}"] = best["ratios"]["sdk_raw_max"]
        results[f"httpx_cpu_ratio_c{workers}"] = best["ratios"]["httpx_raw"]
        results[f"httpx_vs_sdk_cpu_ratio_c{workers}"] = best["ratios"]["httpx_sdk"]
    return results


if __name__ == "__main__":
    variant, base_url, count_arg, workers_arg = sys.argv[1:5]
    print(json.dumps(asyncio.run(_measure_here(base_url, variant, int(count_arg), int(workers_arg)))))
