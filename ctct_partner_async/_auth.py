"""Where the partner JWT comes from: the ``TokenProvider`` seam and the client-credentials ``TokenManager``.

``PartnerClient`` asks its provider for a token before each call and tells it which token a 401 refused.
Pass your own provider (an object with ``get_token``, or any async callable returning the JWT) or let
the client build the client-credentials manager from ``client_id`` and ``client_secret``.

The manager's lifecycle, for a token that expires at ``E`` (monotonic clock)::

    fresh ........ E - advisory_window ..................... E - mandatory_window ......... E
    served as is   renewed in the background; callers keep      too close to expiry to send:
                   the valid token whatever the renewal does    callers wait for a new one,
                   (a failed one is tried again after a backoff) each up to its deadline

One token request is in flight at a time, whatever the concurrency, and the next one starts at least
``min_interval`` after the last one ended, so two never reach the endpoint closer than that. A client's
very first request waits a random part of ``first_request_jitter``, so workers started together on one
client id don't all ask at once.

A failed request is *transient* when the pipeline's retry decision would retry it (connect errors,
timeouts, 5xx, 429 ``throttled``: the token request is idempotent), else *final* (refused credentials,
another 4xx, an answer without a token). Transient failures are asked again, with full-jitter backoff,
for as long as some caller waits, each caller up to its own deadline (the retry policy's ``deadline``
from when it started waiting, kept by a timer even while a request hangs); then it raises
``TokenUnavailableError`` with the last cause. The backoff (or a Retry-After) belongs to the client, not
to one renewal: the next renewal waits for it too. A final failure reaches every waiter at once, and
callers in the next ``min_interval`` get it without a request.

A valid token is never thrown away: callers wait only in the mandatory window (or with no token at all);
before it they keep the held token whatever the renewal does. ``invalidate`` is compare-and-clear, so a
thousand 401s on one revoked token cause one renewal.

With a :class:`SharedTokenCache` (``RedisTokenCache``), all of this holds across processes: the
renewer takes the cache's lock, reads the cache once more, asks, writes and releases; the others watch
the cache instead of the endpoint; a refused token is discarded from the cache only if it is still the
one there. When the cache does not answer, each manager renews on its own (logged once) until it does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import NoReturn, Protocol, TypeVar, runtime_checkable

import attrs

from . import _errors as errors
from ._clock import SYSTEM_CLOCK, Clock, Timer, call_later
from ._flight import SingleFlight
from ._policy import RetryDecision, RetryPolicy, decide
from ._protocol import AsyncTransport, Request, Response, credential_secrets, error_for, scrub
from ._tokens import (
    ADVISORY,
    CREDENTIAL_STATUSES,
    DEFAULT_SCOPE,
    FRESH,
    MANDATORY,
    CachedToken,
    Token,
    basic_auth,
    build_token_request,
    describe_refusal,
    fresh_until,
    from_cached,
    parse_token_response,
    renewal_phase,
    to_cached,
)

__all__ = [
    "MemoryTokenCache",
    "SharedTokenCache",
    "TokenCache",
    "TokenManager",
    "TokenProvider",
    "TokenRefresh",
    "TokenSettings",
    "as_token_provider",
    "log_token_refresh",
]

_T = TypeVar("_T")

logger = logging.getLogger("ctct_partner_async.auth")  # a stable name, not the private module's

INITIAL = "initial"
UNAUTHORIZED = "unauthorized"
OK = "ok"
ERROR = "error"


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:  # NaN too
        rule = "must be more than 0"
        raise errors.ValidationError([errors.FieldError(f"token_settings.{attribute.name}", rule)])


def _not_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:  # NaN too
        rule = "cannot be negative"
        raise errors.ValidationError([errors.FieldError(f"token_settings.{attribute.name}", rule)])


@attrs.frozen(kw_only=True)
class TokenSettings:
    """When to renew the JWT and how to treat the token endpoint.

    ``advisory_window`` seconds before expiry a renewal starts in the background while callers keep the
    still-valid token, whatever that renewal does; in the last ``mandatory_window`` seconds the token is
    too close to expiry to send and callers wait for the new one (the windows are capped at a half and a
    quarter of the token's lifetime). The token endpoint is never asked more than once per
    ``min_interval``; a client's first request waits a random 0 to ``first_request_jitter`` seconds (set
    0 when a single process uses the client id). After a failed request the next one waits a full-jitter
    backoff over a ceiling from ``backoff_initial`` seconds, doubling up to ``backoff_max`` (or the
    server's Retry-After, if longer).

    With a :class:`SharedTokenCache` (Redis), one renewal runs at a time for every process on the client
    id: the renewer holds a lock of ``lock_ttl`` seconds (longer than a token request should take: one
    that outlasts it lets the next process ask too; a killed holder delays the others at most that
    long), and the others check the cache every ``poll_interval`` seconds until the new token is there
    or the lock is free. After a failure the renewer keeps the lock for its backoff (at least
    ``min_interval``), so the processes together ask a failing endpoint no faster than one of them.
    """

    advisory_window: float = attrs.field(default=300.0, validator=_not_negative)
    mandatory_window: float = attrs.field(default=10.0, validator=_not_negative)
    min_interval: float = attrs.field(default=1.0, validator=_not_negative)
    backoff_initial: float = attrs.field(default=1.0, validator=_not_negative)
    backoff_max: float = attrs.field(default=20.0, validator=_not_negative)
    first_request_jitter: float = attrs.field(default=0.5, validator=_not_negative)
    lock_ttl: float = attrs.field(default=10.0, validator=_positive)
    poll_interval: float = attrs.field(default=0.05, validator=_positive)
    scope: str | None = DEFAULT_SCOPE

    def __attrs_post_init__(self) -> None:
        if self.mandatory_window > self.advisory_window:
            rule = "cannot be longer than advisory_window"
            raise errors.ValidationError([errors.FieldError("token_settings.mandatory_window", rule)])


@attrs.frozen(kw_only=True)
class TokenRefresh:
    """What ``on_token_refresh`` hears about one token request (never the token itself).

    ``reason`` is ``"initial"``, ``"advisory"`` (background, before expiry), ``"mandatory"`` (callers
    waited) or ``"unauthorized"`` (the API refused the token); ``duration`` is in seconds by the client's
    clock; ``outcome`` is ``"ok"`` or ``"error"``, with the ``error`` and the endpoint's HTTP ``status``.
    ``attempt`` counts the requests of one renewal: every failed one is reported, ``retrying`` says
    whether another follows.
    """

    reason: str
    duration: float
    outcome: str
    error: BaseException | None = None
    status: int | None = None
    attempt: int = 1
    retrying: bool = False


def log_token_refresh(detail: TokenRefresh) -> None:
    """The default ``on_token_refresh``: one line on ``ctct_partner_async.auth``, never the token. INFO for
    a renewal, and for a throttled request that is asked again (other workers share the endpoint's 1/s:
    expected, not a fault); WARNING for any other failure. Its fields in ``extra``: ``reason``,
    ``duration``, ``outcome``, ``status``, ``attempt``, ``retrying`` and ``error_type``."""
    error_type = type(detail.error).__name__ if detail.error is not None else None
    extra = {"reason": detail.reason, "duration": detail.duration, "outcome": detail.outcome,
             "status": detail.status, "attempt": detail.attempt, "retrying": detail.retrying,
             "error_type": error_type}  # fmt: skip
    if detail.outcome == OK:
        logger.info("partner token renewed (%s) in %.3fs", detail.reason, detail.duration, extra=extra)
    else:
        level = logging.INFO if detail.retrying and detail.status == 429 else logging.WARNING
        logger.log(
            level,
            "partner token renewal (%s) failed after %.3fs: %s%s",
            detail.reason,
            detail.duration,
            detail.error,
            f" (attempt {detail.attempt}; asking again)" if detail.retrying else "",
            extra=extra,
        )


@runtime_checkable
class TokenProvider(Protocol):
    """Gives the current JWT and hears which one the API refused."""

    async def get_token(self) -> str:
        """The JWT to send now."""
        ...

    def invalidate(self, token: str) -> None:
        """Forget ``token`` if it is still the current one: the API answered 401 to it."""
        ...


class _CallableProvider:
    """A ``TokenProvider`` over an async callable; a refused token is simply asked for again."""

    def __init__(self, fetch: Callable[[], Awaitable[str]]) -> None:
        self._fetch = fetch

    async def get_token(self) -> str:
        return await self._fetch()

    def invalidate(self, token: str) -> None:
        pass

    def __repr__(self) -> str:
        return f"<token provider {getattr(self._fetch, '__qualname__', 'callable')}>"


def as_token_provider(value: object) -> TokenProvider:
    """``value`` as a ``TokenProvider``: an object with ``get_token`` or an async callable."""
    if isinstance(value, TokenProvider):
        return value
    get_token = getattr(value, "get_token", None)
    if callable(get_token):
        return _CallableProvider(get_token)
    if callable(value):
        return _CallableProvider(value)
    raise TypeError("token_provider must have get_token() and invalidate(), or be an async callable")


class TokenCache(Protocol):
    """Where a renewed token is kept, by key, with its wall-clock expiry.

    The manager serves from its own copy; it reads the cache only before asking the token endpoint
    (another process may hold a fresher token) and writes it after. Async, so a store shared between
    processes fits behind it. A cache may forget entries whenever it likes.
    """

    async def get(self, key: str) -> CachedToken | None: ...

    async def set(self, key: str, token: CachedToken) -> None: ...


@runtime_checkable
class SharedTokenCache(TokenCache, Protocol):
    """A ``TokenCache`` several processes share, that also runs one renewal at a time for all of them.

    ``lock`` takes the renewal lock of ``key`` for ``owner`` (or extends it if ``owner`` holds it already)
    for ``ttl`` seconds, and says whether it did: ``False`` when another holder has it; ``unlock``
    releases it only for that owner (or keeps it ``keep`` seconds longer: a backoff); ``discard`` forgets
    the entry only if it still holds ``value`` (a token the API refused).
    :class:`~ctct_partner_async.shared.RedisTokenCache` is one.
    """

    async def lock(self, key: str, owner: str, ttl: float) -> bool: ...

    async def unlock(self, key: str, owner: str, *, keep: float = 0.0) -> None: ...

    async def discard(self, key: str, value: str) -> None: ...


CACHE_RETRY = 5.0
"""Seconds a manager leaves a cache that failed alone (renewing on its own) before trying it again."""
OWNED = "owned"
"""``_lock``'s answer when this manager holds the shared lock: it renews, writes and releases."""
LOCKED = "locked elsewhere"
"""``_lock``'s answer when another process renews: watch the cache."""
ALONE = "alone"
"""``_lock``'s answer without a shared cache, or when it does not answer: renew without a lock."""


class MemoryTokenCache:
    """The default ``TokenCache``: a dict in this process; entries past their expiry are dropped."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._entries: dict[str, CachedToken] = {}

    async def get(self, key: str) -> CachedToken | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= self._clock.time():
            del self._entries[key]
            return None
        return entry

    async def set(self, key: str, token: CachedToken) -> None:
        self._entries[key] = token

    def __repr__(self) -> str:
        return f"<MemoryTokenCache {len(self._entries)} entries>"


@attrs.frozen
class _Failure:
    """A renewal that gave no token: what the callers waiting for it raise (each its own exception)."""

    message: str
    cause: BaseException | None
    at: float
    fail_fast: bool
    kind: type[errors.CtctError] = errors.AuthenticationError

    def raise_error(self) -> NoReturn:
        raise self.kind(self.message) from self.cause


_Outcome = str | _Failure
NO_TOKEN = RetryDecision(False)
"""The decision for a failure with no cause to decide on (never retried)."""


@attrs.define(eq=False)
class _Waiter:
    """A caller waiting for a token until its ``deadline`` (monotonic), when ``timer`` gives up for it;
    ``requests`` counts the token requests started before it came."""

    deadline: float
    future: asyncio.Future[_Outcome]
    requests: int
    timer: Timer | None = None


class TokenManager:
    """Client-credentials tokens: fetched on demand, renewed before expiry, one request at a time.

    ``on_token_refresh`` hears about every token request (default: :func:`log_token_refresh`); ``cache``
    keeps renewed tokens (default: a :class:`MemoryTokenCache`); ``retry_policy`` gives the transient
    failures the client's retry decision and each waiting caller its deadline. Call :meth:`aclose` when
    done: it stops a renewal in flight. Neither the secret nor the token ever shows in a repr, a log
    record or an error.
    """

    def __init__(
        self,
        *,
        transport: AsyncTransport,
        token_url: str,
        client_id: str,
        client_secret: str,
        settings: TokenSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
        on_token_refresh: Callable[[TokenRefresh], None] | None = None,
        cache: TokenCache | None = None,
        retry_policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._transport = transport
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._settings = settings or TokenSettings()
        self._clock = clock
        self._on_refresh = on_token_refresh or log_token_refresh
        self.observer: Callable[[TokenRefresh], None] | None = None
        """Hears every token request after ``on_token_refresh`` (``telemetry.instrument`` sets it)."""
        self._cache: TokenCache = cache if cache is not None else MemoryTokenCache(clock)
        self._shared = cache if isinstance(cache, SharedTokenCache) else None
        self._owner = secrets.token_hex(16)  # this manager's id as the holder of the shared lock
        self._cache_answers = True  # the cache's failures are logged once, and its recovery
        self._cache_down_until = -math.inf  # after a failure the cache is left alone for CACHE_RETRY
        self._policy = retry_policy or RetryPolicy()
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._request = build_token_request(token_url, self._settings.scope)
        self._cache_key = f"{token_url} {client_id} {self._settings.scope or ''}"
        self._token: Token | None = None
        self._fresh_until = -math.inf
        self._renewal: SingleFlight[None] = SingleFlight("token renewal")
        self._waiters: list[_Waiter] = []
        self._failure: _Failure | None = None
        self._refused: str | None = None
        self._discard: str | None = None  # the refused token, until it is discarded from a shared cache
        self._cleared_reason = INITIAL
        self._last_request_at = -math.inf
        self._requests = 0
        self._in_flight = False
        self._preparing = False  # reading the shared cache or taking its lock, before a request
        self._failures = 0  # failed requests in a row
        self._retry_at = -math.inf  # after a failure: no request before this (backoff or Retry-After)
        self._closed = False

    def __repr__(self) -> str:
        return f"<TokenManager {self._token_url} client_id={self._client_id!r}>"

    async def get_token(self) -> str:
        """The JWT to send now: the held one before its mandatory window (renewed in the background once
        due), else a new one, waited for up to the retry policy's deadline.

        ``TokenUnavailableError`` if the endpoint kept failing until this call's deadline,
        ``CredentialsRefusedError`` if it refused the credentials, ``AuthenticationError`` for any
        other failure (its ``__cause__`` says why).
        """
        token = self._token
        now = self._clock.monotonic()
        settings = self._settings
        phase = renewal_phase(token, now, settings.advisory_window, settings.mandatory_window)
        if token is not None and phase != MANDATORY:
            if phase != FRESH:
                self._renew_in_background(now)
            return token.value
        return await self._wait_for_token(now)

    def fresh_token(self) -> str | None:
        """The held token if it needs no renewal yet: ``get_token``'s answer without an await, or ``None``."""
        token = self._token
        if token is not None and self._clock.monotonic() < self._fresh_until:
            return token.value
        return None

    def invalidate(self, token: str) -> None:
        """Forget ``token`` only if it is still the one held (compare-and-clear): the API refused it."""
        current = self._token
        if current is not None and current.value == token:
            self._token = None
            self._fresh_until = -math.inf
            self._refused = self._discard = token
            self._cleared_reason = UNAUTHORIZED

    async def aclose(self) -> None:
        """Stop: cancel a renewal in flight and wait for it to end; its waiters get ``ClientClosedError``.
        Safe to call twice."""
        self._closed = True
        await self._renewal.close()
        self._settle(self._closed_failure())  # a renewal cancelled before its first step settled nobody

    # -- callers ------------------------------------------------------------------------------------------
    def _usable(self, token: Token, now: float) -> bool:
        """Whether ``token`` may still be sent: it is not in its mandatory window."""
        settings = self._settings
        return renewal_phase(token, now, settings.advisory_window, settings.mandatory_window) != MANDATORY

    def _renew_in_background(self, now: float) -> None:
        """Start a renewal behind the callers if none runs and a request may go now."""
        if self._renewal.running is None and not self._closed and now >= self._next_request_at():
            self._start(ADVISORY)

    def _next_request_at(self) -> float:
        """``min_interval`` after the last request, not before the last failure's backoff or Retry-After."""
        return max(self._retry_at, self._last_request_at + self._settings.min_interval)

    async def _wait_for_token(self, now: float) -> str:
        if self._closed:
            raise errors.ClientClosedError("this client is closed; create a new one")
        failure = self._failure
        if failure is not None and failure.fail_fast and now - failure.at < self._settings.min_interval:
            failure.raise_error()
        future: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(now + self._policy.deadline, future, self._requests)
        waiter.timer = call_later(self._clock, self._policy.deadline, lambda: self._give_up(waiter))
        self._waiters.append(waiter)
        try:
            if self._renewal.running is None:
                self._start(MANDATORY if self._token is not None else self._cleared_reason)
            outcome = await future  # a cancelled caller cancels only its own future
        finally:
            waiter.timer.cancel()
        if isinstance(outcome, _Failure):
            outcome.raise_error()
        return outcome

    def _give_up(self, waiter: _Waiter) -> None:
        """A caller's deadline has come: it gets the failure, unless the request in flight is the first one
        sent since it came (a deadline bounds the waiting beyond that request, as the retry policy's bounds
        retries, not a first attempt; that request is bounded by the transport's timeouts)."""
        if waiter.future.done():
            return
        if self._in_flight and self._requests == waiter.requests + 1:
            return  # the renewal settles it when this request ends: with the token, or (late) the failure
        if self._preparing and self._requests == waiter.requests:
            return  # the shared cache is being read for that first request: settled as above, or when
            # the renewal next waits (for pacing, or for another process's token)
        waiter.future.set_result(self._late())

    def _start(self, reason: str) -> None:
        self._renewal.start(self._renew(reason), at=self._clock.monotonic())

    def _live_waiters(self) -> list[_Waiter]:
        return [w for w in self._waiters if not w.future.done()]

    def _settle(self, outcome: _Outcome, *, due: float = math.inf) -> None:
        """Give ``outcome`` to every waiter whose deadline comes before ``due`` (all by default)."""
        keep: list[_Waiter] = []
        for waiter in self._live_waiters():
            if waiter.deadline < due:
                waiter.future.set_result(outcome)
            else:
                keep.append(waiter)
        self._waiters = keep

    def _late(self) -> _Failure:
        """What a caller whose deadline comes before a token raises: the last transient failure, if any."""
        failure = self._failure
        if failure is not None and not failure.fail_fast:
            return failure
        message = (
            f"no token from {self._token_url} within the call's deadline (the endpoint is asked at most "
            "once per min_interval, and not again before a failure's backoff)"
        )
        return _Failure(message, None, self._clock.monotonic(), False, errors.TokenUnavailableError)

    def _closed_failure(self) -> _Failure:
        message = "the client was closed during the token renewal"
        return _Failure(message, None, self._clock.monotonic(), False, errors.ClientClosedError)

    # -- the renewal (runs as the single task) ------------------------------------------------------------
    async def _renew(self, reason: str) -> None:
        """Renew, asking again while callers wait; settles every waiter and never raises (but for
        cancellation), so nothing is left unretrieved."""
        try:
            await self._renew_while_needed(reason)
        except asyncio.CancelledError:
            self._settle(self._closed_failure())
            raise
        except Exception as exc:  # a bug or a broken hook must reach the waiters, not the event loop
            message = f"token renewal from {self._token_url} failed unexpectedly ({type(exc).__name__})"
            error = errors.AuthenticationError(message)
            error.__cause__ = exc
            self._settle(self._failed(reason, error, self._clock.monotonic(), self._failures + 1))

    async def _renew_while_needed(self, reason: str) -> None:
        """Ask until a token comes, a final failure, or (after a failure) nobody waits any more."""
        first = self._first_request_at()
        asked = False
        while True:
            if self._take_cached(reason, await self._look(self._from_cache())):
                return
            await self._pace(first)
            if asked and not self._live_waiters():
                return  # everyone it asked again for has given up meanwhile
            lock = await self._look(self._lock())
            if lock == LOCKED:  # another process renews: watch for its token
                held = self._token
                if not self._live_waiters() and (
                    held is None or not self._usable(held, self._clock.monotonic())
                ):
                    return
                poll = self._settings.poll_interval
                # callers whose deadline comes before the next look give up now
                self._settle(self._late(), due=self._clock.monotonic() + poll)
                await self._clock.sleep(poll)
                continue
            keep = 0.0
            try:
                if lock == OWNED and self._take_cached(reason, await self._look(self._from_cache())):
                    return  # it came while the lock was being taken
                asked = True
                done, keep = await self._ask(reason, owned=lock == OWNED)
            finally:
                if lock == OWNED:
                    await self._unlock(keep)
            if done:
                return

    async def _look(self, step: Awaitable[_T]) -> _T:
        """A step at the shared cache before a request (a read, the lock): a caller's deadline does not cut
        it short, as it does not cut short the first request sent for it."""
        self._preparing = True
        try:
            return await step
        finally:
            self._preparing = False

    def _take_cached(self, reason: str, cached: Token | None) -> bool:
        """Hold and hand out ``cached`` (another holder's token), if there is one."""
        if cached is None:
            return False
        logger.debug("partner token taken from the cache (%s)", reason)
        self._hold(cached)
        self._settle(cached.value)
        return True

    async def _ask(self, reason: str, *, owned: bool = False) -> tuple[bool, float]:
        """One token request and what follows it: whether the renewal is done, and how long after a
        failure nobody else on the client id should ask (its backoff, and at least ``min_interval``).
        ``owned``: the shared lock is held, so the token is written to the cache even while it rests."""
        started = self._clock.monotonic()
        attempt = self._failures + 1
        try:
            token = await self._counted_request()
        except errors.AuthenticationError as exc:
            decision = decide(exc.__cause__, self._request, self._policy) if exc.__cause__ else NO_TOKEN
            transient = decision.retry and not isinstance(exc, errors.CredentialsRefusedError)
            held = self._token
            if held is not None and self._usable(held, self._clock.monotonic()):
                # a valid token is never thrown away: keep it; renewal goes on after the backoff
                self._failed(reason, exc, started, attempt, decision, transient=transient, retrying=True)
                self._settle(held.value)
                return True, self._backoff()
            waiting = transient and bool(self._live_waiters())
            failure = self._failed(
                reason, exc, started, attempt, decision, transient=transient, retrying=waiting
            )
            if not waiting:
                self._settle(failure)
                return True, self._backoff()
            return False, self._backoff()
        self._succeeded(reason, token, started, attempt)
        await self._to_cache(token, force=owned)
        if self._token is token or not self._live_waiters():
            self._settle(token.value)
            return True, 0.0
        return False, 0.0  # the API refused it while it was being cached: ask again for those who wait

    def _backoff(self) -> float:
        """After a failed request: the seconds before the next may go (at least ``min_interval``, which
        paces the endpoint after a final failure too)."""
        return max(self._settings.min_interval, self._retry_at - self._clock.monotonic())

    def _first_request_at(self) -> float:
        """The random moment within ``first_request_jitter`` the client's very first request waits for
        (``-inf`` for any later one)."""
        jitter = self._settings.first_request_jitter
        if self._requests or jitter <= 0:
            return -math.inf
        return self._clock.monotonic() + self._rng.uniform(0, jitter)

    async def _pace(self, first: float) -> None:
        """Wait for the next request's moment: ``min_interval`` after the last one, the last failure's
        backoff or Retry-After, and the first request's jitter (which no caller's deadline waits for).
        Callers whose deadline comes earlier get their failure now."""
        at = self._next_request_at()
        if first > at:
            at = max(at, min([first, *(w.deadline for w in self._live_waiters())]))
        now = self._clock.monotonic()
        if at > now:
            self._settle(self._late(), due=at)
            await self._clock.sleep(at - now)

    def _retry_wait(self, decision: RetryDecision, attempt: int) -> float:
        """Seconds before asking again after failed ``attempt``: full jitter over a doubling ceiling, and
        never less than the server's ``Retry-After``."""
        settings = self._settings
        ceiling = min(settings.backoff_max, settings.backoff_initial * 2 ** (attempt - 1))
        return max(decision.wait or 0.0, self._rng.uniform(0, ceiling))

    async def _counted_request(self) -> Token:
        """``_request_token``, counted and marked in flight; ``min_interval`` counts from its end."""
        self._requests += 1
        self._in_flight = True
        try:
            return await self._request_token()
        finally:
            self._in_flight = False
            self._last_request_at = self._clock.monotonic()

    async def _request_token(self) -> Token:
        """One token request; ``AuthenticationError`` with the cause if it yields no token."""
        request = self._request
        headers = {"Authorization": basic_auth(self._client_id, self._client_secret)}
        try:
            response = await self._transport.send(request, headers)
        except errors.TransportError as exc:
            raise errors.AuthenticationError(f"token endpoint {self._token_url} unreachable: {exc}") from exc
        if response.status != 200:
            message = scrub(describe_refusal(self._token_url, response), self._secrets())
            refused = response.status in CREDENTIAL_STATUSES  # wrong credentials: never worth asking again
            cls = errors.CredentialsRefusedError if refused else errors.AuthenticationError
            raise cls(message) from self._status_error(request, response)
        try:
            return parse_token_response(
                response, received_mono=self._clock.monotonic(), received_wall=self._clock.time()
            )
        except ValueError as exc:
            raise errors.AuthenticationError(f"token endpoint {self._token_url}: {exc}") from exc

    def _status_error(self, request: Request, response: Response) -> errors.APIError:
        now = dt.datetime.fromtimestamp(self._clock.time(), dt.UTC)
        return error_for(request.method, self._token_url, response, now=now, secrets=self._secrets())

    def _secrets(self) -> tuple[str, ...]:
        """What a token request carries that an error answer must not repeat."""
        basic = basic_auth(self._client_id, self._client_secret)
        return (self._client_secret, *credential_secrets({"Authorization": basic}, None))

    # -- bookkeeping --------------------------------------------------------------------------------------
    def _hold(self, token: Token) -> None:
        self._token = token
        self._fresh_until = fresh_until(token, self._settings.advisory_window)
        self._failure = None
        self._failures = 0
        self._retry_at = -math.inf

    def _succeeded(self, reason: str, token: Token, started: float, attempt: int) -> None:
        self._hold(token)
        duration = self._clock.monotonic() - started
        self._emit(TokenRefresh(reason=reason, duration=duration, outcome=OK, attempt=attempt))

    def _failed(
        self,
        reason: str,
        error: errors.AuthenticationError,
        started: float,
        attempt: int,
        decision: RetryDecision = NO_TOKEN,
        *,
        transient: bool = False,
        retrying: bool = False,
    ) -> _Failure:
        """Note a failed request: the failure waiters get (``TokenUnavailableError`` if transient), and when
        the next request may go (a full-jitter backoff, or the server's Retry-After)."""
        now = self._clock.monotonic()
        cause = error.__cause__
        status = getattr(cause, "status", None)
        kind = errors.TokenUnavailableError if transient else type(error)
        self._failure = _Failure(str(error), cause, now, not transient, kind)
        self._failures += 1
        # a final failure is only paced by min_interval: refused credentials fail fast, not after a backoff
        self._retry_at = now + self._retry_wait(decision, self._failures) if transient else -math.inf
        detail = TokenRefresh(
            reason=reason, duration=now - started, outcome=ERROR, error=error, status=status,
            attempt=attempt, retrying=retrying,
        )  # fmt: skip
        self._emit(detail)
        return self._failure

    def _emit(self, detail: TokenRefresh) -> None:
        for name, hook in (("on_token_refresh hook", self._on_refresh), ("token observer", self.observer)):
            if hook is None:
                continue
            try:
                hook(detail)
            except Exception as exc:  # instrumentation must not break authentication
                logger.warning("%s raised %s; ignored", name, type(exc).__name__)

    # -- the cache seam -----------------------------------------------------------------------------------
    def _cache_failed(self, exc: Exception) -> None:
        """A cache call failed: the manager goes on alone (its own requests) and tries the cache again
        after ``CACHE_RETRY``; said once per outage."""
        self._cache_down_until = self._clock.monotonic() + CACHE_RETRY
        if self._cache_answers:
            self._cache_answers = False
            logger.warning(
                "token cache did not answer (%s); renewing without it until it does", type(exc).__name__
            )

    def _cache_resting(self) -> bool:
        return self._clock.monotonic() < self._cache_down_until

    def _cache_answered(self) -> None:
        if not self._cache_answers:
            self._cache_answers = True
            logger.info("token cache answers again")

    async def _from_cache(self) -> Token | None:
        """A fresh token another holder put in the cache, if there is one (never the refused one). A
        refused token still there is removed first, unless another holder has replaced it."""
        if self._cache_resting():
            return None
        try:
            if self._shared is not None and self._discard is not None:
                await self._shared.discard(self._cache_key, self._discard)
                self._discard = None
            cached = await self._cache.get(self._cache_key)
        except Exception as exc:  # a broken shared cache must not stop authentication
            self._cache_failed(exc)
            return None
        self._cache_answered()
        held = self._token.value if self._token is not None else None
        if cached is None or cached.value in (held, self._refused):
            return None
        now = self._clock.monotonic()
        token = from_cached(cached, now_mono=now, now_wall=self._clock.time())
        return token if self._usable(token, now) else None  # one due for renewal is still served

    async def _to_cache(self, token: Token, *, force: bool = False) -> None:
        """Share ``token``; skipped while the cache rests after a failure, unless ``force`` (the shared
        lock is held: the others wait for this write)."""
        if self._cache_resting() and not force:
            return
        cached = to_cached(token, now_mono=self._clock.monotonic(), now_wall=self._clock.time())
        try:
            await self._cache.set(self._cache_key, cached)
        except Exception as exc:  # the token is held already; the cache is a convenience
            self._cache_failed(exc)
        else:
            self._cache_answered()

    async def _lock(self) -> str:
        """Take the shared renewal lock: ``OWNED``, ``LOCKED`` if another process holds it, or ``ALONE``
        without a shared cache (or when it does not answer: renew without it rather than fail)."""
        if self._shared is None or self._cache_resting():
            return ALONE
        try:
            taken = await self._shared.lock(self._cache_key, self._owner, self._settings.lock_ttl)
        except Exception as exc:  # if it was taken all the same, it expires after lock_ttl (or is ours again)
            self._cache_failed(exc)
            return ALONE
        self._cache_answered()
        return OWNED if taken else LOCKED

    async def _unlock(self, keep: float) -> None:
        """Release the shared lock (or keep it ``keep`` seconds: a backoff), even while the cache rests
        after a failure since it was taken: the others are waiting on it."""
        assert self._shared is not None
        try:
            await self._shared.unlock(self._cache_key, self._owner, keep=keep)
        except Exception as exc:  # it expires by itself after lock_ttl
            self._cache_failed(exc)
