"""``PartnerClient`` (v3 partner API, JWT) and ``LegacyBillingClient`` (v2 billing, basic auth).

Each client owns one transport (one aiohttp connection pool) for its lifetime; use it with ``async with``
or call ``aclose()``. Operations live on the resource facades ``client.accounts`` and
``client.webhooks``; they validate their input, build a request, send it through the client's pipeline
and parse the answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self

import aiohttp

from . import _errors as errors
from . import _operations as operations
from ._accounts import Accounts
from ._auth import TokenCache, TokenManager, TokenProvider, TokenRefresh, TokenSettings, as_token_provider
from ._bulk import Bulk
from ._clock import SYSTEM_CLOCK, Clock
from ._hooks import RequestDetails, RequestHook, ResponseDetails, ResponseHook, RetryHook, log_retry
from ._models import CancelReason, LegacyPlan
from ._policy import RateLimiter, Retrier, RetryPolicy
from ._protocol import AttemptObserver, Request, Response, error_for
from ._tokens import DEFAULT_TOKEN_URL, basic_auth
from ._transport import Timeouts, Transport, check_url
from ._webhooks import Webhooks

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_LEGACY_URL", "LegacyBillingClient", "PartnerClient"]

DEFAULT_BASE_URL = "https://api.cc.email/v3"
DEFAULT_LEGACY_URL = "https://api.constantcontact.com/v2"


def _required(setting: str, value: str | None) -> str:
    if not value:
        raise errors.ValidationError([errors.FieldError(setting, "is required")])
    return value


class _Client:
    """What both clients share: the transport, the lifecycle, and the send pipeline.

    One call is: the retry policy around attempts; one attempt is: credentials, a slot from the rate
    limiter (which also caps concurrency), one HTTP exchange with the hooks, and the status check.
    """

    def __init__(
        self,
        *,
        base_url: str,
        rate_limit: float | None,
        max_concurrency: int,
        rate_limit_max_wait: float | None,
        retry_policy: RetryPolicy | None,
        on_request: RequestHook | None,
        on_response: ResponseHook | None,
        on_retry: RetryHook | None,
        session: aiohttp.ClientSession | None,
        timeouts: Timeouts | None,
        max_connections: int,
        user_agent: str | None,
        clock: Clock,
    ) -> None:
        self._transport = Transport(
            base_url=base_url,
            session=session,
            timeouts=timeouts,
            max_connections=max_connections,
            user_agent=user_agent,
        )
        self._clock = clock
        self._limiter = RateLimiter(rate_limit, max_concurrency, clock, max_wait=rate_limit_max_wait)
        self._retrier = Retrier(retry_policy or RetryPolicy(), clock, on_retry=on_retry)
        self._on_request = on_request
        self._on_response = on_response

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool if the client created it. The client can't be used afterwards."""
        await self._transport.aclose()

    @property
    def closed(self) -> bool:
        return self._transport.closed

    @property
    def limiter(self) -> RateLimiter:
        """The client-side rate limiter shared by every call of this client."""
        return self._limiter

    @property
    def retries(self) -> int:
        """How many retries this client has made so far."""
        return self._retrier.retries

    async def send(self, request: Request, *, on_attempt_error: AttemptObserver | None = None) -> Response:
        """Send one built request under the retry policy and return the successful response.

        Raises the matching ``CtctError`` when the last attempt fails. ``on_attempt_error`` hears every
        failed attempt, retried or not.
        """
        url = self._transport.url_for(request)

        async def attempt(number: int) -> Response:
            try:
                return await self._attempt(request, url, number)
            except Exception as exc:
                if on_attempt_error is not None:
                    on_attempt_error(exc)
                raise

        return await self._retrier.call(request, url, attempt)

    async def _attempt(self, request: Request, url: str, number: int) -> Response:
        raise NotImplementedError

    async def _exchange(
        self,
        request: Request,
        url: str,
        number: int,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
    ) -> Response:
        if self._on_request is not None:
            self._on_request(RequestDetails(request.operation, request.method, url, number))
        started = self._clock.monotonic()
        status: int | None = None
        try:
            response = await self._transport.send(request, headers, query)
            status = response.status
        finally:
            if self._on_response is not None:
                elapsed = self._clock.monotonic() - started
                self._on_response(
                    ResponseDetails(request.operation, request.method, url, number, status, elapsed)
                )
        return response

    def _check(self, request: Request, url: str, response: Response) -> Response:
        if response.status < 400:
            return response
        error = error_for(
            request.method, url, response, now=dt.datetime.fromtimestamp(self._clock.time(), dt.UTC)
        )
        if isinstance(error, errors.ThrottledError) and not isinstance(error, errors.QuotaExceededError):
            self._limiter.throttled()
        raise error


