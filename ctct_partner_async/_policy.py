"""Retry and rate limiting: one pure retry decision, a retry budget, and an adaptive rate limiter.

``decide`` is the whole retry policy, a pure function of the error and the request:

- a connect error (the request never left): retry;
- a timeout, a dropped connection, a 500/502/504: retry only if repeating the request can do no harm
  (``idempotent``) or its effect can be reconciled (account creation, see ``provisioning``);
- 503: retry idempotent requests; on account creation it means "stored, processed later": never resend;
- 429 ``throttled``: always retry, after ``Retry-After`` (capped) when the server sends one;
- 429 ``quota_exceeded``, any other 4xx, validation errors and ``CancelledError``: never.

``Retry`` runs the decision under an attempt cap, an overall deadline and a per-client budget, with
exponential backoff and full jitter, on tenacity. The first attempt never touches tenacity, so the
success path costs one ``try``; a fresh ``AsyncRetrying`` is built only when a first attempt has failed.
"""

from __future__ import annotations

import asyncio
import collections
import random

import attrs
import tenacity

from . import _errors as errors
from ._clock import Clock
from ._hooks import RetryDetails, RetryHook
from ._protocol import Request

__all__ = ["MIN_SLEEP", "RateLimiter", "Retry", "RetryBudget", "RetryDecision", "RetryPolicy", "decide"]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How hard to retry: attempts, overall deadline, backoff, the ``Retry-After`` cap and the budget.

    The budget lets retries add at most ``budget_ratio`` of the client's last ``budget_window``
    requests, plus a reserve of ``budget_reserve`` retries, so an outage does not multiply the load.
    Retries of 429 ``throttled`` are paced by the rate limiter and do not spend budget.
    """

    max_attempts: int = 6
    deadline: float = 120.0
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    retry_after_cap: float = 30.0
    budget_ratio: float = 0.2
    budget_reserve: float = 20.0
    budget_window: int = 1000


@attrs.frozen
class RetryDecision:
    """``retry`` or not; ``wait`` is a server-given delay, ``None`` for the default backoff."""

    retry: bool
    wait: float | None = None
    spends_budget: bool = True


NO_RETRY = RetryDecision(False)
BACKOFF = RetryDecision(True)


def decide(error: BaseException, request: Request, policy: RetryPolicy) -> RetryDecision:
    """Whether and when to retry ``request`` after ``error``: the one retry decision of the SDK."""
    repeatable = request.idempotent or request.reconcilable
    match error:
        case errors.QuotaExceededError():
            return NO_RETRY
        case errors.ThrottledError(retry_after=after):
            wait = None if after is None else min(after, policy.retry_after_cap)
            return RetryDecision(True, wait, spends_budget=False)
        case errors.ServiceUnavailableError():
            return BACKOFF if request.idempotent else NO_RETRY
        case errors.ServerError() | errors.ResponseError():
            return BACKOFF if repeatable else NO_RETRY
        case errors.ConnectError():
            return BACKOFF
    return NO_RETRY


class RetryBudget:
    """A bucket of retries: each request deposits ``ratio``, each retry withdraws one.

    It starts with ``reserve`` and holds at most ``reserve + ratio * window``: what the last ``window``
    requests earned. A burst of calls can pay for its own retries; a long healthy spell can't bank
    enough to let a later outage multiply the load.
    """

    def __init__(self, ratio: float, reserve: float, window: int = 1000) -> None:
        self._ratio = ratio
        self._cap = reserve + ratio * window
        self._tokens = reserve

    def deposit(self) -> None:
        self._tokens = min(self._cap, self._tokens + self._ratio)

    def withdraw(self) -> bool:
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class Retry:
    """A client's retries: the policy, the budget, the jitter and the ``on_retry`` hook.

    The pipeline makes the first attempt itself; only when it fails does it iterate
    :meth:`retrying`, a fresh ``AsyncRetrying`` whose first attempt re-raises that failure, so every
    failure, the first included, goes through the same decision, wait, stop and report.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Clock,
        *,
        on_retry: RetryHook | None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._budget = RetryBudget(policy.budget_ratio, policy.budget_reserve, policy.budget_window)
        self._on_retry = on_retry
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self.retries = 0

    def begin(self, until: float | None = None) -> float:
        """A call starts: it earns its share of the budget. Returns its deadline (``until`` if earlier)."""
        self._budget.deposit()
        deadline = self._clock.monotonic() + self.policy.deadline
        return deadline if until is None or until > deadline else until

    def retrying(self, request: Request, url: str, deadline: float) -> tenacity.AsyncRetrying:
        """The retry loop for one call whose first attempt has failed."""
        run = _Run(self, request, url, deadline)
        return tenacity.AsyncRetrying(
            retry=run.retry,
            wait=run.wait,
            stop=run.stop,
            before_sleep=run.before_sleep,
            sleep=self._clock.sleep,
            reraise=True,
        )

    def backoff(self, decision: RetryDecision, attempt: int) -> float:
        """The wait after failed attempt ``attempt``: the server's delay, or full-jitter exponential."""
        if decision.wait is not None:
            return decision.wait
        ceiling = min(self.policy.backoff_max, self.policy.backoff_initial * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    def _notify(self, request: Request, url: str, attempt: int, wait: float, error: BaseException) -> None:
        self.retries += 1
        if self._on_retry is not None:
            detail = f"{type(error).__name__}: {error}"
            self._on_retry(RetryDetails(request.operation, request.method, url, attempt, wait, detail, error))


class _Run:
    """One failing call under tenacity: one ``RetryDecision`` per failure feeds wait, stop and budget.

    tenacity asks ``retry`` first, then ``wait``, then ``stop``, then ``before_sleep``.
    """

    __slots__ = ("_deadline", "_decision", "_request", "_retry", "_url")

    def __init__(self, retry: Retry, request: Request, url: str, deadline: float) -> None:
        self._retry = retry
        self._request = request
        self._url = url
        self._deadline = deadline
        self._decision = NO_RETRY

    def retry(self, state: tenacity.RetryCallState) -> bool:
        self._decision = decide(_error(state), self._request, self._retry.policy)
        return self._decision.retry

    def wait(self, state: tenacity.RetryCallState) -> float:
        return self._retry.backoff(self._decision, state.attempt_number)

    def stop(self, state: tenacity.RetryCallState) -> bool:
        """The attempt cap, the deadline (no sleep past it), then the budget (spent only when a retry
        really follows)."""
        retry = self._retry
        if state.attempt_number >= retry.policy.max_attempts:
            return True
        if retry._clock.monotonic() + (state.upcoming_sleep or 0.0) > self._deadline:
            return True  # the wait would end past the deadline
        return self._decision.spends_budget and not retry._budget.withdraw()

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        attempt, wait = state.attempt_number, state.upcoming_sleep
        self._retry._notify(self._request, self._url, attempt, wait, _error(state))


def _error(state: tenacity.RetryCallState) -> BaseException:
    error = state.outcome.exception() if state.outcome else None
    assert error is not None
    return error


class RateLimiter:
    """A client-side limit on requests per second and on requests in flight, shared by all coroutines.

    Requests are spaced ``1/rate`` apart (a token bucket with a burst of one), so a server that admits
    ``rate`` a second never sees a burst above it. On a 429 ``throttled`` the rate is cut by
    ``backoff_factor`` (another process may share the API key) and then recovers linearly to the
    configured rate over ``recovery_time`` seconds, in the spirit of botocore's adaptive mode. Throttles
    within ``cooldown`` seconds of a cut are answers to requests sent before it: they don't cut again.
    With ``max_wait`` set, a caller that would wait longer for its turn, or find every in-flight slot
    taken, gets ``RateLimitError`` at once instead (for web handlers that must answer quickly).
    """

    def __init__(
        self,
        rate: float | None,
        max_concurrency: int,
        clock: Clock,
        *,
        max_wait: float | None = None,
        backoff_factor: float = 0.5,
        recovery_time: float = 10.0,
        min_rate: float = 0.5,
        cooldown: float = 1.0,
    ) -> None:
        if rate is not None and not rate > 0:  # also refuses NaN
            raise errors.ValidationError(
                [errors.FieldError("rate_limit", "must be positive, or None for no limit")]
            )
        if max_concurrency < 1:
            raise errors.ValidationError([errors.FieldError("max_concurrency", "must be at least 1")])
        self._configured = rate
        self._clock = clock
        self._max_wait = max_wait
        self._factor = backoff_factor
        self._recovery = recovery_time
        self._cooldown = cooldown
        self._min_rate = min(min_rate, rate) if rate else min_rate
        self._floor_rate = rate
        self._throttled_at = -float("inf")
        self._next_slot = -float("inf")
        self._free = max_concurrency
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.throttles = 0

    @property
    def rate(self) -> float | None:
        """The current rate: the configured one, or less while recovering from a throttle."""
        configured, floor = self._configured, self._floor_rate
        if configured is None or floor is None or floor >= configured:
            return configured
        elapsed = self._clock.monotonic() - self._throttled_at
        if elapsed >= self._recovery:
            self._floor_rate = configured  # recovered: no arithmetic on later calls
            return configured
        return floor + (configured - floor) * elapsed / self._recovery

    def throttled(self) -> None:
        """The server answered 429 ``throttled``: slow down."""
        self.throttles += 1
        current = self.rate
        if current is None or self._clock.monotonic() - self._throttled_at < self._cooldown:
            return
        self._floor_rate = max(self._min_rate, current * self._factor)
        self._throttled_at = self._clock.monotonic()

    # -- the concurrency cap: a small semaphore whose free path needs no await -----------------------------
    def try_enter(self) -> bool:
        """Take an in-flight slot if one is free and nobody queues for one (``leave()`` gives it back)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def enter(self) -> None:
        """Take an in-flight slot, queueing in arrival order; fail fast when asked to and none is free."""
        if self.try_enter():
            return
        if self._max_wait is not None:
            raise errors.RateLimitError("client-side concurrency cap reached", retry_after=0.0)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                if waiter in self._waiters:  # leave() may have skipped past it already
                    self._waiters.remove(waiter)
            else:  # handed a slot just as this caller was cancelled: hand it on
                self.leave()
            raise

    def leave(self) -> None:
        """Give an in-flight slot back: straight to the first caller still queueing, if any."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    @property
    def free_slots(self) -> int:
        """In-flight slots free right now."""
        return self._free

    def reserve(self) -> float:
        """Book this request's turn under the rate; the seconds to wait for it (0.0 when it is now).

        Waits under ``MIN_SLEEP`` come back as 0.0: a timer and a loop turn cost more than the spacing
        they would buy, and a server that admits ``rate`` a second absorbs a millisecond's worth of
        early requests. With ``max_wait``, a turn further away raises ``RateLimitError`` and books nothing.
        """
        rate = self.rate
        if rate is None:
            return 0.0
        now = self._clock.monotonic()
        slot = self._next_slot if self._next_slot > now else now
        wait = slot - now
        if self._max_wait is not None and wait > self._max_wait:
            raise self._too_long(wait)
        self._next_slot = slot + 1.0 / rate
        return wait if wait > MIN_SLEEP else 0.0

    def check_max_wait(self) -> None:
        """With ``max_wait``: ``RateLimitError`` if the next turn is already further away (books nothing)."""
        if self._max_wait is None or self.rate is None:
            return
        wait = self._next_slot - self._clock.monotonic()
        if wait > self._max_wait:
            raise self._too_long(wait)

    def _too_long(self, wait: float) -> errors.RateLimitError:
        message = f"client-side rate limit: next slot in {wait:.2f}s (max_wait {self._max_wait}s)"
        return errors.RateLimitError(message, retry_after=wait)


MIN_SLEEP = 0.001
"""Waits this short aren't slept (see ``RateLimiter.reserve``)."""
