"""The API key's budget shared in Redis (``PartnerClient(redis_url=...)``), against a real redis-server and
the sandbox: slots spaced across processes, a throttle that slows every process, the quota stop across
processes, the key naming, the local daily count, and Redis stopped mid-run with no failed call."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from ctct_partner_async import FakeClock, PartnerClient, QuotaExceededError, TokenSettings
from ctct_partner_async._budget import DailyQuota, SharedBudget, namespace
from ctct_partner_async._protocol import Response
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox
from ctct_partner_async.testing import MockTransport
from tests import redis_server

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
API_KEY = "sandbox-api-key"
SETTINGS = TokenSettings(first_request_jitter=0)


@asynccontextmanager
async def sandbox(**config: Any) -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(
        SandboxConfig(**{"rate_limit": 0, "daily_quota": 0, "token_rate_limit": 0, **config})
    ) as sb:
        yield sb


def client_for(sb: SandboxHandle, redis_url: str, **settings: Any) -> PartnerClient:
    return PartnerClient(**{
        "api_key": API_KEY, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "base_url": sb.base_url, "token_url": sb.token_url, "token_settings": SETTINGS,
        "redis_url": redis_url, "environ": {}, **settings,
    })  # fmt: skip


def api_log(sb: SandboxHandle) -> list[dict[str, Any]]:
    return [e for e in sb.sandbox.request_log() if e["operation"] != "token"]


# -- across processes ---------------------------------------------------------------------------------------
WORKER = """
import asyncio, json, os, time
from ctct_partner_async import CtctError, PartnerClient, TokenSettings

async def main():
    env = os.environ
    async with PartnerClient(
        api_key=env["T_API_KEY"], client_id=env["T_CLIENT_ID"], client_secret=env["T_CLIENT_SECRET"],
        base_url=env["T_BASE_URL"], token_url=env["T_TOKEN_URL"], redis_url=env["T_REDIS_URL"],
        token_settings=TokenSettings(first_request_jitter=0), rate_limit=float(env["T_RATE"]), environ={},
    ) as client:
        if env.get("T_WARM"):
            await client.webhooks.get(1)  # the token and a connection, before the start line
        await asyncio.sleep(max(0.0, float(env["T_START"]) - time.time()))
        results = await asyncio.gather(
            *(client.webhooks.get(1) for _ in range(int(env["T_CALLS"]))), return_exceptions=True
        )
        errors = [type(r).__name__ for r in results if isinstance(r, BaseException)]
        stops = [r for r in results if type(r).__name__ == "QuotaExceededError"]
        print(json.dumps({
            "ok": len(results) - len(errors), "errors": errors,
            "reset_at": stops[0].reset_at.isoformat() if stops else None,
            "quota_used": client.quota.used,
        }))