class PartnerClient(_Client):
    """The v3 technology-partner API.

    Every call carries the API key (``x-api-key``) and a partner JWT (``Authorization``). The JWT comes
    from ``token_provider`` if given, else from the client-credentials token endpoint at ``token_url``
    with ``client_id`` and ``client_secret``. ``authorization_prefix`` goes before the JWT: empty by
    default, as the vendor's examples send it; ``"Bearer "`` for the newer token URL.

    ``rate_limit`` (requests per second, ``None`` for no limit) and ``max_concurrency`` bound what this
    client sends; ``rate_limit_max_wait`` makes a call fail fast with ``RateLimitError`` instead of
    waiting longer than that for its turn. ``retry_policy`` sets attempts, deadline and backoff.
    """

    def __init__(
        self,
        *,
        api_key: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        token_url: str = DEFAULT_TOKEN_URL,
        token_provider: TokenProvider | Callable[[], Awaitable[str]] | None = None,
        authorization_prefix: str = "",
        token_settings: TokenSettings | None = None,
        on_token_refresh: Callable[[TokenRefresh], None] | None = None,
        token_cache: TokenCache | None = None,
        rate_limit: float | None = 4.0,
        max_concurrency: int = 64,
        rate_limit_max_wait: float | None = None,
        retry_policy: RetryPolicy | None = None,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
        on_retry: RetryHook | None = log_retry,
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        user_agent: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._api_key = _required("api_key", api_key)
        super().__init__(
            base_url=base_url,
            rate_limit=rate_limit,
            max_concurrency=max_concurrency,
            rate_limit_max_wait=rate_limit_max_wait,
            retry_policy=retry_policy,
            on_request=on_request,
            on_response=on_response,
            on_retry=on_retry,
            session=session,
            timeouts=timeouts,
            max_connections=max_connections,
            user_agent=user_agent,
            clock=clock,
        )
        self._prefix = authorization_prefix
        if token_provider is not None:
            self._tokens = as_token_provider(token_provider)
        else:
            self._tokens = TokenManager(
                transport=self._transport,
                token_url=check_url(token_url, setting="token_url"),
                client_id=_required("client_id", client_id),
                client_secret=_required("client_secret", client_secret),
                settings=token_settings,
                clock=clock,
                on_token_refresh=on_token_refresh,
                cache=token_cache,
            )
        self.accounts = Accounts(self, clock)
        self.webhooks = Webhooks(self)
        self.bulk = Bulk(self.accounts)

    def __repr__(self) -> str:
        return f"<PartnerClient {self._transport.base_url}>"

    async def aclose(self) -> None:
        """Stop the token manager's background renewal (if this client built it), then close the pool."""
        if isinstance(self._tokens, TokenManager):
            await self._tokens.aclose()
        await super().aclose()

    async def _attempt(self, request: Request, url: str, number: int) -> Response:
        """One attempt: on a 401 renew the token once and replay once."""
        token, response = await self._send_once(request, url, number)
        if response.status == 401:
            self._tokens.invalidate(token)
            token, response = await self._send_once(request, url, number)
        return self._check(request, url, response)

    async def _send_once(self, request: Request, url: str, number: int) -> tuple[str, Response]:
        """Wait for a slot, then take the token current at that moment: a call that queued behind the
        rate limit past a rollover never sends the token it would have had when it started queueing."""
        async with self._limiter.slot():
            token = await self._tokens.get_token()
            return token, await self._exchange(request, url, number, self._credentials(token))

    def _credentials(self, token: str) -> dict[str, str]:
        return {"x-api-key": self._api_key, "Authorization": self._prefix + token}


class LegacyBillingClient(_Client):
    """The legacy v2 billing-plan endpoint: HTTP Basic auth plus the ``api_key`` query parameter."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        api_key: str,
        base_url: str = DEFAULT_LEGACY_URL,
        rate_limit: float | None = 4.0,
        max_concurrency: int = 64,
        rate_limit_max_wait: float | None = None,
        retry_policy: RetryPolicy | None = None,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
        on_retry: RetryHook | None = log_retry,
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        user_agent: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._auth = {
            "Authorization": basic_auth(_required("username", username), _required("password", password))
        }
        self._query = {"api_key": _required("api_key", api_key)}
        super().__init__(
            base_url=base_url,
            rate_limit=rate_limit,
            max_concurrency=max_concurrency,
            rate_limit_max_wait=rate_limit_max_wait,
            retry_policy=retry_policy,
            on_request=on_request,
            on_response=on_response,
            on_retry=on_retry,
            session=session,
            timeouts=timeouts,
            max_connections=max_connections,
            user_agent=user_agent,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"<LegacyBillingClient {self._transport.base_url}>"

    async def _attempt(self, request: Request, url: str, number: int) -> Response:
        """One attempt with the basic credentials and the API key."""
        async with self._limiter.slot():
            response = await self._exchange(request, url, number, self._auth, self._query)
        return self._check(request, url, response)

    async def get_plan(self, account_id: str) -> LegacyPlan:
        """The account's billing plan (``plan_type`` 1 is the trial)."""
        response = await self.send(operations.build_legacy_get_plan(account_id))
        return operations.parse_legacy_plan(response)

    async def update_plan(
        self, account_id: str, *, plan_type: int, billing_day_of_month: int | None = None
    ) -> LegacyPlan:
        """Change the plan; ``billing_day_of_month`` only counts on the move off the trial."""
        request = operations.build_legacy_update_plan(account_id, plan_type, billing_day_of_month)
        return operations.parse_legacy_plan(await self.send(request))

    async def cancel(
        self,
        account_id: str,
        *,
        reason: CancelReason | int | None = None,
        cancel_date: dt.datetime | None = None,
    ) -> LegacyPlan:
        """Cancel the account, now unless ``cancel_date`` (timezone-aware) says otherwise."""
        now = dt.datetime.fromtimestamp(self._clock.time(), dt.UTC)
        when = cancel_date if cancel_date is not None else now
        request = operations.build_legacy_cancel(account_id, reason, when)
        return operations.parse_legacy_plan(await self.send(request))
