"""Per-API-key limits: throttled (per second) versus quota_exceeded (per UTC day)."""

from __future__ import annotations

from ctct_partner_async.sandbox.limits import DailyQuota, KeyLimiter, TokenBucket
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import FakeClock


async def test_fifth_request_in_a_second_is_throttled(start_sandbox: StartSandbox, clock: FakeClock) -> None:
    """At 4/s the fifth request at the same instant gets 429 throttled; a quarter second later one passes."""
    api = await start_sandbox(rate_limit=4)
    statuses = [(await api.call("GET", "/partner/accounts")).status for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    throttled = await api.call("GET", "/partner/accounts")
    assert throttled.body == {"error_key": "throttled", "error_message": "Too Many Requests"}
    clock.advance(0.25)
    assert (await api.call("GET", "/partner/accounts")).status == 200
    assert (await api.call("GET", "/partner/accounts")).status == 429


async def test_throttle_counts_every_api_operation_and_v2(start_sandbox: StartSandbox) -> None:
    """The per-second budget is per API key across v3 operations and the v2 endpoint."""
    api = await start_sandbox(rate_limit=2)
    account = await api.create_ok("throttle_mix")
    assert (await api.legacy("GET", account)).status == 200
    assert (await api.call("GET", f"/partner/accounts/{account}/plan")).status == 429
    assert (await api.legacy("GET", account)).status == 429


async def test_daily_quota_then_reset_at_utc_midnight(start_sandbox: StartSandbox, clock: FakeClock) -> None:
    """After the daily quota, 429 quota_exceeded all day (even seconds later); it resets at 00:00 UTC."""
    api = await start_sandbox(rate_limit=0, daily_quota=3, token_ttl=2 * 86_400)
    assert [(await api.call("GET", "/partner/accounts")).status for _ in range(3)] == [200, 200, 200]
    clock.advance(5)
    over = await api.call("GET", "/partner/accounts")
    assert over.status == 429
    assert over.body["error_key"] == "quota_exceeded"
    clock.advance(11 * 3600)  # 2026-03-14T23:00:05Z, same day
    assert (await api.call("GET", "/partner/accounts")).body["error_key"] == "quota_exceeded"
    clock.advance(3600)  # past midnight UTC
    assert (await api.call("GET", "/partner/accounts")).status == 200


async def test_throttled_requests_do_not_use_up_the_quota(
    start_sandbox: StartSandbox, clock: FakeClock
) -> None:
    """A request refused per second does not count against the day."""
    api = await start_sandbox(rate_limit=1, daily_quota=2)
    assert (await api.call("GET", "/partner/accounts")).status == 200
    for _ in range(5):
        assert (await api.call("GET", "/partner/accounts")).body["error_key"] == "throttled"
    clock.advance(1)
    assert (await api.call("GET", "/partner/accounts")).status == 200
    clock.advance(1)
    assert (await api.call("GET", "/partner/accounts")).body["error_key"] == "quota_exceeded"
    assert api.handle.sandbox.stats()["quota_used_today"] == 2


async def test_limits_off_when_zero(start_sandbox: StartSandbox) -> None:
    """rate_limit=0 and daily_quota=0 let any number of requests through at one instant."""
    api = await start_sandbox(rate_limit=0, daily_quota=0)
    statuses = {(await api.call("GET", "/partner/accounts")).status for _ in range(30)}
    assert statuses == {200}


async def test_auth_failures_do_not_spend_the_budget(start_sandbox: StartSandbox) -> None:
    """Requests refused with 401 are not counted against the key's limits."""
    api = await start_sandbox(rate_limit=1)
    for _ in range(3):
        assert (await api.call("GET", "/partner/accounts", headers={"x-api-key": "bad"})).status == 401
    assert (await api.call("GET", "/partner/accounts")).status == 200


def test_token_bucket_allows_fractional_rates() -> None:
    """A 0.5/s bucket admits one request every two seconds."""
    bucket = TokenBucket(0.5)
    assert [bucket.take(t) for t in (0.0, 1.0, 2.0, 2.5, 4.0)] == [True, False, True, False, True]


def test_daily_quota_day_is_utc() -> None:
    """The quota's day boundary is 00:00 UTC."""
    quota = DailyQuota(1)
    assert not quota.exhausted(86_400 - 1)
    quota.spend()
    assert quota.exhausted(86_400 - 0.001)
    assert not quota.exhausted(86_400)


def test_key_limiter_reports_which_limit() -> None:
    """KeyLimiter says throttled or quota_exceeded."""
    limiter = KeyLimiter(rate=1, quota=2)
    assert [limiter.admit(0.0), limiter.admit(0.1), limiter.admit(1.0), limiter.admit(2.0)] == [
        None,
        "throttled",
        None,
        "quota_exceeded",
    ]