asyncio.run(main())
"""


async def run_workers(
    sb: SandboxHandle, redis_url: str, *, workers: int, calls: int, rate: float, warm: bool, start_in: float
) -> list[dict[str, Any]]:
    """``workers`` real processes on one key, each sending ``calls`` calls at once from a common start."""
    env = {
        **os.environ, "T_API_KEY": API_KEY, "T_CLIENT_ID": CLIENT_ID, "T_CLIENT_SECRET": CLIENT_SECRET,
        "T_BASE_URL": sb.base_url, "T_TOKEN_URL": sb.token_url, "T_REDIS_URL": redis_url,
        "T_RATE": str(rate), "T_CALLS": str(calls), "T_START": str(time.time() + start_in),
        "T_WARM": "1" if warm else "",
    }  # fmt: skip
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(workers)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout=90)
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    return [json.loads(out) for out, _ in outputs]


async def test_three_processes_share_the_rate_evenly_spaced(redis_url: str) -> None:
    """Three processes, each configured with the key's 5/s and sending all its calls at once: the sandbox
    (which admits 5/s) sees no two requests closer than 1/rate (minus a tolerance for the delivery over
    loopback on a loaded machine: 50 ms of the 200), no 429, and the whole run takes what the key's rate
    allows, not a third of it."""
    rate, workers, calls, tolerance = 5.0, 3, 6, 0.05
    async with sandbox(rate_limit=rate) as sb:
        results = await run_workers(
            sb, redis_url, workers=workers, calls=calls, rate=rate, warm=True, start_in=2
        )
        log = api_log(sb)
        statuses = sb.sandbox.stats()["responses_by_status"]
    assert [r["errors"] for r in results] == [[]] * workers
    assert statuses == {"200": workers * (calls + 1)}  # no 429 at all
    times = sorted(e["time"] for e in log)
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1 / rate - tolerance, gaps
    burst = times[-workers * calls :]
    assert burst[-1] - burst[0] >= (len(burst) - 1) / rate - tolerance  # one key's rate for all, not each


async def test_a_quota_stop_seen_by_one_process_stops_the_others(redis_url: str) -> None:
    """The sandbox's quota runs out under the first process; a second process started afterwards raises
    QuotaExceededError (reset at the next 00:00 UTC) for every call and sends nothing."""
    async with sandbox(daily_quota=4) as sb:
        (first,) = await run_workers(sb, redis_url, workers=1, calls=6, rate=50, warm=False, start_in=0)
        sent = sb.sandbox.stats()["api_requests"]
        (second,) = await run_workers(sb, redis_url, workers=1, calls=3, rate=50, warm=False, start_in=0)
        stats = sb.sandbox.stats()
    assert first["ok"] == 4 and set(first["errors"]) == {"QuotaExceededError"}
    assert second == {"ok": 0, "errors": ["QuotaExceededError"] * 3, "reset_at": first["reset_at"],
                      "quota_used": sent}  # fmt: skip
    assert stats["api_requests"] == sent  # the second process sent no API request; it counted them all
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    assert dt.datetime.fromisoformat(first["reset_at"]) == dt.datetime.combine(tomorrow, dt.time(), dt.UTC)


# -- the shared rate ----------------------------------------------------------------------------------------
@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def budget(store: redis.asyncio.Redis, rate: float | None = 10.0, **options: Any) -> SharedBudget:
    return SharedBudget(store, "t:{ns}", rate=rate, quota=DailyQuota(None, FakeClock()), clock=FakeClock(),
                        **options)  # fmt: skip


async def test_slots_are_booked_one_after_another_for_every_holder(redis_url: str) -> None:
    """Three budgets on one namespace (three connections, as three processes would have): 12 turns asked
    at once come back 1/rate apart, in one sequence (every wait a distinct slot)."""
    stores = [redis.asyncio.Redis.from_url(redis_url) for _ in range(3)]
    try:
        budgets = [budget(s, rate=10.0) for s in stores]
        waits = sorted(await asyncio.gather(*(b.turn("GET", "u") for b in budgets for _ in range(4))))
    finally:
        for s in stores:
            await s.aclose()
    steps = [later - earlier for earlier, later in zip(waits, waits[1:], strict=False)]
    assert waits[0] == 0.0 and all(0.09 <= step <= 0.11 for step in steps)
    assert max(b.workers for b in budgets) == 3  # each holder's heartbeat counts it
    assert max(b.quota.used for b in budgets) == 12  # the shared count: the last booking saw all 12


async def test_a_throttle_seen_by_one_holder_slows_every_holder(store: redis.asyncio.Redis) -> None:
    """After one holder's 429 the key's rate is halved for the other one; a throttle within the cooldown
    (an answer to a request sent before the cut) does not cut again."""
    seer, other = budget(store), budget(store)
    await seer.throttled()
    await seer.throttled()  # in the cooldown: ignored
    waits = [await other.turn("GET", "u") for _ in range(4)]
    steps = [later - earlier for earlier, later in zip(waits, waits[1:], strict=False)]
    assert all(0.18 <= step <= 0.21 for step in steps), steps  # 5/s, not 10/s (and not 2.5/s)


async def test_a_throttle_through_the_pipeline_slows_the_other_client(redis_url: str) -> None:
    """A client answered 429 ``throttled`` cuts the shared rate: the other client's next slots are 1/5 s
    apart, though it never saw a 429."""
    answers = iter([Response.from_json(429, [{"error_key": "throttled", "error_message": "slow down"}])])
    transport = MockTransport(lambda request: next(answers, Response.from_json(200, [])))
    async with sandbox() as sb:
        seer = client_for(sb, redis_url, rate_limit=10, transport=transport, token_provider=_token,
                          clock=FakeClock(autojump=True))  # fmt: skip
        other = client_for(sb, redis_url, rate_limit=10)
        async with seer, other:
            await seer.webhooks.list()  # 429, then a retry that succeeds
            assert other._pipeline.shared is not None
            waits = [await other._pipeline.shared.turn("GET", "u") for _ in range(3)]
    assert transport.requests and len(transport.requests) == 2
    steps = [later - earlier for earlier, later in zip(waits, waits[1:], strict=False)]
    assert all(0.18 <= step <= 0.21 for step in steps), steps


async def _token() -> str:
    return "header.payload.signature"


# -- naming and the client's options ------------------------------------------------------------------------
async def test_keys_name_neither_the_api_key_nor_the_client_id(
    redis_url: str, store: redis.asyncio.Redis
) -> None:
    """Every key the client writes is under ``{prefix}:{hash}``; neither credential appears in a key."""
    async with sandbox() as sb, client_for(sb, redis_url, redis_prefix="acme") as client:
        await client.webhooks.list()
    names = [k.decode() if isinstance(k, bytes) else k for k in await store.keys("*")]
    space = namespace("acme", API_KEY, CLIENT_ID)
    assert names and all(name.startswith(space + ":") for name in names)
    assert not any(API_KEY in name or CLIENT_ID in name or CLIENT_SECRET in name for name in names)
    assert namespace("acme", API_KEY, "other-client") != space != namespace("acme", "other-key", CLIENT_ID)


async def test_the_client_reads_ctct_redis_url_and_closes_what_it_opened(redis_url: str) -> None:
    async with sandbox() as sb:
        client = client_for(sb, None, environ={"CTCT_REDIS_URL": redis_url})  # type: ignore[arg-type]
        async with client:
            await client.webhooks.list()
            assert client.quota.shared and client.quota.used == 1
            assert (await client.refresh_quota()).used == 1
        assert client._redis is None  # closed and let go


def test_bad_redis_settings_are_named() -> None:
    from ctct_partner_async import ValidationError

    base = {"api_key": "k", "client_id": "c", "client_secret": "s", "environ": {}}
    with pytest.raises(ValidationError, match="redis_url: must be a redis://"):
        PartnerClient(**base, redis_url="http://user:hunter2@cache:6379")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="CTCT_REDIS_URL: must be a redis://") as caught:
        PartnerClient(**{**base, "environ": {"CTCT_REDIS_URL": "cache:6379"}})  # type: ignore[arg-type]
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValidationError, match="redis_prefix: must be non-empty"):
        PartnerClient(**base, redis_url="redis://localhost", redis_prefix="a b")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="redis_url: pass either redis="):
        PartnerClient(**base, redis_url="redis://localhost", redis=object())  # type: ignore[arg-type]


# -- the local daily count ----------------------------------------------------------------------------------
def test_the_daily_count_rolls_over_at_midnight_utc() -> None:
    clock = FakeClock(wall_start=dt.datetime(2026, 12, 1, 23, 59, tzinfo=dt.UTC).timestamp())
    quota = DailyQuota(10, clock)
    for _ in range(3):
        quota.sent()
    status = quota.status()
    assert (status.used, status.remaining, status.shared, status.stopped) == (3, 7, False, False)
    assert status.reset_at == dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    clock.advance(61)
    assert quota.status().used == 0
    quota.sent()
    assert quota.status().used == 1


async def test_after_quota_exceeded_a_client_sends_nothing_until_midnight() -> None:
    """One ``quota_exceeded`` answer stops the client: later calls raise QuotaExceededError without a
    request, until 00:00 UTC by the client's clock; then it sends again."""
    clock = FakeClock(wall_start=dt.datetime(2026, 12, 1, 22, 0, tzinfo=dt.UTC).timestamp())
    answers = iter([Response.from_json(429, [{"error_key": "quota_exceeded", "error_message": "spent"}])])
    transport = MockTransport(lambda request: next(answers, Response.from_json(200, [])))
    async with PartnerClient(api_key="k", token_provider=_token, transport=transport, clock=clock,
                             environ={}, rate_limit=None) as client:  # fmt: skip
        with pytest.raises(QuotaExceededError):
            await client.webhooks.list()
        with pytest.raises(QuotaExceededError, match="the SDK sent nothing") as caught:
            await client.webhooks.list()
        assert caught.value.reset_at == dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
        assert len(transport.requests) == 1 and client.quota.stopped and client.quota.remaining == 0
        clock.advance(2 * 3600)
        await client.webhooks.list()
        assert len(transport.requests) == 2 and not client.quota.stopped


