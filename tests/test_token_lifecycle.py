"""The JWT lifecycle end to end: PartnerClient against the sandbox, both on one fake clock, tokens living
ten seconds. Nobody ever sees an expired token, and the token endpoint is never stampeded."""

from __future__ import annotations

import asyncio
import base64
import logging
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from ctct_partner_async import _errors as errors
from ctct_partner_async._auth import TokenRefresh, TokenSettings
from ctct_partner_async._client import PartnerClient
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._policy import RetryPolicy
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
API_KEY = "sandbox-api-key"
WRONG_SECRET = "wrong-secret-7f3a"
TTL = 10.0
SETTINGS = TokenSettings(advisory_window=4, mandatory_window=2, first_request_jitter=0)


@asynccontextmanager
async def sandbox_client(
    fake: FakeClock,
    events: list[TokenRefresh] | None = None,
    *,
    secret: str = CLIENT_SECRET,
    log_size: int = 10_000,
    retry_policy: RetryPolicy | None = None,
) -> AsyncIterator[tuple[SandboxHandle, PartnerClient]]:
    """A sandbox (no API rate limit; token endpoint limited to 1/s) and a client (no client-side rate
    limit), sharing ``fake``."""
    config = SandboxConfig(
        token_ttl=TTL, rate_limit=0, daily_quota=0, clock=fake.time, request_log_size=log_size
    )
    async with run_sandbox(config) as sb:
        client = PartnerClient(
            api_key=API_KEY, client_id=CLIENT_ID, client_secret=secret, base_url=sb.base_url,
            token_url=sb.token_url, token_settings=SETTINGS, clock=fake, rate_limit=None,
            on_token_refresh=events.append if events is not None else None, retry_policy=retry_policy,
        )  # fmt: skip
        try:
            yield sb, client
        finally:
            await client.aclose()


async def wave(client: PartnerClient, fake: FakeClock, calls: int, *, advance: float = 0.0) -> list[object]:
    """``calls`` concurrent API calls; the clock moves by ``advance`` while they are in flight."""
    running = asyncio.gather(*(client.webhooks.get(1) for _ in range(calls)), return_exceptions=True)
    if advance:
        await asyncio.sleep(0)
        fake.advance(advance)
    return list(await running)


async def driven_wave(client: PartnerClient, fake: FakeClock, calls: int, step: float = 0.05) -> list[object]:
    """``calls`` concurrent API calls; while they wait on the fake clock (a renewal's backoff), it moves on
    by ``step``, a millisecond of real time apart (for the loopback I/O)."""
    running = asyncio.gather(*(client.webhooks.get(1) for _ in range(calls)), return_exceptions=True)
    while not running.done():
        await asyncio.sleep(0.001)
        if fake.sleepers:
            fake.advance(step)
    return list(await running)


