"""The retry decision, backoff, budget and the adaptive rate limiter, on a fake clock."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from ctct_partner_async import _errors as errors
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._policy import RateLimiter, Retry, RetryDecision, RetryPolicy, decide
from ctct_partner_async._protocol import Request

GET = Request("GET", "partner/accounts", "list_accounts")
PUT = Request("PUT", "partner/accounts/a/plan", "update_plan")
CREATE = Request("POST", "partner/accounts", "create_account", idempotent=False, reconcilable=True)
SSO = Request("POST", "partner/accounts/a/users/sso", "create_sso_user", idempotent=False)
POLICY = RetryPolicy()


def api(cls: type[errors.APIError], status: int, **kw: object) -> errors.APIError:
    return cls(method="GET", url="u", status=status, **kw)  # type: ignore[arg-type]


def transport(cls: type[errors.TransportError]) -> errors.TransportError:
    return cls("x", method="GET", url="u")


CASES = [
    # error, GET, CREATE, SSO (non-idempotent, not reconcilable)
    (transport(errors.ConnectError), True, True, True),
    (transport(errors.ResponseError), True, True, False),
    (transport(errors.RequestTimeoutError), True, True, False),
    (api(errors.ServerError, 500), True, True, False),
    (api(errors.ServerError, 502), True, True, False),
    (api(errors.ServerError, 504), True, True, False),
    (api(errors.ServiceUnavailableError, 503), True, False, False),
    (api(errors.ThrottledError, 429, error_keys=["throttled"]), True, True, True),
    (api(errors.BadRequestError, 400), False, False, False),
    (api(errors.ConflictError, 409), False, False, False),
    (api(errors.NotFoundError, 404), False, False, False),
    (api(errors.UnauthorizedError, 401), False, False, False),
    (errors.ValidationError([errors.FieldError("f", "r")]), False, False, False),
    (asyncio.CancelledError(), False, False, False),
    (RuntimeError("a bug"), False, False, False),
]


@pytest.mark.parametrize(
    ("error", "get", "create", "sso"), CASES, ids=[type(c[0]).__name__ + str(i) for i, c in enumerate(CASES)]
)
def test_decision_table(error: BaseException, get: bool, create: bool, sso: bool) -> None:
    """Connect errors always retry; ambiguous failures only when safe; 4xx and bugs never; 503 never on create."""
    assert decide(error, GET, POLICY).retry is get
    assert decide(error, PUT, POLICY).retry is get
    assert decide(error, CREATE, POLICY).retry is create
    assert decide(error, SSO, POLICY).retry is sso


def test_quota_exceeded_is_never_retried() -> None:
    """quota_exceeded is never retried, even though it is a 429."""
    import datetime as dt

    quota = errors.QuotaExceededError(
        reset_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), method="GET", url="u", status=429
    )
    assert not decide(quota, GET, POLICY).retry


def test_retry_after_is_honoured_and_capped() -> None:
    """A Retry-After on a throttled 429 sets the wait, capped by the policy."""
    assert decide(api(errors.ThrottledError, 429, retry_after=3.0), GET, POLICY).wait == 3.0
    assert (
        decide(api(errors.ThrottledError, 429, retry_after=3600.0), GET, POLICY).wait
        == POLICY.retry_after_cap
    )
    assert decide(api(errors.ThrottledError, 429), GET, POLICY).wait is None


def test_full_jitter_backoff_bounds() -> None:
    """The default backoff is uniform in [0, min(max, initial * 2**(n-1))]; a server delay is taken as is."""
    retry = Retry(RetryPolicy(backoff_initial=0.5, backoff_max=4.0), FakeClock(), on_retry=None,
                  rng=random.Random(1))  # fmt: skip
    decision = decide(transport(errors.ConnectError), GET, POLICY)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        waits = [retry.backoff(decision, attempt) for _ in range(200)]
        assert min(waits) >= 0 and max(waits) <= ceiling
        assert max(waits) > ceiling * 0.8  # spread over the whole range
    assert retry.backoff(RetryDecision(True, 7.0), 1) == 7.0


async def slot(limiter: RateLimiter) -> None:
    """What the pipeline does per attempt: a concurrency slot, then a turn under the rate."""
    await limiter.enter()
    try:
        wait = limiter.reserve()
        if wait:
            await limiter._clock.sleep(wait)
    finally:
        limiter.leave()


async def test_limiter_spaces_requests() -> None:
    """At rate r the limiter lets one request through every 1/r seconds, in arrival order."""
    clock = FakeClock()
    limiter = RateLimiter(4.0, 100, clock)
    started: list[float] = []

    async def one() -> None:
        await slot(limiter)
        started.append(clock.monotonic())

    tasks = [asyncio.create_task(one()) for _ in range(8)]
    for _ in range(40):
        await asyncio.sleep(0)
        clock.advance(0.05)
    await asyncio.gather(*tasks)
    gaps = [round(b - a, 6) for a, b in zip(started, started[1:], strict=False)]
    assert all(gap >= 0.25 - 1e-9 for gap in gaps)
    assert started[-1] - started[0] == pytest.approx(7 * 0.25, abs=0.06)


def test_limiter_adapts_to_throttling_and_recovers() -> None:
    """A throttle halves the rate; it climbs back to the configured rate over the recovery time."""
    clock = FakeClock()
    limiter = RateLimiter(10.0, 10, clock, recovery_time=10.0)
    assert limiter.rate == 10.0
    limiter.throttled()
    assert limiter.rate == pytest.approx(5.0)
    limiter.throttled()  # a burst of 429s answers requests sent before the cut: one cut only
    clock.advance(0.5)
    limiter.throttled()
    assert limiter.rate == pytest.approx(5.0 + 5.0 * 0.5 / 10.0)
    clock.advance(0.5)
    limiter.throttled()
    assert limiter.rate == pytest.approx(5.5 / 2)  # recovered to 5.5 by then, cut to half
    clock.advance(5.0)
    assert limiter.rate == pytest.approx(2.75 + 7.25 * 0.5)
    clock.advance(10.0)
    assert limiter.rate == 10.0
    assert limiter.throttles == 4


async def test_limiter_fail_fast() -> None:
    """With max_wait, a caller that would wait longer gets RateLimitError with retry_after, and no slot is taken."""
    clock = FakeClock()
    limiter = RateLimiter(2.0, 10, clock, max_wait=0.0)
    assert limiter.reserve() == 0.0
    with pytest.raises(errors.RateLimitError) as info:
        limiter.reserve()
    assert info.value.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.reserve() == 0.0  # the refused caller booked nothing


async def test_limiter_fail_fast_when_saturated() -> None:
    """With max_wait, a caller finding every in-flight slot taken fails fast instead of queueing."""
    limiter = RateLimiter(None, 1, FakeClock(), max_wait=0.0)
    await limiter.enter()
    with pytest.raises(errors.RateLimitError, match="concurrency"):
        await limiter.enter()
    limiter.leave()
    await limiter.enter()
    limiter.leave()


async def test_limiter_slots_survive_cancellation() -> None:
    """A queued caller cancelled before or just after being handed a slot never loses or doubles one."""
    limiter = RateLimiter(None, 1, FakeClock())
    await limiter.enter()
    queued = [asyncio.create_task(limiter.enter()) for _ in range(3)]
    await asyncio.sleep(0)
    queued[0].cancel()  # cancelled while queueing
    limiter.leave()  # hands the slot past the cancelled one, to queued[1]
    queued[1].cancel()  # ... which is cancelled before it resumes: the slot goes on to queued[2]
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["CancelledError", "CancelledError", "NoneType"]
    assert limiter.free_slots == 0
    limiter.leave()
    assert limiter.free_slots == 1 and limiter.try_enter() and not limiter.try_enter()


async def test_limiter_caps_concurrency() -> None:
    """No more than max_concurrency holders at once; with no rate limit nothing else waits."""
    limiter = RateLimiter(None, 3, FakeClock())
    inside = peak = 0

    async def one() -> None:
        nonlocal inside, peak
        await limiter.enter()
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0)
        inside -= 1
        limiter.leave()

    await asyncio.gather(*(one() for _ in range(20)))
    assert peak == 3


@pytest.mark.parametrize(("rate", "concurrency"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_limiter_settings_checked(rate: float, concurrency: int) -> None:
    """A non-positive rate or concurrency is refused, naming the setting."""
    with pytest.raises(errors.ValidationError):
        RateLimiter(rate, concurrency, FakeClock())


def test_budget_grows_with_a_burst_but_not_without_bound() -> None:
    """A burst of requests pays for its own retries (ratio of it); idle volume can't bank past the window."""
    from ctct_partner_async._policy import RetryBudget

    budget = RetryBudget(ratio=0.2, reserve=5, window=100)
    for _ in range(1000):
        budget.deposit()
    allowed = sum(budget.withdraw() for _ in range(1000))
    assert allowed == 5 + 20  # reserve + ratio * window, not ratio * 1000
    budget.deposit()
    assert not budget.withdraw()  # 0.2 of a retry is not a retry


