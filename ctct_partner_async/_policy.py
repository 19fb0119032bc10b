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

A throttle is not a failure to back off from but a queue to join: its retry waits the server's
``Retry-After`` or a short jitter, then books a turn under the ``RateLimiter``, which the throttle has
just slowed down (or, for a client with no limit of its own, switched on). Those retries spend no
budget and don't count toward ``max_attempts`` (``max_throttle_retries`` and the deadline bound them), so
a job against a limiting server is paced down to what the server admits and fails no row.
"""

from __future__ import annotations

import asyncio
import collections
import random

import attrs
import tenacity

from . import _errors as errors
from ._clock import Clock
from ._hooks import RetryDetails, RetryHook, shown
from ._observe import Observer
from ._protocol import Request

__all__ = ["MIN_SLEEP", "RateLimiter", "Retry", "RetryBudget", "RetryDecision", "RetryPolicy", "decide"]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How hard to retry: attempts, overall deadline, backoff, the ``Retry-After`` cap and the budget.

    The budget lets retries add at most ``budget_ratio`` of the client's last ``budget_window``
    requests, plus a reserve of ``budget_reserve`` retries, so an outage does not multiply the load.
    Retries of 429 ``throttled`` are paced by the rate limiter: they spend no budget and are not counted
    by ``max_attempts``; one call retries at most ``max_throttle_retries`` throttles (and never past the
    deadline). ``RetryPolicy(max_attempts=1, max_throttle_retries=0)`` retries nothing at all.
    """

    max_attempts: int = 6
    max_throttle_retries: int = 50
    deadline: float = 120.0
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    retry_after_cap: float = 30.0
    budget_ratio: float = 0.2
    budget_reserve: float = 20.0
    budget_window: int = 1000