def failures(results: list[object]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


def token_times(sb: SandboxHandle) -> list[float]:
    """Sandbox-clock times of every token request, oldest first."""
    return [float(e["time"]) for e in sb.sandbox.request_log() if e["operation"] == "token"]  # type: ignore[arg-type]


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def jump_into(sb: SandboxHandle, fake: FakeClock, window: str) -> None:
    """Move the clock into the latest token's advisory or mandatory window (its expiry from the sandbox)."""
    expiry = int(token_times(sb)[-1] + TTL)
    target = expiry - (3.5 if window == "advisory" else 1.5)
    assert target > fake.time()
    fake.advance(target - fake.time())


async def test_ten_thousand_calls_over_three_rollovers() -> None:
    """10,000 concurrent calls over three rollovers: rollovers + 1 token requests, no failure, no 401."""
    fake = FakeClock()
    events: list[TokenRefresh] = []
    results: list[object] = []
    async with sandbox_client(fake, events, log_size=30_000) as (sb, client):
        for window in ("advisory", "mandatory", "advisory"):
            for _ in range(3):
                results += await wave(client, fake, 500, advance=0.5)
            jump_into(sb, fake, window)
            for _ in range(3):
                results += await wave(client, fake, 500, advance=0.5)
        results += await wave(client, fake, 1000, advance=0.5)
        stats = sb.sandbox.stats()
    assert len(results) == 10_000
    assert failures(results) == []
    assert stats["token_requests"] == stats["tokens_issued"] == 3 + 1
    assert stats["api_requests"] == 10_000
    assert stats["responses_by_status"] == {"200": 10_000}
    assert [(e.reason, e.outcome) for e in events] == [
        ("initial", "ok"), ("advisory", "ok"), ("mandatory", "ok"), ("advisory", "ok")
    ]  # fmt: skip


async def test_ten_thousand_calls_in_flight_at_once_across_three_rollovers() -> None:
    """10,000 calls started together; while they run, the clock crosses three rollovers (advisory,
    mandatory, advisory): exactly rollovers + 1 token requests, every call succeeds, no 401 reaches one."""
    fake = FakeClock()
    events: list[TokenRefresh] = []
    async with sandbox_client(fake, events, log_size=30_000) as (sb, client):
        done = 0

        async def call() -> object:
            nonlocal done
            try:
                return await client.webhooks.get(1)
            finally:
                done += 1

        running = asyncio.gather(*(call() for _ in range(10_000)), return_exceptions=True)
        while done == 0:
            await asyncio.sleep(0.001)
        for threshold, window in ((2_000, "advisory"), (4_500, "mandatory"), (7_000, "advisory")):
            while done < threshold:
                await asyncio.sleep(0.001)
            jump_into(sb, fake, window)
        results = list(await running)
        stats = sb.sandbox.stats()
    assert failures(results) == []
    assert stats["token_requests"] == stats["tokens_issued"] == 3 + 1
    assert stats["responses_by_status"] == {"200": 10_000}
    assert [e.reason for e in events] == ["initial", "advisory", "mandatory", "advisory"]


async def test_revoked_tokens_cause_one_renewal() -> None:
    """Every token revoked while 1,000 calls are in flight: one renewal, every call succeeds."""
    fake = FakeClock()
    events: list[TokenRefresh] = []
    async with sandbox_client(fake, events) as (sb, client):
        assert failures(await wave(client, fake, 1000)) == []
        fake.advance(1)
        before = sb.sandbox.stats()["api_requests"]
        running = asyncio.ensure_future(wave(client, fake, 1000))
        async with asyncio.timeout(10):
            while sb.sandbox.stats()["api_requests"] < before + 300:  # type: ignore[operator]
                await asyncio.sleep(0.001)
        assert sb.sandbox.revoke_tokens() == 1
        results = await running
        stats = sb.sandbox.stats()
    refused = stats["responses_by_status"].get("401", 0)  # type: ignore[attr-defined]
    assert failures(results) == []
    assert stats["token_requests"] == 2
    assert [e.reason for e in events] == ["initial", "unauthorized"]
    assert 0 < refused < 1000
    assert stats["api_requests"] == 2000 + refused


async def test_token_outage_over_the_advisory_window() -> None:
    """Token endpoint down for the whole advisory window: no call fails, at most one token request a second."""
    fake = FakeClock()
    events: list[TokenRefresh] = []
    results: list[object] = []
    async with sandbox_client(fake, events) as (sb, client):
        results += await wave(client, fake, 200)
        expiry = int(token_times(sb)[-1] + TTL)
        sb.sandbox.faults.token_outage = True
        fake.advance(expiry - SETTINGS.advisory_window - fake.time())
        while fake.time() < expiry - SETTINGS.mandatory_window:
            results += await wave(client, fake, 100)
            fake.advance(0.25)
        sb.sandbox.faults.token_outage = False
        for _ in range(8):  # into the mandatory window: callers may wait out the renewal's backoff
            results += await driven_wave(client, fake, 100)
            fake.advance(0.25)
        times, stats = token_times(sb), sb.sandbox.stats()
    assert failures(results) == []
    assert stats["responses_by_status"] == {"200": len(results)}
    assert stats["token_responses_by_status"] == {"200": 2, "503": 2}
    assert min(gaps(times)) >= 1.0
    assert [(e.reason, e.outcome) for e in events] == [
        ("initial", "ok"), ("advisory", "error"), ("advisory", "error"), ("mandatory", "ok")
    ]  # fmt: skip


async def test_wrong_secret_fails_fast_naming_the_token_url() -> None:
    """A wrong client secret: CredentialsRefusedError naming the token URL, at most one token request a second."""
    fake = FakeClock()
    async with sandbox_client(fake, secret=WRONG_SECRET) as (sb, client):
        raised: list[BaseException] = []
        for burst in range(12):
            raised += failures(await wave(client, fake, 1000 if burst == 0 else 200))
            fake.advance(0.25)
        times, stats = token_times(sb), sb.sandbox.stats()
    assert len(raised) == 1000 + 11 * 200
    assert {type(e) for e in raised} == {errors.CredentialsRefusedError}  # an AuthenticationError
    message = str(raised[0])
    assert sb.token_url in message and "HTTP 401 invalid_client" in message
    assert WRONG_SECRET not in message
    assert stats["token_requests"] == 3 and stats["api_requests"] == 0
    assert min(gaps(times)) >= 1.0


def exception_texts(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.__cause__)


async def test_no_secret_in_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    """The JWT, client secret and API key appear in no DEBUG log record, repr or exception text."""
    caplog.set_level(logging.DEBUG)
    fake = FakeClock()
    texts: list[str] = []
    jwts: list[str] = []
    async with sandbox_client(fake, retry_policy=RetryPolicy(deadline=0.5)) as (sb, client):
        await wave(client, fake, 50)
        jwts.append(await client.token_provider.get_token())
        fake.advance(1)
        sb.sandbox.revoke_tokens()
        assert failures(await wave(client, fake, 50)) == []
        jwts.append(await client.token_provider.get_token())
        texts += [repr(client), repr(client.token_provider)]
        sb.sandbox.faults.token_outage = True
        jump_into(sb, fake, "advisory")
        await wave(client, fake, 10)
        fake.advance(1)  # still in the advisory window of the token issued last
        assert failures(await wave(client, fake, 10)) == []  # the held token still works
        fake.advance(TTL)  # now it has expired: callers wait for a token, up to their 0.5 s deadline
        outage = failures(await wave(client, fake, 10))
    other = FakeClock()
    async with sandbox_client(other, secret=WRONG_SECRET) as (sb, client):
        refused = failures(await wave(client, other, 10))
    assert outage and refused
    texts += [exception_texts(e) for e in outage[:1] + refused[:1]]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert any("renewal (advisory) failed" in r.getMessage() for r in caplog.records)
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    blob = "\n".join(texts)
    for secret in [*jwts, CLIENT_SECRET, WRONG_SECRET, API_KEY, basic, "eyJ"]:
        assert secret not in blob
