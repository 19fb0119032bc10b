"""Where the partner JWT comes from: the ``TokenProvider`` seam and the client-credentials ``TokenManager``.

``PartnerClient`` asks its provider for a token before each call and tells it which token a 401 refused.
Pass your own provider (an object with ``get_token``, or any async callable returning the JWT) or let
the client build the client-credentials manager from ``client_id`` and ``client_secret``.

The manager's lifecycle, for a token that expires at ``E`` (monotonic clock)::

    fresh ........ E - advisory_window ...... E - mandatory_window ...... E
    served as is   renewed in the background,  callers wait for the new token
                   callers keep the old one

One token request is in flight at a time, whatever the concurrency, and the endpoint is never asked twice
within ``min_interval``. A failed background renewal keeps the old token and backs off; a failed renewal
that callers wait for raises ``AuthenticationError`` (its ``__cause__`` says why) to all of them, and
callers in the next ``min_interval`` get the same answer without a request. ``invalidate`` is
compare-and-clear, so a thousand 401s on one revoked token cause one renewal.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable
from typing import NoReturn, Protocol, runtime_checkable

import attrs

from . import _errors as errors
from ._clock import SYSTEM_CLOCK, Clock
from ._flight import SingleFlight
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
    "TokenCache",
    "TokenManager",
    "TokenProvider",
    "TokenRefresh",
    "TokenSettings",
    "as_token_provider",
    "log_token_refresh",
]

logger = logging.getLogger("ctct_partner_async.auth")  # a stable name, not the private module's

INITIAL = "initial"
UNAUTHORIZED = "unauthorized"
OK = "ok"
ERROR = "error"


def _not_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        rule = "cannot be negative"
        raise errors.ValidationError([errors.FieldError(f"token_settings.{attribute.name}", rule)])


@attrs.frozen(kw_only=True)
class TokenSettings:
    """When to renew the JWT: ``advisory_window`` seconds before expiry a renewal starts in the
    background while callers keep the still-valid token; ``mandatory_window`` seconds before expiry
    callers wait for the new one (capped at a half and a quarter of the token's lifetime). The token endpoint
    is never asked more than once per ``min_interval``. After a failed background renewal the next one
    waits ``backoff_initial`` seconds, doubling up to ``backoff_max``.
    """

    advisory_window: float = attrs.field(default=300.0, validator=_not_negative)
    mandatory_window: float = attrs.field(default=60.0, validator=_not_negative)
    min_interval: float = attrs.field(default=1.0, validator=_not_negative)
    backoff_initial: float = attrs.field(default=1.0, validator=_not_negative)
    backoff_max: float = attrs.field(default=60.0, validator=_not_negative)
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
    """

    reason: str
    duration: float
    outcome: str
    error: BaseException | None = None
    status: int | None = None


def log_token_refresh(detail: TokenRefresh) -> None:
    """The default ``on_token_refresh``: one line on ``ctct_partner_async._auth``, never the token."""
    if detail.outcome == OK:
        logger.info("partner token renewed (%s) in %.3fs", detail.reason, detail.duration)
    else:
        logger.warning(
            "partner token renewal (%s) failed after %.3fs: %s", detail.reason, detail.duration, detail.error
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
    """A renewal that gave no token: what every waiting caller raises."""

    message: str
    cause: BaseException | None
    at: float
    fail_fast: bool
    kind: type[errors.AuthenticationError] = errors.AuthenticationError

    def raise_error(self) -> NoReturn:
        raise self.kind(self.message) from self.cause


_Outcome = Token | _Failure


class TokenManager:
    """Client-credentials tokens: fetched on demand, renewed before expiry, one request at a time.

    ``on_token_refresh`` hears about every token request (default: :func:`log_token_refresh`); ``cache``
    keeps renewed tokens (default: a :class:`MemoryTokenCache`). Call :meth:`aclose` when done: it stops
    a background renewal. Neither the secret nor the token ever shows in a repr, a log record or an error.
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
    ) -> None:
        self._transport = transport
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._settings = settings or TokenSettings()
        self._clock = clock
        self._on_refresh = on_token_refresh or log_token_refresh
        self._cache: TokenCache = cache if cache is not None else MemoryTokenCache(clock)
        self._cache_key = f"{token_url} {client_id} {self._settings.scope or ''}"
        self._token: Token | None = None
        self._fresh_until = -math.inf
        self._renewal: SingleFlight[_Outcome] = SingleFlight("token renewal")
        self._failure: _Failure | None = None
        self._refused: str | None = None
        self._cleared_reason = INITIAL
        self._last_request_at = -math.inf
        self._advisory_not_before = -math.inf
        self._backoff = self._settings.backoff_initial
        self._closed = False

    def __repr__(self) -> str:
        return f"<TokenManager {self._token_url} client_id={self._client_id!r}>"

    async def get_token(self) -> str:
        """The JWT to send now: the held one, renewed in the background or waited for as its phase says.

        ``AuthenticationError`` if no token can be had (its ``__cause__`` says why).
        """
        token = self._token
        now = self._clock.monotonic()
        settings = self._settings
        phase = renewal_phase(token, now, settings.advisory_window, settings.mandatory_window)
        if token is None or phase == MANDATORY:
            return await self._wait_for_renewal()
        if phase != FRESH:
            self._renew_in_background(now)
        return token.value

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
            self._refused = token
            self._cleared_reason = UNAUTHORIZED

    async def aclose(self) -> None:
        """Stop: cancel a renewal in flight and wait for it to end. Safe to call twice."""
        self._closed = True
        await self._renewal.close()

    # -- single flight ------------------------------------------------------------------------------------
    def _renew_in_background(self, now: float) -> None:
        if self._renewal.running is None and not self._closed and now >= self._advisory_not_before:
            self._start(ADVISORY)

    async def _wait_for_renewal(self) -> str:
        if self._closed:
            raise errors.ClientClosedError("this client is closed; create a new one")
        task = self._renewal.running
        if task is None:
            failure = self._failure
            if failure is not None and failure.fail_fast and self._within_min_interval(failure.at):
                failure.raise_error()
            task = self._start(MANDATORY if self._token is not None else self._cleared_reason)
        outcome = await self._renewal.join(task)
        if isinstance(outcome, _Failure):
            outcome.raise_error()
        return outcome.value

    def _start(self, reason: str) -> asyncio.Task[_Outcome]:
        return self._renewal.start(self._renew(reason), at=self._clock.monotonic())

    def _within_min_interval(self, at: float) -> bool:
        return self._clock.monotonic() - at < self._settings.min_interval

    # -- one renewal (runs as the single task) ------------------------------------------------------------
    async def _renew(self, reason: str) -> _Outcome:
        """Renew once; never raises (but for cancellation), so nothing is left unretrieved."""
        started = self._clock.monotonic()
        try:
            return await self._renew_once(reason)
        except Exception as exc:  # a bug or a broken hook must reach the waiters, not the event loop
            message = f"token renewal from {self._token_url} failed unexpectedly ({type(exc).__name__})"
            return self._failed(reason, errors.AuthenticationError(message), exc, started)

    async def _renew_once(self, reason: str) -> _Outcome:
        cached = await self._from_cache()
        if cached is not None:
            logger.debug("partner token taken from the cache (%s)", reason)
            self._hold(cached)
            return cached
        delay = 0.0
        for attempt in range(THROTTLED_RETRIES + 1):
            await self._pace(delay)
            started = self._last_request_at = self._clock.monotonic()
            try:
                token = await self._request_token()
            except errors.AuthenticationError as exc:
                throttled = _throttled(exc.__cause__)
                if throttled is None or attempt == THROTTLED_RETRIES:
                    return self._failed(reason, exc, exc.__cause__, started)
                delay = throttled.retry_after or 0.0  # another process shares the endpoint: wait, ask again
                continue
            self._succeeded(reason, token, started)
            await self._to_cache(token)
            return token
        raise AssertionError("unreachable")  # pragma: no cover

    async def _pace(self, delay: float = 0.0) -> None:
        """Wait until ``min_interval`` (or a longer ``delay``) has passed since the last token request."""
        wait = self._last_request_at + max(self._settings.min_interval, delay) - self._clock.monotonic()
        if wait > 0:
            await self._clock.sleep(wait)

    async def _request_token(self) -> Token:
        """One token request; ``AuthenticationError`` with the cause if it yields no token."""
        request = build_token_request(self._token_url, self._settings.scope)
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
        self._backoff = self._settings.backoff_initial
        self._advisory_not_before = -math.inf

    def _succeeded(self, reason: str, token: Token, started: float) -> None:
        self._hold(token)
        self._emit(TokenRefresh(reason=reason, duration=self._clock.monotonic() - started, outcome=OK))

    def _failed(
        self, reason: str, error: errors.AuthenticationError, cause: BaseException | None, started: float
    ) -> _Failure:
        now = self._clock.monotonic()
        status = getattr(cause, "status", None)
        fail_fast = reason != ADVISORY or status in CREDENTIAL_STATUSES
        self._failure = _Failure(str(error), cause, now, fail_fast, type(error))
        self._advisory_not_before = now + self._backoff
        self._backoff = min(self._backoff * 2, self._settings.backoff_max)
        detail = TokenRefresh(
            reason=reason, duration=now - started, outcome=ERROR, error=error, status=status
        )
        self._emit(detail)
        return self._failure

    def _emit(self, detail: TokenRefresh) -> None:
        try:
            self._on_refresh(detail)
        except Exception as exc:  # instrumentation must not break authentication
            logger.warning("on_token_refresh hook raised %s; ignored", type(exc).__name__)

    # -- the cache seam -----------------------------------------------------------------------------------
    async def _from_cache(self) -> Token | None:
        """A fresh token another holder put in the cache, if there is one (never the refused one)."""
        try:
            cached = await self._cache.get(self._cache_key)
        except Exception as exc:  # a broken shared cache must not stop authentication
            logger.warning("token cache read failed (%s); asking the token endpoint", type(exc).__name__)
            return None
        held = self._token.value if self._token is not None else None
        if cached is None or cached.value in (held, self._refused):
            return None
        now = self._clock.monotonic()
        token = from_cached(cached, now_mono=now, now_wall=self._clock.time())
        settings = self._settings
        phase = renewal_phase(token, now, settings.advisory_window, settings.mandatory_window)
        return token if phase == FRESH else None

    async def _to_cache(self, token: Token) -> None:
        cached = to_cached(token, now_mono=self._clock.monotonic(), now_wall=self._clock.time())
        try:
            await self._cache.set(self._cache_key, cached)
        except Exception as exc:  # the token is held already; the cache is a convenience
            logger.warning("token cache write failed (%s)", type(exc).__name__)


THROTTLED_RETRIES = 2
"""A 429 ``throttled`` from the token endpoint (its ~1/s limit, shared with other processes) is asked
again after ``min_interval`` (or its Retry-After) this many times before the renewal counts as failed."""


def _throttled(cause: BaseException | None) -> errors.ThrottledError | None:
    if isinstance(cause, errors.ThrottledError) and not isinstance(cause, errors.QuotaExceededError):
        return cause
    return None
