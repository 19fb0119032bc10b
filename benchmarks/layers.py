"""Where the SDK's CPU per create goes: the stack measured with layers added one at a time.

``python -m benchmarks.layers``: raw aiohttp; our transport alone; ``client.send`` (retry policy, rate
limiter, token, hooks); ``client.accounts.create`` (models, validation, safe create). Ten alternating
runs of 1,000 creates at concurrency 16 against the sandbox in its own process; medians printed.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections.abc import Awaitable, Callable

from benchmarks import harness, overhead
from benchmarks.bench_sandbox import create_body
from ctct_partner_async import NewAccount
from ctct_partner_async._protocol import JSON_HEADERS, Request, encode_json

_tags = itertools.count()
Run = Callable[[str, int, int], Awaitable[tuple[float, float]]]


def _create_request(i: int, tag: str) -> Request:
    body = encode_json(create_body(i, tag))
    return Request("POST", "partner/accounts", "create_account", body=body, headers=JSON_HEADERS)


def layer(kind: str) -> Run:
    async def run(base: str, count: int, workers: int) -> tuple[float, float]:
        tag = f"{kind}{next(_tags)}"
        async with overhead._sdk_client(base, workers) as client:
            await client.webhooks.list()
            pipeline = client._pipeline
            headers = await pipeline.credentials.headers()

            async def send(i: int) -> None:
                if kind == "transport":
                    await pipeline.transport.send(_create_request(i, tag), headers)
                elif kind == "send":
                    await client.send(_create_request(i, tag))
                else:
                    await client.accounts.create(NewAccount(**create_body(i, tag)))  # type: ignore[arg-type]

            return await overhead.drive(send, count, workers)

    return run


async def main() -> None:
    runs: dict[str, Run] = {"raw": overhead.run_raw, **{k: layer(k) for k in ("transport", "send", "create")}}
    samples: dict[str, list[float]] = {k: [] for k in runs}
    with harness.sandbox("--rate-limit", "0") as base:
        for _ in range(5):
            for name in [*runs, *reversed(runs)]:
                await runs[name](base, 200, 16)
                cpu, _ = await runs[name](base, 1000, 16)
                samples[name].append(cpu / 1000 * 1e6)
    for name, values in samples.items():
        print(f"{name:10} {statistics.median(values):6.0f} us CPU per create")


if __name__ == "__main__":
    asyncio.run(main())
