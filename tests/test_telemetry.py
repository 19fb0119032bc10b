"""``telemetry.instrument``: spans and metrics read with the OpenTelemetry SDK's in-memory exporter and
reader, against the sandbox on loopback (and a recording server for what goes over the wire)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import attrs
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ctct_partner_async import (
    FakeClock,
    LegacyBillingClient,
    NewAccount,
    PartnerClient,
    RetryPolicy,
    telemetry,
)
from ctct_partner_async import _errors as errors
from ctct_partner_async._hooks import ResponseDetails
from ctct_partner_async._models import CreateResult
from ctct_partner_async._protocol import Request
from ctct_partner_async.sandbox import Faults, SandboxConfig, SandboxHandle, run_sandbox
from ctct_partner_async.sandbox.tokens import TokenIssuer
from ctct_partner_async.telemetry import instrument, uninstrument

from .conftest import WireServer

PASSWORD = "Pa55-word-never-seen"


@attrs.define
class Otel:
    """An OpenTelemetry SDK set up for one test: every span kept, metrics read on demand."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        spans = [s for s in self.finished() if s.parent is not None and s.parent.span_id == _id(parent)]
        return sorted(spans, key=lambda s: s.start_time or 0)

    def requests(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The CLIENT spans under ``parent``, in order."""
        return [s for s in self.children(parent) if s.kind is SpanKind.CLIENT]

    def instrument(self, client: PartnerClient | LegacyBillingClient, **options: Any) -> None:
        instrument(
            client, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Every metric by name: (attributes, value) per point (a histogram's value: its count)."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        value = getattr(point, "count", value)
                        found.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
        return found

    def export(self) -> str:
        """Everything exported, as text: every span (name, attributes, events, status) and metric."""
        data = self.reader.get_metrics_data()
        return "\n".join(
            [*(s.to_json() for s in self.finished()), data.to_json() if data is not None else ""]
        )


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(spans, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def account(i: int) -> NewAccount:
    return NewAccount(contact_email=f"owner{i}@example.com", login_name=f"client_{i:05d}", password=PASSWORD,
                      country_code="US", state_code="MA", organization_name=f"Org {i}")  # fmt: skip


def client_for(sb: SandboxHandle, clock: FakeClock, **options: Any) -> PartnerClient:
    cfg = sb.sandbox.config
    settings: dict[str, Any] = {"rate_limit": None, **options}
    return PartnerClient(api_key=cfg.api_key, client_id=cfg.client_id, client_secret=cfg.client_secret,
                         base_url=sb.base_url, token_url=sb.token_url, clock=clock, **settings)  # fmt: skip


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0)) as sb:
        yield sb


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def create_after_one_fault(otel: Otel, sandbox: SandboxHandle, fault: str, i: int) -> CreateResult:
    """Create account ``i`` on an instrumented client, its first attempt meeting ``fault`` (the sandbox's
    create fault, turned off by the first response)."""
    sandbox.sandbox.faults.update({fault: 1.0, "fault_operations": ["create_account"]})

    def heal(details: ResponseDetails) -> None:
        sandbox.sandbox.faults.update({fault: 0.0})

    async with client_for(sandbox, FakeClock(autojump=True), on_response=heal) as client:
        otel.instrument(client)
        return await client.accounts.create(account(i))


async def test_a_create_with_one_500_is_one_operation_with_two_requests(
    otel: Otel, sandbox: SandboxHandle
) -> None:
    """The acceptance trace: ``ctct.create_account`` (created) holding two CLIENT spans, the first a 500,
    the second the resend (count 1) that created it; the retry is an event on the operation."""
    result = await create_after_one_fault(otel, sandbox, "error_500", 1)
    assert result.status.value == "created"
    (operation,) = otel.named("ctct.create_account")
    assert operation.kind is SpanKind.INTERNAL
    assert attributes(operation) == {"ctct.operation": "create_account", "ctct.create.outcome": "created"}
    first, second = otel.requests(operation)
    assert [first.name, second.name] == ["POST /partner/accounts", "POST /partner/accounts"]
    assert first.kind is second.kind is SpanKind.CLIENT
    port = int(sandbox.base_url.split(":")[2].split("/")[0])
    assert attributes(first) == {
        "http.request.method": "POST", "server.address": "127.0.0.1", "server.port": port,
        "url.template": "/partner/accounts", "ctct.operation": "create_account", "ctct.rate_limit.wait": 0.0,
        "http.response.status_code": 500, "error.type": "500",
    }  # fmt: skip
    assert first.status.status_code is StatusCode.ERROR
    assert "http.request.resend_count" not in attributes(first)
    assert attributes(second)["http.request.resend_count"] == 1
    assert attributes(second)["http.response.status_code"] == 201
    assert "error.type" not in attributes(second)
    (retry,) = operation.events
    assert retry.name == "ctct.retry"
    assert dict(retry.attributes or {}).keys() == {"ctct.attempt", "ctct.retry.wait", "error.type"}
    assert dict(retry.attributes or {})["error.type"] == "ServerError"
    # the first call's token request is a renewal span of its own, under the operation
    (renewal,) = otel.named("ctct.token_renewal")
    assert renewal.parent is not None and renewal.parent.span_id == _id(operation)
    assert attributes(renewal) == {"ctct.token.reason": "initial", "ctct.token.outcome": "ok",
                                   "ctct.token.attempt": 1}  # fmt: skip


async def test_a_401_replay_and_its_token_renewal_show_up(otel: Otel, sandbox: SandboxHandle) -> None:
    async with client_for(sandbox, FakeClock(autojump=True)) as client:
        await client.webhooks.list()  # a token, before the instrumentation
        otel.instrument(client)
        sandbox.sandbox.revoke_tokens()
        await client.webhooks.list()
    (operation,) = otel.named("ctct.list_webhooks")
    refused, replay = otel.requests(operation)
    assert refused.name == replay.name == "GET /partner/webhooks/subscriptions"
    assert attributes(refused)["http.response.status_code"] == 401
    assert attributes(refused)["error.type"] == "401"
    assert attributes(replay)["http.request.resend_count"] == 1
    assert attributes(replay)["http.response.status_code"] == 200
    (renewal,) = otel.named("ctct.token_renewal")
    assert attributes(renewal)["ctct.token.reason"] == "unauthorized"
    assert attributes(renewal)["ctct.token.outcome"] == "ok"
    assert renewal.parent is not None and renewal.parent.span_id == _id(operation)
    assert operation.status.status_code is StatusCode.UNSET  # the call succeeded
    renewals = otel.points()["ctct.token.renewals"]
    assert renewals == [({"ctct.token.reason": "unauthorized", "ctct.token.outcome": "ok"}, 1)]


async def test_a_failed_token_request_is_a_failed_renewal_span(otel: Otel) -> None:
    faults = Faults(token_fail_next=1, token_fail_status=503)
    config = SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0, faults=faults)
    async with run_sandbox(config) as sb, client_for(sb, FakeClock(autojump=True)) as client:
        otel.instrument(client)
        await client.webhooks.list()
    failed, ok = sorted(otel.named("ctct.token_renewal"), key=lambda s: s.start_time or 0)
    assert attributes(failed)["ctct.token.outcome"] == "error"
    assert attributes(failed)["http.response.status_code"] == 503
    assert attributes(failed)["error.type"] == "503"
    assert failed.status.status_code is StatusCode.ERROR
    assert attributes(ok)["ctct.token.attempt"] == 2
    counted = {tuple(sorted(a.items())): n for a, n in otel.points()["ctct.token.renewals"]}
    assert counted == {
        (("ctct.token.outcome", "error"), ("ctct.token.reason", "initial")): 1,
        (("ctct.token.outcome", "ok"), ("ctct.token.reason", "initial")): 1,
    }


async def test_a_borrowed_session_is_traced_and_carries_the_trace_context(
    otel: Otel, wire: WireServer
) -> None:
    """A session made before ``instrument`` (where aiohttp's own instrumentation sees nothing): the
    request is a CLIENT span, and its ``traceparent`` names that span."""
    async with aiohttp.ClientSession() as session:
        async with PartnerClient(api_key="k", token_provider=_jwt, base_url=wire.url + "/v3", session=session,
                                 rate_limit=None) as client:  # fmt: skip
            otel.instrument(client)
            wire.reply(200, {"plan_type": "GOLD"})
            await client.accounts.get_plan("a07e1my9tbw0")
    (request,) = otel.named("GET /partner/accounts/{encoded_account_id}/plan")
    assert request.context is not None
    trace_id = f"{request.context.trace_id:032x}"
    version, sent_trace, sent_span, flags = wire.last.headers["traceparent"].split("-")
    assert (version, sent_trace, sent_span) == ("00", trace_id, f"{request.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled
    assert "a07e1my9tbw0" not in otel.export()  # the id is in the URL, never in a span


async def _jwt() -> str:
    return "jwt-for-the-wire"


async def test_propagate_false_sends_no_trace_context(otel: Otel, wire: WireServer) -> None:
    async with PartnerClient(api_key="k", token_provider=_jwt, base_url=wire.url + "/v3",
                             rate_limit=None) as client:  # fmt: skip
        otel.instrument(client, propagate=False)
        await client.webhooks.list()
    assert "traceparent" not in {k.lower() for k in wire.last.headers}
    assert otel.named("GET /partner/webhooks/subscriptions")


async def test_the_v2_client_is_traced_without_its_query(otel: Otel, sandbox: SandboxHandle) -> None:
    cfg = sandbox.sandbox.config
    async with client_for(sandbox, FakeClock(autojump=True)) as v3:
        created = await v3.accounts.create(account(7))
    assert created.encoded_account_id is not None
    async with LegacyBillingClient(username=cfg.client_id, password=cfg.client_secret, api_key=cfg.api_key,
                                   base_url=sandbox.legacy_url, rate_limit=None) as v2:  # fmt: skip
        otel.instrument(v2)
        await v2.get_plan(created.encoded_account_id)
    (operation,) = otel.named("ctct.legacy_get_plan")
    (request,) = otel.requests(operation)
    assert request.name == "GET /partner/accounts/{encoded_account_id}/plan"
    exported = otel.export()
    for secret in (cfg.api_key, cfg.client_secret, "api_key", created.encoded_account_id):
        assert secret not in exported


async def test_a_reconciled_create_holds_its_sweep(otel: Otel, sandbox: SandboxHandle) -> None:
    """A connection dropped after the commit, then 409: the create is ``reconciled``, and the sweep of the
    account list that found it is a span inside it, with its page requests."""
    result = await create_after_one_fault(otel, sandbox, "drop_after_commit", 2)
    assert result.status.value == "reconciled"
    (operation,) = otel.named("ctct.create_account")
    assert attributes(operation)["ctct.create.outcome"] == "reconciled"
    children = otel.children(operation)
    creates = [s for s in children if s.name == "POST /partner/accounts"]
    assert [attributes(s).get("error.type") for s in creates] == ["ResponseError", "409"]
    (sweep,) = (s for s in children if s.name == "ctct.account_list_sweep")
    assert attributes(sweep) == {"ctct.sweep.full": True, "ctct.sweep.pages": 1, "ctct.sweep.complete": True}
    (page,) = otel.children(sweep)
    assert page.name == "GET /partner/accounts"
    assert not otel.named("ctct.list_accounts")  # a sweep's pages are the sweep's, not operations


async def test_the_rate_limit_wait_is_on_each_request(otel: Otel, wire: WireServer) -> None:
    """Three calls in a row at 10/s on a fake clock that stands still but for the sleeps: the first goes
    at once, each other one waits 0.1 s for its turn; the spans say so, and the histogram has the three."""
    async with PartnerClient(api_key="k", token_provider=_jwt, base_url=wire.url + "/v3", rate_limit=10.0,
                             clock=FakeClock(autojump=True)) as client:  # fmt: skip
        otel.instrument(client)
        for _ in range(3):
            await client.webhooks.list()
    spans = sorted(otel.named("GET /partner/webhooks/subscriptions"), key=lambda s: s.start_time or 0)
    assert [attributes(s)["ctct.rate_limit.wait"] for s in spans] == pytest.approx([0.0, 0.1, 0.1])
    assert otel.points()["ctct.client.rate_limit.wait"] == [({"ctct.operation": "list_webhooks"}, 3)]


async def test_errors_on_the_operation_and_the_request(otel: Otel, wire: WireServer) -> None:
    async with PartnerClient(api_key="k", token_provider=_jwt, base_url=wire.url + "/v3",
                             rate_limit=None) as client:  # fmt: skip
        otel.instrument(client)
        wire.reply(404, [{"error_key": "not.found", "error_message": f"no account, password {PASSWORD}"}])
        with pytest.raises(errors.NotFoundError):
            await client.accounts.get_plan("a07e1my9tbw0")
    (operation,) = otel.named("ctct.get_plan")
    assert operation.status.status_code is StatusCode.ERROR
    assert operation.status.description == "NotFoundError"
    assert attributes(operation)["error.type"] == "NotFoundError"
    (request,) = otel.requests(operation)
    assert attributes(request)["error.type"] == "404"
    assert PASSWORD not in otel.export()  # an error's message never reaches a span


async def test_a_transport_error_is_the_requests_error_type(otel: Otel) -> None:
    async with PartnerClient(api_key="k", token_provider=_jwt, base_url="http://127.0.0.1:9/v3", rate_limit=None,
                             retry_policy=RetryPolicy(max_attempts=1)) as client:  # fmt: skip
        otel.instrument(client)
        with pytest.raises(errors.ConnectError):
            await client.webhooks.list()
    (request,) = otel.named("GET /partner/webhooks/subscriptions")
    assert attributes(request)["error.type"] == "ConnectError"
    assert "http.response.status_code" not in attributes(request)
    ((labels, count),) = otel.points()["http.client.request.duration"]
    assert labels["error.type"] == "ConnectError" and count == 1


async def test_metrics_have_the_expected_names_and_labels(otel: Otel) -> None:
    """One run with a retry, a throttle, a token renewal, a rate-limit wait and a bulk job."""
    config = SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0)
    async with run_sandbox(config) as sb:

        def heal(details: ResponseDetails) -> None:
            if details.status == 429:
                sb.sandbox.faults.update({"throttle_429": 0.0})

        async with client_for(sb, FakeClock(autojump=True), on_response=heal) as client:
            otel.instrument(client)
            rows: list[Any] = [attrs.asdict(account(1)), {"login_name": "bad row"}, attrs.asdict(account(2))]
            outcomes = [o async for o in client.bulk.create_accounts(rows)]
            created = next(o.encoded_account_id for o in outcomes if o.encoded_account_id)
            sb.sandbox.faults.update({"throttle_429": 1.0, "fault_operations": ["get_plan"]})
            await client.accounts.get_plan(created)
    points = otel.points()
    assert set(points) == {
        "http.client.request.duration", "ctct.client.retries", "ctct.client.throttles", "ctct.token.renewals",
        "ctct.client.rate_limit.wait", "ctct.bulk.rows",
    }  # fmt: skip
    durations = {(a["http.request.method"], a["url.template"], a["http.response.status_code"]): n
                 for a, n in points["http.client.request.duration"]}  # fmt: skip
    plan = "/partner/accounts/{encoded_account_id}/plan"
    assert durations == {("POST", "/partner/accounts", 201): 2, ("GET", plan, 429): 1, ("GET", plan, 200): 1}
    for labels, _ in points["http.client.request.duration"]:
        assert {"server.address", "server.port"} <= labels.keys()
    assert points["ctct.client.retries"] == [
        ({"ctct.operation": "get_plan", "error.type": "ThrottledError"}, 1)
    ]
    assert points["ctct.client.throttles"] == [
        ({"ctct.operation": "get_plan", "ctct.throttle.reason": "throttled"}, 1)
    ]
    rows_by_state = {a["ctct.row.state"]: n for a, n in points["ctct.bulk.rows"]}
    assert rows_by_state == {"created": 2, "invalid": 1}
    assert {a["ctct.job"] for a, _ in points["ctct.bulk.rows"]} == {"provision"}


async def test_uninstrument_stops_it(otel: Otel, wire: WireServer) -> None:
    async with PartnerClient(api_key="k", token_provider=_jwt, base_url=wire.url + "/v3",
                             rate_limit=None) as client:  # fmt: skip
        otel.instrument(client)
        await client.webhooks.list()
        uninstrument(client)
        await client.webhooks.list()
    assert len(otel.named("ctct.list_webhooks")) == 1
    assert "traceparent" not in {k.lower() for k in wire.last.headers}


def test_instrument_checks_its_arguments() -> None:
    with pytest.raises(
        errors.ValidationError, match="client: must be a PartnerClient or LegacyBillingClient"
    ):
        instrument(object())  # type: ignore[arg-type]
    client = PartnerClient(api_key="k", token_provider=_jwt, base_url="http://127.0.0.1:9/v3")
    with pytest.raises(errors.ValidationError, match="propagate: must be True or False"):
        instrument(client, propagate="yes")  # type: ignore[arg-type]


async def test_with_no_sdk_configured_it_costs_nothing_but_works(wire: WireServer) -> None:
    """OpenTelemetry's global providers (no SDK here): no-op spans, and the calls go through."""
    async with PartnerClient(api_key="k", token_provider=_jwt, base_url=wire.url + "/v3",
                             rate_limit=None) as client:  # fmt: skip
        instrument(client)
        await client.webhooks.list()
    assert wire.requests


async def test_a_chaos_run_exports_no_secret(otel: Otel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Faults of every kind, revoked tokens, a bulk job with passwords, plan changes, cancellations and the
    v2 client: the exported spans and metrics hold no credential, password, id or query string."""
    issued: list[str] = []
    issue = TokenIssuer.issue

    def recording(self: TokenIssuer, client_id: str, now: float, ttl: float) -> str:
        token = issue(self, client_id, now, ttl)
        issued.append(token)
        return token

    monkeypatch.setattr(TokenIssuer, "issue", recording)
    faults = Faults(create_503=0.1, throttle_429=0.1, drop_after_commit=0.1, error_500=0.05, error_502=0.05,
                    deferred_delay=0.0)  # fmt: skip
    config = SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0, faults=faults, seed=17)
    async with run_sandbox(config) as sb:
        cfg = sb.sandbox.config
        async with client_for(sb, FakeClock(autojump=True)) as client:
            otel.instrument(client)
            rows = [attrs.asdict(account(i)) for i in range(40)]
            outcomes = [o async for o in client.bulk.create_accounts(rows, pending_wait=5.0)]
            sb.sandbox.revoke_tokens()
            ids = [o.encoded_account_id for o in outcomes if o.encoded_account_id]
            changes = [{"encoded_account_id": i, "plan_type": "GOLD"} for i in ids[:10]]
            _ = [o async for o in client.bulk.change_plans(changes)]
            _ = [
                o async for o in client.bulk.cancel_accounts([{"encoded_account_id": i} for i in ids[10:15]])
            ]
            await client.webhooks.subscribe(1, "https://hooks.example/ctct")
            await client.accounts.reconciler.refresh(full=True)
            assert len([a async for a in client.accounts.list(page_size=10)]) >= 30  # next links, offsets
        async with LegacyBillingClient(username=cfg.client_id, password=cfg.client_secret, api_key=cfg.api_key,
                                       base_url=sb.legacy_url, rate_limit=None) as v2:  # fmt: skip
            otel.instrument(v2)
            for account_id in ids[15:20]:
                await v2.get_plan(account_id)
    exported = otel.export()
    assert len(ids) >= 30 and len(issued) >= 2
    assert len(otel.named("ctct.create_account")) >= 40
    assert otel.named("ctct.token_renewal")
    assert len(otel.named("ctct.list_accounts")) >= 4  # pages read by their next links
    secrets = [cfg.api_key, cfg.client_secret, PASSWORD, *issued, *ids, "hooks.example"]
    leaked = [s for s in secrets if s in exported]
    assert leaked == []
    for span in otel.finished():
        assert "?" not in span.name and "=" not in span.name
        for value in attributes(span).values():
            assert not (isinstance(value, str) and ("?" in value or "api_key" in value))
    assert "offset=" not in exported and "api_key=" not in exported


def test_the_rest_of_the_sdk_never_imports_opentelemetry() -> None:
    """Without ``ctct_partner_async.telemetry``, no module of the package imports OpenTelemetry."""
    code = (
        "import sys, pkgutil, importlib, ctct_partner_async\n"
        "for m in pkgutil.walk_packages(ctct_partner_async.__path__, 'ctct_partner_async.'):\n"
        "    if m.name != 'ctct_partner_async.telemetry' and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(n for n in sys.modules if n.startswith('opentelemetry'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert json.loads(done.stdout) == []


async def test_logs_carry_their_fields_in_extra(caplog: pytest.LogCaptureFixture, wire: WireServer) -> None:
    """A retry's line and a bulk job's summary: the structured fields are on the record."""
    caplog.set_level(logging.INFO, logger="ctct_partner_async")
    async with PartnerClient(api_key="k", token_provider=_jwt, base_url=wire.url + "/v3", rate_limit=None,
                             clock=FakeClock(autojump=True)) as client:  # fmt: skip
        wire.reply(503)
        await client.webhooks.list()
        rows = [{"encoded_account_id": "a07e1my9tbw0", "plan_type": "GOLD"}, {"encoded_account_id": ""}]
        _ = [o async for o in client.bulk.change_plans(rows)]
    (retry,) = [r for r in caplog.records if r.name == "ctct_partner_async"]
    assert (retry.operation, retry.method, retry.attempt, retry.error_type) == (  # type: ignore[attr-defined]
        "list_webhooks",
        "GET",
        1,
        "ServiceUnavailableError",
    )
    assert "?" not in retry.url  # type: ignore[attr-defined]
    (summary,) = [r for r in caplog.records if r.name == "ctct_partner_async.bulk"]
    assert summary.levelno == logging.WARNING  # a row was invalid
    assert summary.job == "plans" and summary.rows == 2 and summary.finished  # type: ignore[attr-defined]
    assert summary.states == {"updated": 1, "invalid": 1}  # type: ignore[attr-defined]
    assert summary.getMessage().startswith("plans job done: 2 rows in ")


class _Raising(SimpleSpanProcessor):
    """A span processor that fails: telemetry must never fail the request with it."""

    def __init__(self, where: str) -> None:
        super().__init__(InMemorySpanExporter())
        self.where = where

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.where == "start":
            raise RuntimeError("processor broke on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "end":
            raise RuntimeError("processor broke on end")


@pytest.mark.parametrize("where", ["start", "end"])
async def test_failing_telemetry_never_fails_a_request(
    where: str, sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span processor that raises (on every span's start, or end): the create is still created, once,
    and the failure is one WARNING on ``ctct_partner_async.telemetry`` (once per kind and process)."""
    monkeypatch.setattr(telemetry, "_complained", set())
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(_Raising(where))
    reader = InMemoryMetricReader()
    async with client_for(sandbox, FakeClock(autojump=True)) as client:
        instrument(
            client, tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
        )
        result = await client.accounts.create(account(3))
        assert await client.accounts.reconciler.refresh(full=True) == 1  # a sweep's span fails too
    assert result.status.value == "created"
    assert len(sandbox.sandbox.accounts()) == 1
    warnings = [r for r in caplog.records if r.name == "ctct_partner_async.telemetry"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert "RuntimeError" in warnings[0].getMessage()
    data = reader.get_metrics_data()  # the metrics are still measured
    assert data is not None
    names = {m.name for r in data.resource_metrics for sc in r.scope_metrics for m in sc.metrics}
    assert {"http.client.request.duration", "ctct.token.renewals", "ctct.client.rate_limit.wait"} <= names


async def test_hook_urls_never_carry_a_query(wire: WireServer) -> None:
    """A retried next page of the account list: the retry's details show its URL without the offset."""
    seen: list[str] = []
    async with PartnerClient(api_key="k", token_provider=_jwt, base_url=wire.url + "/v3", rate_limit=None,
                             clock=FakeClock(autojump=True), on_retry=lambda d: seen.append(d.url),
                             on_request=lambda d: seen.append(d.url)) as client:  # fmt: skip
        wire.reply(503)
        await client.send(Request("GET", "/v3/partner/accounts?offset=abc&limit=50", "list_accounts"))
    assert len(seen) == 3 and all(u.endswith("/v3/partner/accounts") for u in seen)


async def test_creates_sharing_a_sweep_each_point_at_it(otel: Otel) -> None:
    """Six creates at once, every connection dropped after the commit: one sweep serves them all; it sits
    under the create that started it, and every other create links to it."""
    faults = Faults(drop_after_commit=1.0, fault_operations=("create_account",))
    config = SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0, faults=faults)
    async with run_sandbox(config) as sb, client_for(sb, FakeClock(autojump=True)) as client:
        otel.instrument(client)
        results = await asyncio.gather(*(client.accounts.create(account(i)) for i in range(6)))
    assert {r.status.value for r in results} == {"reconciled"}
    sweep_ids = {_id(s) for s in otel.named("ctct.account_list_sweep")}
    assert sweep_ids
    linking = 0
    for create in otel.named("ctct.create_account"):
        children = {_id(s) for s in otel.children(create)}
        linked = {link.context.span_id for link in create.links}
        assert (children | linked) & sweep_ids, "a create that waited on a sweep names it"
        linking += bool(linked & sweep_ids)
    assert linking >= 1  # creates that waited on a sweep another one started
    for sweep in otel.named("ctct.account_list_sweep"):
        assert sweep.end_time is not None and attributes(sweep)["ctct.sweep.complete"]


async def test_a_method_the_conventions_do_not_know_is_other(otel: Otel, wire: WireServer) -> None:
    """A user-built request: its method upper-cased; one the HTTP conventions don't list is ``_OTHER``,
    and a request without a template is named by its method alone (``HTTP`` for ``_OTHER``)."""
    async with PartnerClient(api_key="k", token_provider=_jwt, base_url=wire.url + "/v3",
                             rate_limit=None) as client:  # fmt: skip
        otel.instrument(client)
        await client.send(Request("get", "partner/webhooks/subscriptions", "list_webhooks"))
        await client.send(Request("PURGE", "partner/custom/a07e1my9tbw0", "my_purge"))
    assert [s.name for s in otel.finished() if s.kind is SpanKind.CLIENT] == [
        "GET /partner/webhooks/subscriptions",
        "HTTP",
    ]
    (purge,) = otel.named("HTTP")
    assert attributes(purge)["http.request.method"] == "_OTHER"
    assert "url.template" not in attributes(purge)
    assert wire.requests[-1].method == "PURGE"  # what is sent is the request's own


async def test_a_spent_quota_is_counted_as_quota_exceeded(otel: Otel) -> None:
    config = SandboxConfig(rate_limit=0, daily_quota=1, token_rate_limit=0)
    async with run_sandbox(config) as sb, client_for(sb, FakeClock(autojump=True)) as client:
        otel.instrument(client)
        await client.webhooks.list()
        with pytest.raises(errors.QuotaExceededError):
            await client.webhooks.list()
    assert otel.points()["ctct.client.throttles"] == [
        ({"ctct.operation": "list_webhooks", "ctct.throttle.reason": "quota_exceeded"}, 1)
    ]
    assert "ctct.client.retries" not in otel.points()  # a spent quota is never retried
