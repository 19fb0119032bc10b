"""What ``telemetry.instrument`` costs per create, against the same client without it, in one run.

Two measurements, each a ratio against the uninstrumented client measured beside it:

- **idle**: a transport that answers at once (no network, so no noise from the machine): the SDK's
  Python per ``accounts.create`` off, instrumented with OpenTelemetry's API alone (no SDK configured:
  every span a no-op), and instrumented with the OpenTelemetry SDK (a ``BatchSpanProcessor`` to an
  exporter that drops, and a metric reader), in alternating rounds in this process;
- **sandbox**: the whole stack against the sandbox in its own process pinned to its own core, as the
  overhead section measures it (``overhead.run_sdk``), off and with the SDK, each run in a fresh process
  (``python -m benchmarks.telemetry VARIANT BASE COUNT WORKERS``), in rounds off, on, on, off.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from benchmarks import harness, overhead
from benchmarks.bench_sandbox import create_body
from ctct_partner_async import NewAccount, PartnerClient, TokenSettings
from ctct_partner_async._protocol import Request, Response
from ctct_partner_async.telemetry import instrument

_RUN = uuid.uuid4().hex[:8]
_tags = itertools.count()
CREATED = Response.from_json(201, {"encoded_account_id": "a07e1my9tbw0", "provision_uuid": "u"})
TOKEN = Response.from_json(200, {"access_token": "jwt", "token_type": "Bearer", "expires_in": 3600})


class _Dropping(SpanExporter):
    """Exports nowhere: the spans' whole cost on the client side, none of a collector's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _Instant:
    """A transport that answers at once: a token, or a created account."""

    async def send(
        self, request: Request, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> Response:
        return TOKEN if request.operation == "fetch_token" else CREATED


def _otel_sdk() -> tuple[TracerProvider, MeterProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Dropping()))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def _instrumented(client: PartnerClient, variant: str) -> tuple[TracerProvider, MeterProvider] | None:
    if variant == "noop":
        instrument(client)  # the global providers: OpenTelemetry's no-ops while no SDK is set
    elif variant == "otel":
        providers = _otel_sdk()
        instrument(client, tracer_provider=providers[0], meter_provider=providers[1])
        return providers
    return None


def _shutdown(providers: tuple[TracerProvider, MeterProvider] | None) -> None:
    if providers is not None:
        providers[0].shutdown()  # the export thread's last batch is counted too
        providers[1].shutdown()


async def idle_run(variant: str, count: int, workers: int) -> float:
    """CPU microseconds per create on the instant transport."""
    client = PartnerClient(
        api_key="k", client_id="id", client_secret="s", transport=_Instant(), rate_limit=None,
        max_concurrency=workers, token_settings=TokenSettings(first_request_jitter=0),
    )  # fmt: skip
    tag = f"idle{_RUN}{next(_tags)}"
    async with client:
        providers = _instrumented(client, variant)

        async def send(i: int) -> None:
            await client.accounts.create(NewAccount(**create_body(i, tag)))  # type: ignore[arg-type]

        await overhead.drive(send, min(500, count), workers)  # warm-up
        cpu = time.process_time()
        await overhead.drive(send, count, workers)
        _shutdown(providers)
        return (time.process_time() - cpu) / count * 1e6


async def idle(*, rounds: int, count: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {"off": [], "noop": [], "otel": []}
    for _ in range(rounds):
        for variant in ("off", "noop", "otel", "otel", "noop", "off"):
            samples[variant].append(await idle_run(variant, count, 16))
    off = statistics.median(samples["off"])
    return {
        "telemetry_idle_off_us": off,
        "telemetry_idle_noop_us": statistics.median(samples["noop"]),
        "telemetry_idle_otel_us": statistics.median(samples["otel"]),
        "telemetry_idle_noop_ratio": statistics.median(samples["noop"]) / off,
        "telemetry_idle_otel_ratio": statistics.median(samples["otel"]) / off,
    }


async def _measure_here(base: str, variant: str, count: int, workers: int) -> dict[str, float]:
    """One process: the SDK against the sandbox, off or with the OpenTelemetry SDK."""

    async def run(n: int) -> float:
        tag = f"tel{variant}{_RUN}{next(_tags)}"
        async with overhead._sdk_client(base, workers) as client:
            providers = _instrumented(client, variant)
            await client.webhooks.list()

            async def send(i: int) -> None:
                result = await client.accounts.create(NewAccount(**create_body(i, tag)))  # type: ignore[arg-type]
                assert result.encoded_account_id

            cpu = time.process_time()
            await overhead.drive(send, n, workers)
            _shutdown(providers)
            return (time.process_time() - cpu) / n * 1e6

    await run(min(200, count))  # warm-up: connections, token
    return {"cpu_us": await run(count)}


async def _one(base: str, variant: str, count: int, workers: int) -> float:
    argv = [sys.executable, "-m", "benchmarks.telemetry", variant, base, str(count), str(workers)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, cwd=harness.ROOT, env=env
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"telemetry {variant} run failed with exit code {proc.returncode}")
    return float(json.loads(out)["cpu_us"])


async def against_sandbox(base: str, *, rounds: int, count: int, workers: int) -> dict[str, float]:
    off: list[float] = []
    on: list[float] = []
    ratios: list[float] = []
    for _ in range(rounds):
        order = [await _one(base, v, count, workers) for v in ("off", "otel", "otel", "off")]
        off += order[0:4:3]
        on += order[1:3]
        ratios.append(sum(order[1:3]) / sum(order[0:4:3]))
    return {
        f"telemetry_sandbox_off_us_c{workers}": statistics.median(off),
        f"telemetry_sandbox_otel_us_c{workers}": statistics.median(on),
        f"telemetry_sandbox_otel_ratio_c{workers}": statistics.median(ratios),
        f"telemetry_sandbox_otel_ratio_min_c{workers}": min(ratios),
        f"telemetry_sandbox_otel_ratio_max_c{workers}": max(ratios),
    }


async def run(*, quick: bool) -> dict[str, float]:
    figures = await idle(rounds=3 if quick else 5, count=2000 if quick else 5000)
    with harness.sandbox("--rate-limit", "0") as base:
        for workers in (16, 64):
            figures.update(
                await against_sandbox(
                    base, rounds=3 if quick else 5, count=600 if quick else 1500, workers=workers
                )
            )
    return figures


if __name__ == "__main__":
    variant_arg, base_arg, count_arg, workers_arg = sys.argv[1:5]
    result: dict[str, Any] = asyncio.run(
        _measure_here(base_arg, variant_arg, int(count_arg), int(workers_arg))
    )
    print(json.dumps(result))
