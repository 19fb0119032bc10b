"""Bulk jobs against the sandbox: streaming, bounded concurrency, bad rows, failures, journal resume."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ctct_partner_async import NewAccount, PartnerClient
from ctct_partner_async import _errors as errors
from ctct_partner_async._auth import TokenRefresh
from ctct_partner_async._bulk import Outcome, OutcomeState
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._protocol import Request, Response
from ctct_partner_async.journal import Journal
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox
from ctct_partner_async.sources import read_rows
from ctct_partner_async.testing import MockTransport

from .test_resilience import client_for


def row(i: int, **changes: Any) -> dict[str, Any]:
    base = {"contact_email": f"owner{i}@example.com", "login_name": f"bulk_{i:06d}", "password": "s3cret-pass",
            "country_code": "US", "state_code": "MA", "organization_name": f"Org {i}"}  # fmt: skip
    return {**base, **changes}


async def collect(outcomes: AsyncIterator[Outcome]) -> list[Outcome]:
    return [o async for o in outcomes]


def account_ids(outcomes: list[Outcome]) -> list[str]:
    """The account ids of ``outcomes``, each of which must have one."""
    ids = [o.encoded_account_id for o in outcomes]
    assert all(i is not None for i in ids)
    return [i for i in ids if i is not None]


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[SandboxHandle, FakeClock]]:
    clock = FakeClock(autojump=True)
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, clock=clock.time, seed=7)) as sb:
        yield sb, clock


@pytest.fixture
async def client(sandbox: tuple[SandboxHandle, FakeClock]) -> AsyncIterator[PartnerClient]:
    sb, clock = sandbox
    async with client_for(sb, clock, rate_limit=None) as c:
        yield c


async def test_streams_lazily_with_bounded_concurrency(client: PartnerClient) -> None:
    """Rows are pulled only as capacity frees up, and every row yields exactly one outcome."""
    pulled = 0
    yielded = 0
    lead: list[int] = []

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(300):
            pulled += 1
            lead.append(pulled - yielded)
            yield row(i)

    async for outcome in client.bulk.create_accounts(rows(), concurrency=8):
        yielded += 1
        assert outcome.state is OutcomeState.CREATED
    assert yielded == 300
    assert max(lead) <= 8 + 1


async def test_async_iterable_input(client: PartnerClient) -> None:
    """An async iterable of NewAccount models works like a list of rows."""

    async def rows() -> AsyncIterator[NewAccount]:
        for i in range(20):
            yield NewAccount(contact_email=f"a{i}@example.com", login_name=f"async_{i:04d}", password="s3cret-pass",
                             country_code="GB")  # fmt: skip

    outcomes = await collect(client.bulk.create_accounts(rows()))
    assert sorted(o.index for o in outcomes) == list(range(1, 21))
    assert all(o.ok and o.encoded_account_id for o in outcomes)


BAD_ROWS: list[tuple[str, dict[str, Any] | str, str]] = [
    ("missing login_name", row(1, login_name=""), "login_name: is required"),
    ("missing contact_email", row(2, contact_email=""), "contact_email: is required"),
    ("missing country_code", row(3, country_code=""), "country_code: is required"),
    ("bad email", row(4, contact_email="not-an-email"), "contact_email: must be an email address"),
    ("login name with a space", row(5, login_name="bad name 5"), "login_name: must be 6 to 50"),
    ("login name too short", row(6, login_name="ab"), "login_name: must be 6 to 50"),
    ("login name bad character", row(7, login_name="bad!name7"), "login_name: must be 6 to 50"),
    ("password with a space", row(8, password="has a space"), "password: must not contain spaces"),
    ("password too short", row(9, password="short"), "password: must be 8 to 80 characters"),
    ("no password and no external auth", row(10, password=""), "password: is required unless"),
    ("US without state", row(11, state_code=""), "state_code: is required when country_code is US"),
    ("CA with a US state", row(12, country_code="CA", state_code="MA"), "state_code: must be a CA state"),
    ("bad website scheme", row(13, website="ftp://x.example"), "website: must start with http:// or https://"),
    ("bad billing locale", row(14, billing_locale="fr_FR"), "billing_locale: must be en_US or en_GB"),
    ("bad boolean", row(15, gdpr_opt_out="maybe"), "gdpr_opt_out: must be true or false"),
    ("organization name too long", row(16, organization_name="x" * 51), "organization_name: must be 1 to 50"),
    ("duplicate login name in the file", row(0, contact_email="dup@example.com"), "duplicate of row 1"),
    ("too few fields", "short_row", "fields, the header has"),
    ("malformed quoting", 'bad"quote', "malformed CSV"),
    ("phone too short", row(19, contact_phone="12"), "contact_phone: must be 5 to 25 characters"),
]  # fmt: skip
COLUMNS = [*row(0), "website", "billing_locale", "gdpr_opt_out", "contact_phone"]


def write_csv(path: Path, items: list[dict[str, Any] | str]) -> None:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in items:
        if item == "short_row":
            out.write("only,three,fields\n")
        elif item == 'bad"quote':
            out.write('x@example.com,"bad"quote,s3cret-pass,US,MA,Org,,,,\n')
        else:
            writer.writerow(item)  # type: ignore[arg-type]
    path.write_text(out.getvalue())


async def test_twenty_kinds_of_bad_rows(client: PartnerClient, sandbox: tuple[SandboxHandle, FakeClock],
                                        tmp_path: Path) -> None:  # fmt: skip
    """Each bad row is reported invalid with a clear reason, nothing is sent for it, every good row is done."""
    sb, _ = sandbox
    good = [row(i) for i in range(100, 140)]
    items: list[dict[str, Any] | str] = [row(0)]
    for (_, bad, _), extra in zip(BAD_ROWS, good[:20], strict=True):
        items += [bad, extra]
    items += good[20:]
    path = tmp_path / "accounts.csv"
    write_csv(path, items)
    outcomes = await collect(client.bulk.create_accounts(read_rows(path)))
    invalid = sorted((o for o in outcomes if o.state is OutcomeState.INVALID), key=lambda o: o.index)
    assert [
        o.error is not None and expected in o.error
        for (_, _, expected), o in zip(BAD_ROWS, invalid, strict=True)
    ] == [True] * 20
    assert Counter(o.state for o in outcomes) == {OutcomeState.CREATED: 41, OutcomeState.INVALID: 20}
    assert len(sb.sandbox.accounts()) == 41
    assert sb.sandbox.stats()["creates_attempted"] == 41


async def test_failures_do_not_stop_the_job(client: PartnerClient) -> None:
    """Plan changes for unknown accounts fail; the others are updated; bad plan rows are invalid."""
    created = await collect(client.bulk.create_accounts(row(i) for i in range(10)))
    ids = account_ids(created)
    rows = [{"encoded_account_id": i, "plan_type": "GOLD", "billing_day_of_month": "15"} for i in ids]
    rows += [{"encoded_account_id": "nosuchacct1", "plan_type": "GOLD"},
             {"encoded_account_id": ids[0] + "x", "plan_type": "PLATINUM"},
             {"encoded_account_id": "acct2", "plan_type": "SILVER", "billing_day_of_month": "40"}]  # fmt: skip
    outcomes = await collect(client.bulk.change_plans(rows))
    states = Counter(o.state for o in outcomes)
    assert states == {OutcomeState.UPDATED: 10, OutcomeState.FAILED: 1, OutcomeState.INVALID: 2}
    failed = next(o for o in outcomes if o.state is OutcomeState.FAILED)
    assert failed.key == "nosuchacct1"
    assert "404" in (failed.error or "")
    plan = await client.accounts.get_plan(ids[3])
    assert (plan.plan_type, plan.billing_status, plan.billing_day_of_month) == ("GOLD", "Open", 15)


async def test_cancel_job(client: PartnerClient) -> None:
    """Cancel rows cancel accounts; a bad reason code or a naive date is invalid."""
    created = await collect(client.bulk.create_accounts(row(i) for i in range(5)))
    ids = account_ids(created)
    rows = [
        {"encoded_account_id": i, "reason_id": "1", "effective_date": "2026-12-01T00:00:00Z"} for i in ids[:3]
    ]
    rows += [
        {"encoded_account_id": ids[3], "reason_id": "99"},
        {"encoded_account_id": ids[4], "effective_date": "2026-12-01"},
    ]
    outcomes = await collect(client.bulk.cancel_accounts(rows))
    assert Counter(o.state for o in outcomes) == {OutcomeState.CANCELED: 3, OutcomeState.INVALID: 2}
    assert (await client.accounts.get_plan(ids[0])).billing_status == "Canceled"
    assert (await client.accounts.get_plan(ids[3])).billing_status == "Trial"


async def test_pending_creates_are_resolved_at_the_end(sandbox: tuple[SandboxHandle, FakeClock]) -> None:
    """Deferred (503) creates are reported once the account shows up, as created with deferred=True."""
    sb, clock = sandbox
    sb.sandbox.faults.update({"create_503": 0.3, "fault_operations": ["create_account"]})
    async with client_for(sb, clock, rate_limit=None) as client:
        outcomes = await collect(client.bulk.create_accounts(row(i) for i in range(60)))
    held = {a["login_name"]: a["encoded_account_id"] for a in sb.sandbox.accounts()}
    assert {o.key: o.encoded_account_id for o in outcomes} == held
    assert len(held) == 60
    assert sum(o.deferred for o in outcomes) > 5
    assert all(o.state is OutcomeState.CREATED for o in outcomes if o.deferred)


async def test_journal_resume_after_a_crash(sandbox: tuple[SandboxHandle, FakeClock], tmp_path: Path) -> None:
    """A job stopped mid-way (with drops after commit) and run again with its journal ends with exactly
    one account per row, skips finished rows and reconciles the ones that were sent."""
    sb, clock = sandbox
    sb.sandbox.faults.update({"drop_after_commit": 0.05, "fault_operations": ["create_account"]})
    path = tmp_path / "job.sqlite"
    rows = [row(i) for i in range(200)]
    async with client_for(sb, clock, rate_limit=None) as client:
        with Journal(path, job="provision") as journal:
            seen = 0
            async with contextlib.aclosing(
                client.bulk.create_accounts(rows, journal=journal, concurrency=32)
            ) as run:
                async for _ in run:
                    seen += 1
                    if seen == 80:
                        break  # the crash: the rows in flight are cancelled mid-request
            in_flight = journal.counts().get("sent", 0)
        assert in_flight > 0
        with Journal(path, job="provision") as journal:
            outcomes = await collect(client.bulk.create_accounts(rows, journal=journal, concurrency=32))
            entries = journal.entries()
    states = Counter(o.state for o in outcomes)
    held = {a["login_name"]: a["encoded_account_id"] for a in sb.sandbox.accounts()}
    assert len(held) == 200
    assert states[OutcomeState.SKIPPED] >= 80
    assert all(o.ok for o in outcomes)
    assert {o.key: o.encoded_account_id for o in outcomes} == held
    assert {e.key: e.account_id for e in entries} == held
    assert "s3cret-pass" not in path.read_bytes().decode("utf-8", "replace")


async def test_bugs_and_cancellation_propagate(client: PartnerClient) -> None:
    """An exception from the input (a bug) propagates; cancelling the consumer cancels the job."""

    def broken() -> Iterator[dict[str, Any]]:
        yield row(1)
        raise RuntimeError("bug in the row source")

    with pytest.raises(RuntimeError, match="bug in the row source"):
        await collect(client.bulk.create_accounts(broken()))

    async def forever() -> AsyncIterator[dict[str, Any]]:
        i = 0
        while True:
            i += 1
            yield row(1000 + i)

    created = 0

    async def consume() -> None:
        nonlocal created
        async for _ in client.bulk.create_accounts(forever(), concurrency=4):
            created += 1

    task = asyncio.create_task(consume())
    while created < 10:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert [t for t in leftover if "bulk" in repr(t.get_coro())] == []


async def test_spent_quota_stops_sending() -> None:
    """Once the daily quota is spent, no later row is sent: each is reported failed with that error."""
    clock = FakeClock(autojump=True)
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=15, clock=clock.time)) as limited:
        async with client_for(limited, clock, rate_limit=None) as client:
            outcomes = await collect(client.bulk.create_accounts((row(i) for i in range(50)), concurrency=1))
            sent = limited.sandbox.stats()["api_requests"]
    states = Counter(o.state for o in outcomes)
    assert states == {OutcomeState.CREATED: 15, OutcomeState.FAILED: 35}
    assert sent == 16  # 15 creates and the one answered quota_exceeded
    assert all("quota" in (o.error or "") for o in outcomes if o.state is OutcomeState.FAILED)


async def test_refused_credentials_stop_the_job() -> None:
    """A token endpoint that refuses the client credentials stops the job: no row is sent, each is
    reported failed with CredentialsRefusedError, and the endpoint is asked at most once a second."""
    clock = FakeClock(autojump=True)
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, clock=clock.time)) as sb:
        cfg = sb.sandbox.config
        async with PartnerClient(api_key=cfg.api_key, client_id=cfg.client_id, client_secret="wrong-secret",
                                 base_url=sb.base_url, token_url=sb.token_url, clock=clock) as client:  # fmt: skip
            outcomes = await collect(client.bulk.create_accounts((row(i) for i in range(30)), concurrency=4))
        stats = sb.sandbox.stats()
    assert Counter(o.state for o in outcomes) == {OutcomeState.FAILED: 30}
    assert all(isinstance(o.exception, errors.CredentialsRefusedError) for o in outcomes)
    assert stats["api_requests"] == 0 and stats["token_requests"] == 1


async def test_a_token_outage_longer_than_the_retry_deadline_pauses_the_job() -> None:
    """The token endpoint is down for 10 minutes (five retry deadlines): no row fails, every row is
    created once after it comes back, and the endpoint is never asked twice within a second."""
    clock = FakeClock(autojump=True)
    events: list[TokenRefresh] = []
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, clock=clock.time)) as sb:
        sb.sandbox.faults.token_outage = True
        start = clock.monotonic()

        def note(detail: TokenRefresh) -> None:
            events.append(detail)
            if clock.monotonic() - start > 600:
                sb.sandbox.faults.token_outage = False

        async with client_for(sb, clock, rate_limit=None, on_token_refresh=note) as client:
            outcomes = await collect(client.bulk.create_accounts((row(i) for i in range(20)), concurrency=4))
        stats = sb.sandbox.stats()
        times = [float(e["time"]) for e in sb.sandbox.request_log() if e["operation"] == "token"]  # type: ignore[arg-type]
    assert Counter(o.state for o in outcomes) == {OutcomeState.CREATED: 20}
    assert stats["api_requests"] == 20 and stats["accounts"] == 20
    token_statuses = stats["token_responses_by_status"]
    assert isinstance(token_statuses, dict) and token_statuses["200"] == 1
    assert clock.monotonic() - start > 600
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 1.0  # 10 min: 5 caller deadlines


class FlakyTokens:
    """A token provider whose ``fail_on``-th call finds the token endpoint down; ``calls`` counts them."""

    def __init__(self, fail_on: int) -> None:
        self.fail_on = fail_on
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls == self.fail_on:
            raise errors.TokenUnavailableError("token endpoint down")
        return "header.payload.signature"


async def test_a_row_sent_before_the_token_went_away_is_done_again_as_previously_attempted() -> None:
    """A create whose first answer was lost (it landed), whose retry then found no token: the row waits
    for the token and is done again as a rerun would, so the 409 is reconciled, never a second account."""
    clock = FakeClock(autojump=True)
    served: Counter[str] = Counter()
    tokens = FlakyTokens(fail_on=2)

    async def handle(request: Request) -> Response:
        served[request.method] += 1
        if request.method == "POST" and served["POST"] == 1:
            raise errors.ResponseError("connection dropped", method="POST", url=request.url)
        if request.method == "POST":
            return Response.from_json(409, {"error_key": "conflict"})
        listed = {
            "encoded_account_id": "acct0001",
            "site_owner_name": "bulk_000001",
            "organization_name": "Org 1",
        }
        return Response.from_json(200, {"site_owner_list": [listed]})

    async with PartnerClient(api_key="k", token_provider=tokens, transport=MockTransport(handle), clock=clock,
                             rate_limit=None, on_retry=None) as client:  # fmt: skip
        outcomes = await collect(client.bulk.create_accounts([row(1)]))
    assert [(o.state, o.encoded_account_id) for o in outcomes] == [(OutcomeState.RECONCILED, "acct0001")]
    assert served["POST"] == 2 and tokens.calls >= 3


async def test_a_token_outage_longer_than_max_pause_stops_the_job() -> None:
    """A token endpoint that never comes back: after max_pause (300 s) without a token the job stops as on
    a spent quota: no row sent, each reported failed naming the pause, and the job ends."""
    clock = FakeClock(autojump=True)
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, clock=clock.time)) as sb:
        sb.sandbox.faults.token_outage = True
        start = clock.monotonic()
        async with client_for(sb, clock, rate_limit=None, on_token_refresh=None) as client:
            rows = (row(i) for i in range(10))
            outcomes = await collect(client.bulk.create_accounts(rows, concurrency=3, max_pause=300))
        stats = sb.sandbox.stats()
    assert Counter(o.state for o in outcomes) == {OutcomeState.FAILED: 10}
    assert stats["api_requests"] == 0
    assert all(isinstance(o.exception, errors.TokenUnavailableError) for o in outcomes)
    assert any("gave no token for 300 s" in (o.error or "") for o in outcomes)
    assert clock.monotonic() - start >= 300  # (an autojump clock adds up concurrent sleeps: no upper bound)


async def test_a_paused_row_is_not_sent_once_the_job_has_stopped() -> None:
    """Row 1 waits for a token while row 2 spends the quota: row 1 is then reported not sent, never POSTed."""
    clock = FakeClock()
    served: Counter[str] = Counter()
    tokens = FlakyTokens(fail_on=1)

    async def handle(request: Request) -> Response:
        served[request.method] += 1
        return Response.from_json(429, [{"error_key": "quota_exceeded", "error_message": "Daily quota"}])

    async with PartnerClient(api_key="k", token_provider=tokens, transport=MockTransport(handle), clock=clock,
                             rate_limit=None, on_retry=None) as client:  # fmt: skip
        outcomes: list[Outcome] = []

        async def consume() -> None:
            async for outcome in client.bulk.create_accounts([row(1), row(2)], concurrency=2):
                outcomes.append(outcome)  # noqa: PERF401 (each as it comes)

        job = asyncio.create_task(consume())
        while not outcomes:
            await asyncio.sleep(0)
        clock.advance(1)  # row 1's pause ends
        await job
    assert served["POST"] == 1
    states = {o.index: (o.state, o.exception) for o in outcomes}
    assert states[2][0] is OutcomeState.FAILED and isinstance(states[2][1], errors.QuotaExceededError)
    assert states[1][0] is OutcomeState.FAILED