def test_sub_millisecond_waits_are_not_slept() -> None:
    """Under a limit the traffic never reaches, same-instant reservations ask for no sleep at all."""
    clock = FakeClock()
    fast = RateLimiter(1_000_000.0, 100, clock)
    assert [fast.reserve() for _ in range(50)] == [0.0] * 50  # 50 us of spacing in all
    slow = RateLimiter(100.0, 100, clock)  # 10 ms apart: these are slept
    assert [slow.reserve() for _ in range(3)] == pytest.approx([0.0, 0.01, 0.02])


class NoClock(FakeClock):
    def monotonic(self) -> float:
        raise AssertionError("the clock was read")


def test_unthrottled_rate_needs_no_arithmetic() -> None:
    """An unthrottled (or fully recovered) limiter answers its configured rate without computing a
    recovery (the old code computed 0 * inf = NaN and was right only through min()'s argument order)."""
    limiter = RateLimiter(4.0, 1, NoClock())
    assert limiter.rate == 4.0
    assert RateLimiter(None, 1, NoClock()).rate is None
    clock = FakeClock()
    recovering = RateLimiter(4.0, 1, clock, recovery_time=10.0)
    recovering.throttled()
    clock.advance(5.0)
    assert recovering.rate == pytest.approx(3.0)
    clock.advance(5.0)
    assert recovering.rate == 4.0
    assert not math.isnan(recovering._floor_rate or 0.0)
