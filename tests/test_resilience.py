"""Resilience against the sandbox: no duplicate and no lost account under faults, limits respected."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ctct_partner_async import NewAccount, PartnerClient
from ctct_partner_async import _errors as errors
from ctct_partner_async._auth import TokenSettings
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._hooks import ResponseDetails
from ctct_partner_async._models import CreateStatus
from ctct_partner_async._policy import RetryPolicy
from ctct_partner_async.sandbox import Faults, SandboxConfig, SandboxHandle, run_sandbox


def account(i: int) -> NewAccount:
    return NewAccount(contact_email=f"owner{i}@example.com", login_name=f"client_{i:05d}", password="s3cret-pass",
                      country_code="US", state_code="MA", organization_name=f"Org {i}")  # fmt: skip


def client_for(sb: SandboxHandle, clock: FakeClock, **options: object) -> PartnerClient:
    cfg = sb.sandbox.config
    return PartnerClient(api_key=cfg.api_key, client_id=cfg.client_id, client_secret=cfg.client_secret,
                         base_url=sb.base_url, token_url=sb.token_url, clock=clock, **options)  # type: ignore[arg-type]  # fmt: skip


@contextlib.asynccontextmanager
async def ticking(clock: FakeClock, step: float = 0.002) -> AsyncIterator[None]:
    """Move the fake clock ``step`` seconds every turn of the event loop: compressed real time."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(0)
            clock.advance(step)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_creates_under_faults_never_duplicate_or_lose() -> None:
    """2,000 creates with deferred 503s, throttles, drops after commit and 500s: exactly 2,000 accounts,
    every call created, reconciled or pending-then-resolved with the id the sandbox holds."""
    clock = FakeClock(autojump=True)
    faults = Faults(create_503=0.10, throttle_429=0.05, drop_after_commit=0.03, error_500=0.02,
                    deferred_delay=2.0, fault_operations=("create_account",))  # fmt: skip
    config = SandboxConfig(rate_limit=0, daily_quota=0, seed=1234, faults=faults, clock=clock.time)
    async with (
        run_sandbox(config) as sb,
        client_for(sb, clock, rate_limit=None, max_concurrency=64) as client,
    ):
        results = await asyncio.gather(*(client.accounts.create(account(i)) for i in range(2000)))
        statuses = Counter(r.status for r in results)
        resolved = await asyncio.gather(*(client.accounts.resolve(r, wait=30.0) for r in results))
        held = {a["login_name"]: a["encoded_account_id"] for a in sb.sandbox.accounts()}
        stats = sb.sandbox.stats()
    assert len(held) == 2000
    assert all(r.done for r in resolved)
    assert {r.login_name: r.encoded_account_id for r in resolved} == held
    # every fault kind really happened, and each was absorbed the way it should be
    assert statuses[CreateStatus.PENDING] > 100
    assert statuses[CreateStatus.RECONCILED] > 20
    assert statuses[CreateStatus.CREATED] > 1500
    assert sum(r.deferred for r in resolved) == statuses[CreateStatus.PENDING]
    assert client.retries > 100
    assert isinstance(stats["api_requests"], int) and stats["api_requests"] > 2000


async def test_rate_limited_creates_rarely_meet_429() -> None:
    """Sandbox at 100/s, 500 creates at concurrency 64 through a client limited to 100/s: < 1% are 429."""
    clock = FakeClock()
    statuses: Counter[int | None] = Counter()

    def count(details: ResponseDetails) -> None:
        statuses[details.status] += 1

    config = SandboxConfig(rate_limit=100, daily_quota=0, token_rate_limit=0, clock=clock.time)
    async with run_sandbox(config) as sb, client_for(sb, clock, rate_limit=100, max_concurrency=64,
                                                     on_response=count) as client:  # fmt: skip
        async with ticking(clock):
            started = clock.monotonic()
            results = await asyncio.gather(*(client.accounts.create(account(i)) for i in range(500)))
            elapsed = clock.monotonic() - started
    assert all(r.status is CreateStatus.CREATED for r in results)
    total = sum(statuses.values())
    assert statuses[201] == 500
    assert statuses[429] / total < 0.01
    assert elapsed >= 500 / 100 - 0.1  # the limiter really paced them (by the shared clock)


async def test_quota_exceeded_raised_at_once() -> None:
    """quota_exceeded is raised on the first answer, with the reset time, and never retried."""
    clock = FakeClock(autojump=True)
    config = SandboxConfig(rate_limit=0, daily_quota=3, clock=clock.time)
    async with run_sandbox(config) as sb, client_for(sb, clock, rate_limit=None) as client:
        for i in range(3):
            await client.accounts.create(account(i))
        before = sb.sandbox.stats()["api_requests"]
        with pytest.raises(errors.QuotaExceededError) as info:
            await client.accounts.create(account(99))
        after = sb.sandbox.stats()["api_requests"]
    assert isinstance(before, int) and isinstance(after, int)
    assert after - before == 1
    assert info.value.reset_at.hour == 0
    assert client.retries == 0


async def test_real_conflict_is_reported() -> None:
    """A 409 with no earlier ambiguous attempt is a real conflict: ConflictError, not reconciled."""
    clock = FakeClock(autojump=True)
    async with (
        run_sandbox(SandboxConfig(rate_limit=0, clock=clock.time)) as sb,
        client_for(sb, clock) as client,
    ):
        await client.accounts.create(account(7))
        with pytest.raises(errors.ConflictError):
            await client.accounts.create(account(7))
        assert len(sb.sandbox.accounts()) == 1


