"""Retry and rate limiting: one pure retry decision, a retry budget, and an adaptive rate limiter.

``decide`` is the whole retry policy, a pure function of the error and the request:

- a connect error (the request never left): retry;
- a timeout, a dropped connection, a 500/502/504: retry only if repeating the request can do no harm
  (``idempotent``) or its effect can be reconciled (account creation, see ``provisioning``);
- 503: retry idempotent requests; on account creation it means "stored, processed later": never resend;
- 429 ``throttled``: always retry, after ``Retry-After`` (capped) when the server sends one;
- 429 ``quota_exceeded``, any other 4xx, validation errors and ``CancelledError``: never.

``Retrier`` runs the decision under an attempt cap, an overall deadline and a per-client budget, with
exponential backoff and full jitter. The first attempt never touches tenacity, so the success path costs
one ``try``; a fresh ``AsyncRetrying`` is built only when a first attempt has failed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import tenacity

from . import _errors as errors
from ._clock import Clock
from ._hooks import RetryDetails, RetryHook
from ._protocol import Request

__all__ = ["RateLimiter", "Retrier", "RetryBudget", "RetryDecision", "RetryPolicy", "decide"]

T = TypeVar("T")


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


class Retrier:
    """Runs one call with the retry policy: fast path first, tenacity only after a failure."""

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

    async def call(self, request: Request, url: str, attempt: Callable[[int], Awaitable[T]]) -> T:
        """``await attempt(n)`` for n = 1, 2, ... until it succeeds or the policy says stop."""
        self._budget.deposit()
        deadline = self._clock.monotonic() + self.policy.deadline
        try:
            return await attempt(1)
        except Exception as exc:
            first = exc
        if not decide(first, request, self.policy).retry or self._must_stop(first, request, 1, deadline):
            raise first
        await self._pause(request, url, first, 1)
        retrying = tenacity.AsyncRetrying(
            stop=lambda state: self._must_stop(_error(state), request, state.attempt_number + 1, deadline),
            wait=lambda state: self._wait(request, state),
            retry=tenacity.retry_if_exception(lambda exc: decide(exc, request, self.policy).retry),
            before_sleep=lambda state: self._report(request, url, state),
            sleep=self._clock.sleep,
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                return await attempt(try_.retry_state.attempt_number + 1)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _must_stop(self, error: BaseException, request: Request, attempts: int, deadline: float) -> bool:
        """The attempt cap, the deadline, then the budget (spent only when a retry really follows)."""
        if attempts >= self.policy.max_attempts or self._clock.monotonic() >= deadline:
            return True
        return decide(error, request, self.policy).spends_budget and not self._budget.withdraw()

    def backoff(self, request: Request, error: BaseException, attempt: int) -> float:
        """The wait after failed attempt ``attempt``: the server's delay, or full-jitter exponential."""
        wait = decide(error, request, self.policy).wait
        if wait is not None:
            return wait
        ceiling = min(self.policy.backoff_max, self.policy.backoff_initial * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    def _wait(self, request: Request, state: tenacity.RetryCallState) -> float:
        return self.backoff(request, _error(state), state.attempt_number + 1)

    async def _pause(self, request: Request, url: str, error: BaseException, attempt: int) -> None:
        wait = self.backoff(request, error, attempt)
        self._notify(request, url, attempt, wait, error)
        await self._clock.sleep(wait)

    def _report(self, request: Request, url: str, state: tenacity.RetryCallState) -> None:
        self._notify(request, url, state.attempt_number + 1, state.upcoming_sleep, _error(state))

    def _notify(self, request: Request, url: str, attempt: int, wait: float, error: BaseException) -> None:
        self.retries += 1
        if self._on_retry is not None:
            detail = f"{type(error).__name__}: {error}"
            self._on_retry(RetryDetails(request.operation, request.method, url, attempt, wait, detail))


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
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self.throttles = 0

    @property
    def rate(self) -> float | None:
        """The current rate: the configured one, or less while recovering from a throttle."""
        if self._configured is None or self._floor_rate is None:
            return None
        elapsed = self._clock.monotonic() - self._throttled_at
        recovered = self._floor_rate + (self._configured - self._floor_rate) * elapsed / self._recovery
        return min(self._configured, recovered)

    def throttled(self) -> None:
        """The server answered 429 ``throttled``: slow down."""
        self.throttles += 1
        current = self.rate
        if current is None or self._clock.monotonic() - self._throttled_at < self._cooldown:
            return
        self._floor_rate = max(self._min_rate, current * self._factor)
        self._throttled_at = self._clock.monotonic()

    def _reserve(self) -> float:
        rate = self.rate
        if rate is None:
            return 0.0
        now = self._clock.monotonic()
        slot = max(self._next_slot, now)
        wait = slot - now
        if self._max_wait is not None and wait > self._max_wait:
            raise errors.RateLimitError(
                f"client-side rate limit: next slot in {wait:.2f}s (max_wait {self._max_wait}s)",
                retry_after=wait,
            )
        self._next_slot = slot + 1.0 / rate
        return wait

    def slot(self) -> _Slot:
        """``async with limiter.slot():`` one in-flight slot, after this request's turn under the rate."""
        if self._max_wait is not None and self._semaphore.locked():
            raise errors.RateLimitError("client-side concurrency cap reached", retry_after=0.0)
        return _Slot(self)


MIN_SLEEP = 0.001
"""Waits this short aren't slept: a timer and a loop turn cost more than the spacing they would buy, and
a server that admits ``rate`` a second absorbs a millisecond's worth of early requests."""


class _Slot:
    """One in-flight slot (a plain class: ``asynccontextmanager`` costs microseconds per request)."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        limiter = self._limiter
        await limiter._semaphore.acquire()
        try:
            wait = limiter._reserve()
            if wait > MIN_SLEEP:
                await limiter._clock.sleep(wait)
        except BaseException:
            limiter._semaphore.release()
            raise

    async def __aexit__(self, *_: object) -> None:
        self._limiter._semaphore.release()