@attrs.frozen
class RetryDecision:
    """``retry`` or not; ``wait`` is a server-given delay, ``None`` for the default backoff.

    ``throttled``: the answer was 429 ``throttled``; its retry is paced by the rate limiter rather than
    backed off (a short jitter only), spends no budget and is not counted by ``max_attempts``.
    """

    retry: bool
    wait: float | None = None
    spends_budget: bool = True
    throttled: bool = False


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
            return RetryDecision(True, wait, spends_budget=False, throttled=True)
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
        self.observer: Observer | None = None  # set by ``Pipeline.observe``

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
        """The wait after failed attempt ``attempt``: the server's delay, or full-jitter exponential.

        A throttle without ``Retry-After`` waits a jitter of at most ``backoff_initial`` whatever the
        attempt: the rate limiter, slowed by that throttle, spaces the retry; growing waits on top would
        only leave the server's capacity unused.
        """
        if decision.wait is not None:
            return decision.wait
        if decision.throttled:
            return self._rng.uniform(0, min(self.policy.backoff_initial, self.policy.backoff_max))
        ceiling = min(self.policy.backoff_max, self.policy.backoff_initial * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    def _notify(self, request: Request, url: str, attempt: int, wait: float, error: BaseException) -> None:
        self.retries += 1
        on_retry, observer = self._on_retry, self.observer
        if on_retry is not None or observer is not None:
            detail = f"{type(error).__name__}: {error}"
            details = RetryDetails(
                request.operation, request.method, shown(url), attempt, wait, detail, error
            )
            if on_retry is not None:
                on_retry(details)
            if observer is not None:
                observer.retried(details)


class _Run:
    """One failing call under tenacity: one ``RetryDecision`` per failure feeds wait, stop and budget.

    tenacity asks ``retry`` first, then ``wait``, then ``stop``, then ``before_sleep``.
    """

    __slots__ = ("_deadline", "_decision", "_request", "_retry", "_throttles", "_url")

    def __init__(self, retry: Retry, request: Request, url: str, deadline: float) -> None:
        self._retry = retry
        self._request = request
        self._url = url
        self._deadline = deadline
        self._decision = NO_RETRY
        self._throttles = 0  # failed attempts that were throttles: not counted by max_attempts

    def retry(self, state: tenacity.RetryCallState) -> bool:
        self._decision = decide(_error(state), self._request, self._retry.policy)
        if self._decision.throttled:
            self._throttles += 1
        return self._decision.retry

    def wait(self, state: tenacity.RetryCallState) -> float:
        return self._retry.backoff(self._decision, state.attempt_number - self._throttles)

    def stop(self, state: tenacity.RetryCallState) -> bool:
        """The attempt caps (throttles counted apart), the deadline (no sleep past it), then the budget
        (spent only when a retry really follows)."""
        retry, policy = self._retry, self._retry.policy
        if self._decision.throttled:
            if self._throttles > policy.max_throttle_retries:
                return True
        elif state.attempt_number - self._throttles >= policy.max_attempts:
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


class _Meter:
    """Events a second over the last second: two one-second buckets, the older weighted by its overlap."""

    __slots__ = ("_before", "_count", "_start")

    def __init__(self) -> None:
        self._start = -float("inf")
        self._count = 0
        self._before = 0

    def add(self, now: float) -> None:
        elapsed = now - self._start
        if elapsed >= 1.0:
            self._before = self._count if elapsed < 2.0 else 0
            self._start = self._start + 1.0 if elapsed < 2.0 else now
            self._count = 0
        self._count += 1

    def rate(self, now: float) -> float:
        elapsed = now - self._start
        if elapsed >= 2.0:
            return 0.0
        if elapsed >= 1.0:
            return self._count * (2.0 - elapsed)
        return self._before * (1.0 - elapsed) + self._count


class RateLimiter:
    """A client-side limit on requests per second and on requests in flight, shared by all coroutines.

    Requests are spaced ``1/rate`` apart (a token bucket with a burst of one), so a server that admits
    ``rate`` a second never sees a burst above it. On a 429 ``throttled`` the rate is cut by
    ``backoff_factor`` (another process may share the API key), then climbs back linearly, regaining
    what a cut by ``backoff_factor`` takes off over ``recovery_time`` seconds, until it is back at the
    configured rate (botocore's adaptive mode and TCP's AIMD in spirit). A cut is answered by throttles of
    requests sent before it: for ``cooldown`` seconds, and until every turn booked before it has gone,
    throttles don't cut again. With ``max_wait`` set, a caller that would wait longer for its turn, or
    find every in-flight slot taken, gets ``RateLimitError`` at once instead (for web handlers).

    With no configured rate (``None``) nothing is spaced until the server throttles; the limiter only
    counts what it lets through (over a sliding second) and what is answered. The first throttle turns on
    a *learned* limit: the rate sent over the last second is taken as if it had been configured, and cut
    by ``backoff_factor``. A later cut takes off the share of answers refused since the last throttle
    (the one that ended the quiet period included), at most ``backoff_factor`` of it: a throttle now and
    then, from a server admitting nearly all, costs only its share; a rate far above the server's is
    halved, cut after cut, down to it. After ``forget_after`` seconds without a throttle the learned
    limit is dropped: the server has stopped limiting.
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
        forget_after: float = 60.0,
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
        self._regain = (1.0 - backoff_factor) / backoff_factor / recovery_time  # per second, of the floor
        self._cooldown = cooldown
        self._forget_after = forget_after
        self._min_rate = min(min_rate, rate) if rate else min_rate
        self._ceiling = rate  # the configured or learned rate, recovered to after a cut; None: no limit
        self._floor_rate = rate  # the rate just after the last cut
        self._throttled_at = -float("inf")  # the last cut
        self._climb_from = -float("inf")  # when the rate starts to climb back after it
        self._quiet_until = -float("inf")  # throttles before this answer requests sent before the last cut
        self._next_slot = -float("inf")
        self._learns = rate is None  # no configured rate: a limit is learned from throttles
        self._sent = _Meter()  # requests let through (counted only by a limiter that learns)
        self._answered = self._refused = 0  # answers and throttles since the last throttle (or cut)
        self._free = max_concurrency
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.throttles = 0

    @property
    def rate(self) -> float | None:
        """The current rate: the configured or learned one, or less after a cut; ``None``: no limit."""
        ceiling, floor = self._ceiling, self._floor_rate
        if ceiling is None or (not self._learns and floor is not None and floor >= ceiling):
            return ceiling  # no limit, or the configured rate with no recovery under way: no clock read
        return self._rate_at(self._clock.monotonic())

    @property
    def learned(self) -> bool:
        """Whether a limit learned from throttles is in force (the client has no configured rate)."""
        return self._learns and self._ceiling is not None

    def _rate_at(self, now: float) -> float | None:
        ceiling, floor = self._ceiling, self._floor_rate
        if ceiling is None or floor is None:
            return None
        if floor < ceiling:
            rate = floor * (1.0 + self._regain * max(0.0, now - self._climb_from))
            if rate < ceiling:
                return rate
            self._floor_rate = ceiling  # recovered: no arithmetic on later calls
        if self._learns and now - self._throttled_at >= self._forget_after:
            self._ceiling = self._floor_rate = None  # no throttle for a long while: drop the learned limit
            return None
        return ceiling

    def throttled(self) -> None:
        """The server answered 429 ``throttled``: slow down (with no limit yet: start limiting)."""
        self.throttles += 1
        now = self._clock.monotonic()
        self._refused += 1
        if now < self._quiet_until:  # an answer to a request sent before the cut: count from here on
            self._answered = self._refused = 0
            return
        current = self._rate_at(now)
        if current is None:  # the first throttle: start from the rate that was being sent
            self._ceiling = current = max(self._min_rate, self._sent.rate(now))
            floor = current * self._factor
        elif self._learns:  # a learned limit: cut by the share just refused, by backoff_factor at most
            refused = self._refused / max(self._answered, self._refused)
            floor = current * max(self._factor, 1.0 - refused)
        else:
            floor = current * self._factor
        self._answered = self._refused = 0
        self._floor_rate = max(self._min_rate, floor)
        self._throttled_at = now
        self._climb_from = max(now, self._next_slot)  # once the turns booked before the cut have gone
        self._quiet_until = max(now, self._next_slot) + self._cooldown

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
        self._answered += 1  # an answer (or an error) came back
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
        if self._ceiling is None:  # no limit: count what goes through, for a first throttle to learn from
            self._sent.add(self._clock.monotonic())
            return 0.0
        now = self._clock.monotonic()
        rate = self._rate_at(now)
        if self._learns:  # counted under a learned limit too: a throttle just after it drops needs them
            self._sent.add(now)
        if rate is None:  # a learned limit just dropped
            return 0.0
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