async def test_cancellation_during_backoff_leaves_nothing_behind() -> None:
    """Cancelling a call sleeping in backoff leaves no pending task and no open session."""
    clock = FakeClock()
    faults = Faults(error_500=1.0)
    async with run_sandbox(SandboxConfig(rate_limit=0, faults=faults, clock=clock.time)) as sb:
        client = client_for(sb, clock, rate_limit=None, token_settings=TokenSettings(first_request_jitter=0))
        task = asyncio.create_task(client.accounts.get_plan("abc123"))
        while clock.sleepers == 0:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()
        session = client._pipeline._owned._session if client._pipeline._owned else None
        assert session is not None and session.closed
        assert clock.sleepers == 0
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        assert [t for t in others if "ctct_partner_async" in repr(t.get_coro())] == []


async def test_ambiguous_failure_with_no_retries_left_is_reconciled() -> None:
    """A create whose only attempt was cut off after the commit is found in the list: reconciled, not failed."""
    clock = FakeClock(autojump=True)
    faults = Faults(drop_after_commit=1.0, fault_operations=("create_account",))
    async with run_sandbox(SandboxConfig(rate_limit=0, faults=faults, clock=clock.time)) as sb:
        async with client_for(sb, clock, rate_limit=None, retry_policy=RetryPolicy(max_attempts=1)) as client:
            result = await client.accounts.create(account(1))
        held = sb.sandbox.accounts()
    assert result.status is CreateStatus.RECONCILED
    assert [a["encoded_account_id"] for a in held] == [result.encoded_account_id]


async def test_unconfirmed_create_is_reported_and_reconciled_on_the_next_run(tmp_path: Path) -> None:
    """Retries run out after 504s (nothing committed): UnconfirmedCreateError, the journal keeps the row
    unsettled, and the next run creates it exactly once."""
    from ctct_partner_async._bulk import OutcomeState
    from ctct_partner_async.journal import Journal

    clock = FakeClock(autojump=True)
    faults = Faults(error_504=1.0, fault_operations=("create_account",))
    async with run_sandbox(SandboxConfig(rate_limit=0, faults=faults, clock=clock.time)) as sb:
        async with client_for(sb, clock, rate_limit=None, retry_policy=RetryPolicy(max_attempts=2)) as client:
            with pytest.raises(errors.UnconfirmedCreateError, match="previously_attempted=True"):
                await client.accounts.create(account(1))
            with Journal(tmp_path / "j.sqlite", job="provision") as journal:
                first = [o async for o in client.bulk.create_accounts([account(2)], journal=journal)]
                sb.sandbox.faults.update({"error_504": 0.0})
                second = [o async for o in client.bulk.create_accounts([account(2)], journal=journal)]
                entries = journal.entries()
        held = {a["login_name"]: a["encoded_account_id"] for a in sb.sandbox.accounts()}
    assert first[0].state is OutcomeState.UNSETTLED  # the account may exist: never "failed"
    assert "may have succeeded" in (first[0].error or "")
    assert second[0].state is OutcomeState.CREATED
    assert held == {"client_00002": second[0].encoded_account_id}
    assert [(e.key, e.state) for e in entries] == [("client_00002", "created")]


async def test_reconciliation_never_claims_another_organizations_account() -> None:
    """A 409 after an ambiguous attempt, for a login someone else holds under another organization, is a
    ConflictError: the other account is not reported as ours."""
    clock = FakeClock(autojump=True)
    faults = Faults(error_504=1.0, fault_operations=("create_account",))
    async with run_sandbox(SandboxConfig(rate_limit=0, faults=faults, clock=clock.time)) as sb:
        sb.sandbox.faults.update({"error_504": 0.0})
        sb.sandbox.seed_account("client_00001", organization_name="Somebody Else Inc")
        sb.sandbox.faults.update({"error_504": 1.0})
        calls = 0

        def flip(_: object) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:  # the first attempt gets a 504, the retry reaches the real conflict
                sb.sandbox.faults.update({"error_504": 0.0})

        async with client_for(sb, clock, rate_limit=None, on_response=flip) as client:
            with pytest.raises(errors.ConflictError):
                await client.accounts.create(account(1), reconcile_timeout=5.0)
        assert len(sb.sandbox.accounts()) == 1


async def test_default_retry_log_has_no_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """The default on_retry hook logs each retry, and no record holds the JWT, secret or API key."""
    clock = FakeClock(autojump=True)
    faults = Faults(error_500=0.5, fault_operations=("get_plan",))
    caplog.set_level(logging.DEBUG)
    async with run_sandbox(SandboxConfig(rate_limit=0, faults=faults, clock=clock.time, seed=5)) as sb:
        created_id = None
        async with client_for(sb, clock, rate_limit=None) as client:
            created_id = (await client.accounts.create(account(3))).encoded_account_id
            assert created_id is not None
            for _ in range(10):
                await client.accounts.get_plan(created_id)
            token = await client.token_provider.get_token()
    retries = [r for r in caplog.records if r.getMessage().startswith("retrying")]
    assert retries
    text = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    for secret in (token, "sandbox-secret", "sandbox-api-key", "s3cret-pass"):
        assert secret not in text