# -- Redis stopped mid-run ----------------------------------------------------------------------------------
async def test_redis_stopped_mid_run_fails_no_call_and_is_used_again_when_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two clients share a key through a redis-server that is stopped mid-run: no call fails, each paces
    itself at half the rate, the outage is logged once per client; restarted on its port, Redis is used
    again (its count moves on)."""
    executable = shutil.which("redis-server")
    assert executable is not None, redis_server.MISSING
    port = redis_server.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = redis_server.start(executable, port, tmp_path)
    clock = FakeClock(autojump=True)
    try:
        await redis_server.wait_until_ready(server, url)
        async with sandbox() as sb:
            clients = [client_for(sb, url, rate_limit=8, clock=clock) for _ in range(2)]
            try:
                for c in clients:  # both known to Redis before the others book (each sees 2 workers)
                    await c.webhooks.list()
                await asyncio.gather(*(c.webhooks.list() for c in clients for _ in range(3)))
                redis_server.stop(server)
                with caplog.at_level(logging.INFO, logger="ctct_partner_async"):
                    await asyncio.gather(*(c.webhooks.list() for c in clients for _ in range(6)))
                    down = [
                        r.getMessage() for r in caplog.records if "Redis did not answer" in r.getMessage()
                    ]
                    server = redis_server.start(executable, port, tmp_path)
                    await redis_server.wait_until_ready(server, url)
                    clock.advance(10)  # past the retry interval
                    for c in clients:  # one by one: while a probe is out, the others pace locally
                        for _ in range(3):
                            await c.webhooks.list()
                back = [r.getMessage() for r in caplog.records if "Redis answers again" in r.getMessage()]
                store = redis.asyncio.Redis.from_url(url)
                counts = [int(await store.get(k) or 0) for k in await store.keys("*:quota:*")]
                await store.aclose()
                used = [(await c.refresh_quota()).used for c in clients]
            finally:
                for c in clients:
                    await c.aclose()
            statuses = sb.sandbox.stats()["responses_by_status"]
    finally:
        redis_server.stop(server)
    assert statuses == {"200": 2 * (4 + 6 + 3)}  # every call answered; none failed
    assert len(down) == 2 and all("4/s (8/s over 2)" in line for line in down)
    assert len(back) == 2
    assert counts == [2 * 3]  # the new server counts the calls made since it came back
    assert all(u >= 2 * 3 for u in used)  # a client's count never goes back (its outage calls count)


async def test_a_rebooked_request_is_not_counted_twice(store: redis.asyncio.Redis) -> None:
    """A request whose slot went by while it waited for a token books again without counting again."""
    holder = budget(store)
    await holder.turn("GET", "u")
    await holder.turn("GET", "u", count=False)
    assert holder.quota.used == 1
    assert (await holder.refresh()).used == 1


async def test_without_a_rate_the_count_is_shared_and_throttles_are_learned_locally(redis_url: str) -> None:
    """``rate_limit=None`` with Redis: no slot is booked (nothing spaced), the count is still shared, and a
    429 turns on this process's learned limit, as without Redis."""
    answers = iter([Response.from_json(429, [{"error_key": "throttled", "error_message": "slow down"}])])
    transport = MockTransport(lambda request: next(answers, Response.from_json(200, [])))
    async with sandbox() as sb:
        client = client_for(sb, redis_url, rate_limit=None, transport=transport, token_provider=_token,
                            clock=FakeClock(autojump=True))  # fmt: skip
        async with client:
            assert client.limiter.rate is None
            await client.webhooks.list()
            assert client.limiter.learned and client.limiter.rate is not None
            assert (await client.refresh_quota()).used == 2
