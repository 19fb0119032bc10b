"""The send pipeline both clients share, read top-down: pipeline -> credentials -> limiter -> transport.

One call is the retry policy around attempts. One attempt is, in this order:

1. a concurrency slot (``max_concurrency``);
2. the credentials (for v3, the JWT: this may wait for a renewal);
3. a turn under the rate limit, booked only now, so a token wait never bunches requests: after any
   wait, no two requests of a client are closer than ``1/rate``; if the turn had to be waited for, the
   credentials are asked again, so a request never carries a token it saw before it queued; with a
   budget shared in Redis (``share_budget``) the turn is the key's next slot, booked there in one round
   trip (and counted against the key's day), in the same order;
4. one exchange over the transport, with the hooks; on a 401 the credentials hear which headers were
   refused and, if they can do better (a new JWT), steps 2-4 run once more;
5. the status check: anything from 300 up raises its ``APIError`` (a 3xx is never followed).

An ``Observer`` (``telemetry.instrument``) sees each call as an operation and each request as an
exchange, with the call's count of requests before it and its wait for a turn under the limits
(``CallLog.waited``); with none, the only trace of it here is one ``is None`` test per call.

A call's ``timeout`` bounds each exchange of step 4 (every request: a retry's, a 401 replay's), not the
waits of steps 1-3 nor the backoff between attempts, as openai-python's ``timeout`` bounds each request.
The aiohttp transport applies it as the request's total timeout (so a connect timeout is still a
``ConnectError``); another transport's exchange runs under ``asyncio.timeout``.

Before all of it, once per call: the client's event loop. The first call binds the client to the loop it
runs in; a call from any other loop raises ``WrongEventLoopError`` before it takes a slot, a token or a
connection (the pipeline shares the binding with the transport it owns, so that is one comparison).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from asyncio import get_running_loop
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict

import aiohttp
import attrs

from . import _errors as errors
from ._budget import DEFAULT_DAILY_QUOTA, DailyQuota, SharedBudget
from ._clock import SYSTEM_CLOCK, Clock
from ._credentials import Credentials
from ._hooks import RequestDetails, RequestHook, ResponseDetails, ResponseHook, RetryHook, log_retry, shown
from ._observe import Observer
from ._policy import RateLimiter, Retry, RetryPolicy
from ._protocol import (
    AsyncTransport,
    CallLog,
    Request,
    Response,
    check_timeout,
    credential_secrets,
    error_for,
    resolve_url,
)
from ._transport import LoopBinding, Proxies, Timeouts, Transport, check_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ClientOptions", "ClientSettings", "Pipeline", "transport_for"]


class ClientSettings(TypedDict, total=False):
    """The keyword settings both clients take (their defaults and meaning: ``ClientOptions``)."""

    rate_limit: float | None
    max_concurrency: int
    rate_limit_max_wait: float | None
    daily_quota: int | None
    retry_policy: RetryPolicy | None
    on_request: RequestHook | None
    on_response: ResponseHook | None
    on_retry: RetryHook | None
    session: aiohttp.ClientSession | None
    timeouts: Timeouts | None
    max_connections: int
    user_agent: str | None
    trust_env: bool
    clock: Clock
    transport: AsyncTransport | None


_AIOHTTP_ONLY = ("session", "timeouts", "user_agent")


def _checked_base_url(url: str) -> str:
    return check_url(url, setting="base_url")


def _policy_or_default(policy: RetryPolicy | None) -> RetryPolicy:
    return RetryPolicy() if policy is None else policy


@attrs.frozen(kw_only=True)
class ClientOptions:
    """The settings both clients share, checked once.

    ``transport`` replaces the aiohttp transport (for tests: ``testing.MockTransport``); ``session``,
    ``timeouts``, ``max_connections``, ``user_agent`` and ``trust_env`` configure the aiohttp one, so
    they can't be combined with it. ``base_url`` still names the URLs in errors and hooks.

    ``trust_env`` (default ``True``): send through the proxies of ``HTTP_PROXY``, ``HTTPS_PROXY`` and
    ``NO_PROXY`` (see ``Proxies``), read from the client's environment when it is made; a loopback host
    is never proxied. It applies to the session the client creates, not to one passed as ``session``.

    ``daily_quota``: the API key's requests a day (10,000 unless Constant Contact raised it; ``None``:
    unknown), for ``client.quota`` and the CLI's estimates. The SDK counts, it does not enforce: only a
    ``quota_exceeded`` answer stops the client (until 00:00 UTC).
    """

    base_url: str = attrs.field(converter=_checked_base_url)
    rate_limit: float | None = 4.0
    max_concurrency: int = 64
    rate_limit_max_wait: float | None = None
    daily_quota: int | None = DEFAULT_DAILY_QUOTA
    retry_policy: RetryPolicy = attrs.field(default=None, converter=_policy_or_default)
    on_request: RequestHook | None = None
    on_response: ResponseHook | None = None
    on_retry: RetryHook | None = log_retry
    session: aiohttp.ClientSession | None = None
    timeouts: Timeouts | None = None
    max_connections: int = 100
    user_agent: str | None = None
    trust_env: bool = True
    clock: Clock = SYSTEM_CLOCK
    transport: AsyncTransport | None = None

    def __attrs_post_init__(self) -> None:
        if self.transport is None:
            return
        given = [name for name in _AIOHTTP_ONLY if getattr(self, name) is not None]
        if self.max_connections != 100:
            given.append("max_connections")
        if not self.trust_env:
            given.append("trust_env")
        rule = "configures the aiohttp transport: it can't be combined with transport="
        if given:
            raise errors.ValidationError([errors.FieldError(name, rule) for name in given])


class Pipeline:
    """Sends built requests for one client: retries, limits, credentials, hooks, one transport."""

    def __init__(
        self,
        options: ClientOptions,
        credentials: Credentials,
        transport: AsyncTransport,
        *,
        owned: Transport | None = None,
    ) -> None:
        self.options = options
        self._base = options.base_url if options.base_url.endswith("/") else options.base_url + "/"
        self.credentials = credentials
        self.transport = transport
        self._clock = options.clock
        self.limiter = RateLimiter(
            options.rate_limit, options.max_concurrency, self._clock, max_wait=options.rate_limit_max_wait
        )
        self.retry = Retry(options.retry_policy, self._clock, on_retry=options.on_retry)
        self.quota = DailyQuota(options.daily_quota, self._clock)
        self.shared: SharedBudget | None = None  # the key's budget in Redis (``share_budget``)
        self._on_request = options.on_request
        self._on_response = options.on_response
        self.observer: Observer | None = None
        self._plain = options.on_request is None and options.on_response is None  # no hook, no observer
        self._owned = owned  # closed with the pipeline; a transport passed in is the caller's
        self._home: LoopBinding  # the client's event loop
        self._send: Callable[[Request, Mapping[str, str], Mapping[str, str] | None], Awaitable[Response]]
        # the transport's own send with a timeout, if it takes one (the aiohttp one); else asyncio's
        self._timed_send: (
            Callable[[Request, Mapping[str, str], Mapping[str, str] | None, float], Awaitable[Response]]
            | None
        ) = None
        if owned is not None and owned is transport:  # one binding, checked here once per call
            self._home, self._send, self._timed_send = owned.binding, owned.send_in_loop, owned.send_in_loop
        else:
            self._home, self._send = LoopBinding(), transport.send
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def observe(self, observer: Observer | None) -> None:
        """Tell ``observer`` about every call, request, retry and throttle from now on (``None``: stop)."""
        self.observer = observer
        self.retry.observer = observer
        self._plain = self._on_request is None and self._on_response is None and observer is None

    def share_budget(self, redis: Redis, namespace: str) -> SharedBudget:
        """Pace and count with every process on the key, in ``redis`` under ``namespace``: the rate slot
        is booked there (still after the credentials), the quota counted and stopped there. The
        concurrency cap stays this process's."""
        options = self.options
        self.shared = SharedBudget(
            redis, namespace, rate=options.rate_limit, quota=self.quota, clock=self._clock,
            max_wait=options.rate_limit_max_wait,
        )  # fmt: skip
        return self.shared

    def check_close(self) -> None:
        """``WrongEventLoopError`` if ``aclose`` can't close the client from the running loop (see there)."""
        self._home.check_close()
        if self._owned is not None and self._owned.binding is not self._home:
            self._owned.binding.check_close()

    async def aclose(self) -> None:
        """Stop the credentials' background work and close the transport if the client built it.

        Safe to call twice. From an event loop other than the client's (the one its first call ran in), it
        raises ``WrongEventLoopError`` and closes nothing while that loop is open: the connections and
        tasks live there, and only that loop can close them. Once that loop is closed, the client is
        closed from here (see ``Transport.aclose`` for what is left of its connections).
        """
        if self._closed:
            return
        self.check_close()
        self._closed = True
        try:
            await self.credentials.aclose()
        finally:
            if self._owned is not None:
                await self._owned.aclose()

    def send(
        self,
        request: Request,
        *,
        log: CallLog | None = None,
        until: float | None = None,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, Response]:
        """Send ``request`` under the retry policy; the successful response, or the last error raised.

        ``log``, if given, hears every failed attempt and counts the requests sent. ``until`` (on the
        client's monotonic clock) ends the retries earlier than the policy's deadline would. ``timeout``
        (seconds) bounds each request sent, in place of ``Timeouts.total`` (see the module docstring);
        a bad one is a ``ValidationError`` raised here. (A plain function returning the first attempt's
        coroutine, which turns into the retry loop if it fails: one await level less on the hot path.)
        """
        if self._closed:
            raise errors.ClientClosedError("this client is closed; create a new one")
        if timeout is not None:
            check_timeout(timeout)
        url = resolve_url(self._base, request.url)
        if self.observer is not None:
            return self._observed(self.observer, request, url, log or CallLog(), until, timeout)
        return self._attempt(request, url, 1, log, until, timeout)

    async def _observed(
        self,
        observer: Observer,
        request: Request,
        url: str,
        log: CallLog,
        until: float | None,
        per_request: float | None,
    ) -> Response:
        with observer.operation(request.operation):
            return await self._attempt(request, url, 1, log, until, per_request)

    async def _retry(
        self,
        request: Request,
        url: str,
        first: Exception,
        log: CallLog | None,
        deadline: float,
        per_request: float | None,
    ) -> Response:
        """After a failed first attempt: tenacity decides on it as on every later failure."""
        async for try_ in self.retry.retrying(request, url, deadline):
            with try_:
                number = try_.retry_state.attempt_number
                if number == 1:
                    raise first
                return await self._attempt(request, url, number, log, deadline, per_request)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(
        self,
        request: Request,
        url: str,
        number: int,
        log: CallLog | None,
        deadline: float | None,
        per_request: float | None,
    ) -> Response:
        # ``deadline``: for the first attempt, an earlier end asked for (``until``) or None; for a retry,
        # the call's deadline
        if number == 1 or deadline is None:  # the first attempt: the call starts now, when it is awaited
            if self._home.loop is not get_running_loop():
                self._home.enter()  # the first call binds the client to this loop; another loop raises
            deadline = self.retry.begin(deadline)
        if log is not None:
            log.attempts = number
            log.waited = 0.0
        limiter, credentials, shared = self.limiter, self.credentials, self.shared
        try:
            if self.quota.stopped_until is not None:
                self.quota.check(request.method, url)  # stopped by a quota_exceeded: nothing is sent
            if not limiter.try_enter():
                await self._queue(log)
            try:
                if shared is None:
                    # the fast path, with no await: the token is fresh and the turn is now
                    ready = credentials.ready()
                    wait = limiter.reserve() if ready is not None else None
                    headers = ready if ready is not None and not wait else await self._turn(log, wait)
                else:
                    headers = await self._shared_turn(shared, request, url, log)
                response = await self._exchange(request, url, number, headers, log, per_request)
                if response.status == 401 and credentials.refused(headers):
                    if shared is None:
                        headers = await self._turn(log)
                    else:
                        headers = await self._shared_turn(shared, request, url, log)
                    response = await self._exchange(request, url, number, headers, log, per_request)
            finally:
                limiter.leave()
            if response.status >= 300:
                await self._raise_for(request, url, response, headers)
        except Exception as exc:
            if log is not None:
                log.errors.append(exc)
            if number != 1:
                raise  # to the retry loop
            first = exc
        else:
            return response
        return await self._retry(request, url, first, log, deadline, per_request)

    async def _queue(self, log: CallLog | None) -> None:
        """Wait for an in-flight slot (the concurrency cap is reached), counted in ``log.waited``."""
        started = self._clock.monotonic()
        await self.limiter.enter()
        if log is not None:
            log.waited += self._clock.monotonic() - started

    async def _turn(self, log: CallLog | None, wait: float | None = None) -> Mapping[str, str]:
        """The credentials, then a turn under the rate limit; the credentials again after a wait.

        ``wait`` is given when the turn is booked already (the credentials needed no wait) and must
        be waited for; ``None`` when the credentials themselves may wait (a renewal, a 401 replay).
        """
        if wait is None:
            self.limiter.check_max_wait()  # fail fast now, not after waiting for a token
            headers = await self.credentials.headers()
            wait = self.limiter.reserve()
            if not wait:
                return headers
        return await self._wait_turn(wait, log)

    async def _wait_turn(self, wait: float, log: CallLog | None) -> Mapping[str, str]:
        """Sleep until the booked turn, then take the credentials current at that moment.

        If taking them was itself a long wait (a renewal: more than half the spacing), the turn is gone
        and sending now would bunch with the next request: book one new turn (only one, so a slow
        provider costs a little spacing, never a livelock or half the throughput).
        """
        clock, credentials, limiter = self._clock, self.credentials, self.limiter
        await clock.sleep(wait)
        if log is not None:
            log.waited += wait
        headers = credentials.ready()
        if headers is not None:
            return headers
        asked = clock.monotonic()
        headers = await credentials.headers()  # the token may have been renewed meanwhile
        rate = limiter.rate
        if rate is None or clock.monotonic() - asked <= 0.5 / rate:
            return headers
        wait = limiter.reserve()
        if wait:
            await clock.sleep(wait)
            if log is not None:
                log.waited += wait
            headers = credentials.ready() or await credentials.headers()
        return headers

    async def _shared_turn(
        self, shared: SharedBudget, request: Request, url: str, log: CallLog | None
    ) -> Mapping[str, str]:
        """The credentials, then a slot booked in Redis and slept for; the credentials again after a
        wait (as ``_wait_turn``: a renewal that outlasts half the spacing books one new slot).

        With no configured rate Redis books no slot (it still counts and stops); the local limiter,
        which learns a limit from throttles, spaces this process's requests.
        """
        credentials, clock = self.credentials, self._clock
        headers = credentials.ready() or await credentials.headers()
        wait = await shared.turn(request.method, url)
        if self.options.rate_limit is None:
            wait = self.limiter.reserve()
        if not wait:
            return headers
        await clock.sleep(wait)
        if log is not None:
            log.waited += wait
        ready = credentials.ready()
        if ready is not None:
            return ready
        asked = clock.monotonic()
        headers = await credentials.headers()
        rate = self.options.rate_limit
        if rate is not None and clock.monotonic() - asked > 0.5 / rate:
            wait = await shared.turn(request.method, url, count=False)  # the same request, rebooked
            if wait:
                await clock.sleep(wait)
                if log is not None:
                    log.waited += wait
                headers = credentials.ready() or await credentials.headers()
        return headers

    def _exchange(
        self,
        request: Request,
        url: str,
        number: int,
        headers: Mapping[str, str],
        log: CallLog | None,
        per_request: float | None,
    ) -> Awaitable[Response]:
        """The transport's send, through the hooks and the observer if there are any (no extra frame when
        there are none)."""
        if log is not None:
            if not log.requests and log.on_first_send is not None:
                log.on_first_send()
            log.requests += 1
        if self.shared is None:
            self.quota.sent()  # a shared budget counts in Redis, as it books the slot
        if self._plain:
            if per_request is None:
                return self._send(request, headers, self.credentials.query)
            return self._transmit(request, url, headers, per_request)
        return self._hooked_exchange(request, url, number, headers, log, per_request)

    def _transmit(
        self, request: Request, url: str, headers: Mapping[str, str], per_request: float | None
    ) -> Awaitable[Response]:
        """The transport's send, bounded by the call's timeout (``per_request`` seconds) if it has one."""
        if per_request is None:
            return self._send(request, headers, self.credentials.query)
        if self._timed_send is not None:
            return self._timed_send(request, headers, self.credentials.query, per_request)
        return self._bounded(request, url, headers, per_request)

    async def _bounded(
        self, request: Request, url: str, headers: Mapping[str, str], per_request: float
    ) -> Response:
        """A transport that takes no timeout, under ``asyncio.timeout``: ``RequestTimeoutError`` when it
        runs out (the request may have been received, as for the aiohttp transport's total timeout)."""
        scope = asyncio.timeout(per_request)
        try:
            async with scope:
                return await self._send(request, headers, self.credentials.query)
        except TimeoutError:
            if not scope.expired():
                raise  # the transport's own
            raise errors.RequestTimeoutError(
                f"no complete response within the call's timeout of {per_request:g}s",
                method=request.method,
                url=url,
            ) from None

    async def _hooked_exchange(
        self,
        request: Request,
        url: str,
        number: int,
        headers: Mapping[str, str],
        log: CallLog | None,
        per_request: float | None,
    ) -> Response:
        if self._on_request is not None:
            self._on_request(RequestDetails(request.operation, request.method, shown(url), number))
        observer, exchange = self.observer, None
        if observer is not None and log is not None:  # an observed call always has a log
            waited, log.waited = log.waited, 0.0
            exchange = observer.exchange(request, log.requests - 1, waited, headers)
            headers = exchange.headers  # with the trace context; the credentials' own stay the attempt's
        on_response = self._on_response
        started = self._clock.monotonic()
        try:
            response = await self._transmit(request, url, headers, per_request)
        except BaseException as exc:  # cancellation and timeouts too: hooks pair requests and responses
            if exchange is not None:
                exchange.end(None, exc)
            if on_response is not None:
                elapsed = self._clock.monotonic() - started
                on_response(
                    ResponseDetails(request.operation, request.method, shown(url), number, None, elapsed, exc)
                )
            raise
        if exchange is not None:
            exchange.end(response.status)
        if on_response is not None:
            elapsed = self._clock.monotonic() - started
            on_response(
                ResponseDetails(
                    request.operation, request.method, shown(url), number, response.status, elapsed
                )
            )
        return response

    async def _raise_for(
        self, request: Request, url: str, response: Response, headers: Mapping[str, str]
    ) -> NoReturn:
        now = dt.datetime.fromtimestamp(self._clock.time(), dt.UTC)
        secrets = request.secrets + credential_secrets(headers, self.credentials.query)
        error = error_for(request.method, url, response, now=now, secrets=secrets)
        if isinstance(error, errors.ThrottledError):
            if self.observer is not None:
                self.observer.throttled(request, error)
            await self._throttled(error)
        raise error

    async def _throttled(self, error: errors.ThrottledError) -> None:
        """A 429: a spent quota stops the client (and, shared, every process on the key) until it
        resets; a throttle slows the limiter down (shared: the key's rate, for every process)."""
        shared = self.shared
        if isinstance(error, errors.QuotaExceededError):
            self.quota.stop(error.reset_at)
            if shared is not None:
                await shared.quota_exceeded(error.reset_at)
        elif shared is None or self.options.rate_limit is None:
            self.limiter.throttled()  # no rate to share: this process learns its own limit
        else:
            await shared.throttled()


def transport_for(
    options: ClientOptions, environ: Mapping[str, str]
) -> tuple[AsyncTransport, Transport | None]:
    """``options.transport``, or a new aiohttp transport (one pooled session, created lazily, with the
    proxies ``environ`` sets if ``trust_env``), which is then also returned as the one the client owns."""
    if options.transport is not None:
        return options.transport, None
    proxied = options.session is None and options.trust_env
    transport = Transport(
        base_url=options.base_url,
        session=options.session,
        timeouts=options.timeouts,
        max_connections=options.max_connections,
        user_agent=options.user_agent,
        proxies=Proxies.from_environ(environ) if proxied else None,
    )
    return transport, transport
