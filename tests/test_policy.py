"""The retry decision, backoff, budget and the adaptive rate limiter, on a fake clock."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from ctct_partner_async import PartnerClient
from ctct_partner_async import _errors as errors
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._policy import RateLimiter, Retry, RetryDecision, RetryPolicy, decide
from ctct_partner_async._protocol import Request, Response
from ctct_partner_async.testing import MockTransport

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
    """A throttle halves the rate; it climbs back linearly, regaining half a cut's worth over the recovery
    time, to the configured rate (a deeper cut climbs back more slowly)."""
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
    assert limiter.rate == pytest.approx(2.75 * (1 + 5.0 / 10.0))  # 2.75 a second regained per 10 s
    clock.advance(10.0)
    assert limiter.rate == pytest.approx(2.75 * (1 + 15.0 / 10.0))
    clock.advance(12.0)
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


# -- throttling: the learned limit, the quiet period, paced retries ----------------------------------------


def test_a_throttle_is_a_paced_retry() -> None:
    """A 429 throttled is retried as a throttle (paced, no budget); a 500 is not one."""
    throttle = decide(api(errors.ThrottledError, 429, error_keys=["throttled"]), CREATE, POLICY)
    assert (throttle.retry, throttle.throttled, throttle.spends_budget) == (True, True, False)
    assert not decide(api(errors.ServerError, 500), GET, POLICY).throttled


def test_throttled_retries_wait_a_short_jitter_whatever_the_attempt() -> None:
    """A throttle without Retry-After waits at most backoff_initial, however many came before (the limiter
    does the pacing); with Retry-After it waits that."""
    retry = Retry(RetryPolicy(backoff_initial=0.5), FakeClock(), on_retry=None, rng=random.Random(2))
    paced = RetryDecision(True, None, spends_budget=False, throttled=True)
    waits = [retry.backoff(paced, attempt) for attempt in range(1, 40)]
    assert max(waits) <= 0.5 and min(waits) >= 0
    assert retry.backoff(RetryDecision(True, 3.0, spends_budget=False, throttled=True), 9) == 3.0


def throttle_then_ok(throttles: int) -> MockTransport:
    replies = [Response.from_json(429, {"error_key": "throttled", "error_message": "x"})] * throttles

    def handle(request: Request) -> Response:
        return replies.pop(0) if replies else Response.from_json(200, [])

    return MockTransport(handle)


def mock_client(transport: MockTransport, policy: RetryPolicy) -> PartnerClient:
    async def token() -> str:
        return "jwt"

    return PartnerClient(api_key="k", token_provider=token, transport=transport, clock=FakeClock(autojump=True),
                         rate_limit=None, on_retry=None, retry_policy=policy)  # fmt: skip


async def test_throttles_are_not_counted_by_max_attempts() -> None:
    """Ten throttles in a row don't use up max_attempts=2: the call succeeds; max_throttle_retries and
    the deadline bound them instead, and max_throttle_retries=0 with max_attempts=1 retries nothing."""
    transport = throttle_then_ok(10)
    async with mock_client(transport, RetryPolicy(max_attempts=2)) as client:
        await client.webhooks.list()
        assert client.limiter.learned  # and the client, unlimited, now spaces its requests
    assert len(transport.requests) == 11
    transport = throttle_then_ok(10)
    async with mock_client(transport, RetryPolicy(max_throttle_retries=3)) as client:
        with pytest.raises(errors.ThrottledError):
            await client.webhooks.list()
    assert len(transport.requests) == 4
    transport = throttle_then_ok(1)
    async with mock_client(transport, RetryPolicy(max_attempts=1, max_throttle_retries=0)) as client:
        with pytest.raises(errors.ThrottledError):
            await client.webhooks.list()
    assert len(transport.requests) == 1


def test_an_unlimited_limiter_learns_a_limit_from_its_first_throttle() -> None:
    """With no configured rate nothing waits until a throttle; then the rate is half what was sent over the
    last second, it climbs back to that over the recovery time, and is forgotten after forget_after."""
    clock = FakeClock()
    limiter = RateLimiter(None, 64, clock, recovery_time=10.0, forget_after=60.0)
    assert [limiter.reserve() for _ in range(40)] == [0.0] * 40 and limiter.rate is None
    clock.advance(0.1)
    limiter.throttled()
    assert limiter.learned and limiter.rate == pytest.approx(20.0)
    assert limiter.reserve() == 0.0 and limiter.reserve() == pytest.approx(1 / 20.0)  # spaced now
    clock.advance(0.3)
    limiter.throttled()  # within the cooldown: an answer to the burst, no second cut
    assert limiter.rate == pytest.approx(20.0 * (1 + 0.25 / 10.0), rel=0.01)  # climbing after the queue
    clock.advance(20.0)
    assert limiter.rate == pytest.approx(40.0)
    clock.advance(40.0)
    assert limiter.rate is None and not limiter.learned  # 60 s without a throttle: no limit again


def test_an_unlimited_limiter_with_nothing_sent_starts_at_the_minimum() -> None:
    """A throttle with nothing counted (the only request was long ago) starts the learned limit at min_rate."""
    clock = FakeClock()
    limiter = RateLimiter(None, 4, clock, min_rate=0.5)
    limiter.reserve()
    clock.advance(5.0)
    limiter.throttled()
    assert limiter.rate == pytest.approx(0.5)


async def answers(limiter: RateLimiter, count: int) -> None:
    for _ in range(count):
        await limiter.enter()
        limiter.leave()


async def test_a_learned_limit_is_cut_by_the_share_refused_at_most_halved() -> None:
    """Later throttles cut a learned limit by the share of answers refused since the last ignored throttle:
    a throttle now and then costs its share; many at once halve it (never more)."""
    clock = FakeClock()
    limiter = RateLimiter(None, 4, clock)
    for _ in range(40):
        limiter.reserve()
    limiter.throttled()  # learned: 20/s
    clock.advance(limiter._quiet_until - clock.monotonic())
    limiter._floor_rate = limiter._ceiling  # recovered to 40/s, for round numbers
    await answers(limiter, 20)
    limiter.throttled()  # the 20th answer was refused: 1 in 20
    assert limiter.rate == pytest.approx(40.0 * 0.95)
    clock.advance(limiter._quiet_until - clock.monotonic())
    await answers(limiter, 1)
    limiter.throttled()  # the only answer since, refused: halved, not cut to nothing
    assert limiter.rate == pytest.approx(40.0 * 0.5)  # (back at 40 by then: 38 regains 3.8 a second)


def test_throttles_for_turns_booked_before_a_cut_do_not_cut_again() -> None:
    """After a cut, throttles keep coming for the turns booked before it: the rate stays at the cut until
    those turns have gone, then climbs; no throttle cuts again until a cooldown after them."""
    clock = FakeClock()
    limiter = RateLimiter(4.0, 64, clock, cooldown=1.0, recovery_time=10.0)
    booked = [limiter.reserve() for _ in range(12)]  # 12 turns, 0.25 s apart: the queue ends 3 s from now
    assert booked[-1] == pytest.approx(2.75)
    limiter.throttled()
    assert limiter.rate == pytest.approx(2.0)
    for _ in range(6):  # up to 2.7 s: answers for the turns booked before the cut
        clock.advance(0.45)
        limiter.throttled()
        assert limiter.rate == pytest.approx(2.0)  # no cut, and no climb while the old turns go out
    clock.advance(0.8)  # 3.5 s: the old turns have gone, the rate climbs; the cooldown still runs
    limiter.throttled()
    assert limiter.rate == pytest.approx(2.0 * (1 + 0.5 / 10.0))
    clock.advance(0.5)  # 4.0 s: a throttle now is an answer at the new rate: it cuts
    limiter.throttled()
    assert limiter.rate == pytest.approx(2.0 * (1 + 1.0 / 10.0) / 2)


def test_a_throttle_just_after_a_learned_limit_is_forgotten_learns_again_from_what_was_sent() -> None:
    """Requests sent under a learned limit are counted too: a throttle that arrives as the limit is
    forgotten starts the new one from the rate really sent, not from the minimum."""
    clock = FakeClock()
    limiter = RateLimiter(None, 64, clock, forget_after=60.0)
    for _ in range(10):
        limiter.reserve()
    limiter.throttled()  # learned: 5/s
    clock.advance(59.5)
    for _ in range(8):  # 8 requests in the last half second of the learned limit
        limiter.reserve()
    clock.advance(0.6)
    limiter.throttled()  # 60.1 s after the cut: the old limit is forgotten, a new one learned
    assert limiter.learned and limiter.rate == pytest.approx(8 * 0.5)  # 8 sent in the last second
