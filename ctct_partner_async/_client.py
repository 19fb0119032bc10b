"""``PartnerClient`` (v3 partner API, JWT) and ``LegacyBillingClient`` (v2 billing, basic auth).

Each client owns one transport (one aiohttp connection pool) for its lifetime; use it with ``async with``
or call ``aclose()``. Operations live on the resource facades ``client.accounts`` and
``client.webhooks``; they validate their input, build a request, send it through the client's pipeline
and parse the answer.

Every setting a client is not passed comes from its ``CTCT_*`` environment variable, else its default
(the table and the rules: ``_environ``); ``environ=`` replaces ``os.environ`` (``{}``: read nothing).
Every operation takes ``timeout=``: seconds each request it sends may take, in place of the client's
``Timeouts.total`` (``_pipeline`` says exactly what it bounds).
"""

# ``timeout=`` on every operation is the API (as in openai-python): it bounds each request the operation
# sends, where the pipeline applies it; a caller's own ``asyncio.timeout`` bounds the whole call instead.
# ruff: noqa: ASYNC109

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Unpack

from . import _errors as errors
from . import _operations as operations
from ._accounts import Accounts
from ._auth import TokenCache, TokenManager, TokenProvider, TokenRefresh, TokenSettings, as_token_provider
from ._budget import QuotaStatus, connect, namespace
from ._bulk import Bulk
from ._credentials import BasicCredentials, JwtCredentials
from ._environ import (
    API_KEY,
    BASE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    DEFAULT_BASE_URL,
    DEFAULT_LEGACY_URL,
    LEGACY_API_KEY,
    LEGACY_BASE_URL,
    LEGACY_PASSWORD,
    LEGACY_USERNAME,
    REDIS_PREFIX,
    REDIS_URL,
    TOKEN_URL,
    Environment,
    Setting,
)
from ._models import CancelReason, LegacyPlan
from ._pipeline import ClientOptions, ClientSettings, Pipeline, transport_for
from ._policy import RateLimiter
from ._protocol import CallLog, Request, Response
from ._transport import check_url
from ._webhooks import Webhooks
from .shared import RedisTokenCache

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_LEGACY_URL", "LegacyBillingClient", "PartnerClient"]


def _options(
    env: Environment, base: Setting, base_url: str | None, settings: ClientSettings
) -> ClientOptions:
    """The shared settings: ``base_url`` and ``rate_limit`` from the environment unless passed."""
    url, name = env.url(base, base_url)
    check_url(url, setting=name)
    if "rate_limit" not in settings:
        settings["rate_limit"] = env.rate_limit()
    return ClientOptions(base_url=url, **settings)


def _redis_prefix(prefix: str) -> str:
    if not prefix or any(c.isspace() for c in prefix):
        raise errors.ValidationError([errors.FieldError("redis_prefix", "must be non-empty, without spaces")])
    return prefix


class _Lifecycle:
    """What both clients share: one pipeline, ``async with``, ``aclose`` and the counters."""

    _pipeline: Pipeline

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop background work and close the connection pool if the client created it. The client
        can't be used afterwards. Safe to call twice. ``WrongEventLoopError`` (closing nothing) from
        another event loop than the client's while that one is open."""
        self._pipeline.check_close()
        await self._pipeline.aclose()

    @property
    def closed(self) -> bool:
        return self._pipeline.closed

    @property
    def options(self) -> ClientOptions:
        """The settings this client was built with."""
        return self._pipeline.options

    @property
    def limiter(self) -> RateLimiter:
        """The client-side rate limiter shared by every call of this client."""
        return self._pipeline.limiter

    @property
    def quota(self) -> QuotaStatus:
        """The API key's daily quota as far as this SDK has counted it: this process's requests, or with a
        shared budget (``redis_url``) every process's as of the last request. See ``refresh_quota``."""
        return self._pipeline.quota.status()

    async def refresh_quota(self) -> QuotaStatus:
        """``quota``, read from Redis now when the budget is shared (no API request either way)."""
        shared = self._pipeline.shared
        return self._pipeline.quota.status() if shared is None else await shared.refresh()

    @property
    def retries(self) -> int:
        """How many retries this client has made so far."""
        return self._pipeline.retry.retries

    def send(
        self, request: Request, *, log: CallLog | None = None, timeout: float | None = None
    ) -> Coroutine[Any, Any, Response]:
        """Send one built request under the retry policy; await it for the successful response.

        Raises the matching ``CtctError`` when the last attempt fails; ``log`` hears every failed
        attempt and counts the requests sent. ``timeout``: seconds each request may take (as for every
        operation; a bad one is a ``ValidationError`` raised here).
        """
        return self._pipeline.send(request, log=log, timeout=timeout)


class PartnerClient(_Lifecycle):
    """The v3 technology-partner API.

    Every call carries the API key (``x-api-key``) and a partner JWT (``Authorization``). The JWT comes
    from ``token_provider`` if given, else from the client-credentials token endpoint at ``token_url``
    with ``client_id`` and ``client_secret``. ``authorization_prefix`` goes before the JWT: empty by
    default, as the vendor's examples send it; ``"Bearer "`` for the newer token URL.

    A setting not passed (or passed as ``None``) is read from ``environ`` (default ``os.environ``):
    ``CTCT_API_KEY``, ``CTCT_CLIENT_ID``, ``CTCT_CLIENT_SECRET``, ``CTCT_BASE_URL``, ``CTCT_TOKEN_URL``,
    ``CTCT_AUTHORIZATION_PREFIX`` and ``CTCT_RATE_LIMIT`` (0 or ``none``: no limit); an empty variable
    is unset. A required one found nowhere is a ``ValidationError`` naming the argument and the variable.

    Several processes on one API key share its budget through Redis: pass ``redis_url`` (or set
    ``CTCT_REDIS_URL``; the client opens the connection and closes it with itself) or ``redis``, a
    ``redis.asyncio.Redis`` you own (the ``[redis]`` extra). Then the key's rate (``rate_limit``, one
    slot at a time for all processes), its daily count and ``quota_exceeded`` stop, and the JWT (unless
    ``token_cache`` or ``token_provider`` is passed) are kept in Redis under ``redis_prefix`` (default
    ``ctct``, ``CTCT_REDIS_PREFIX``) and a hash of the API key and client id. If Redis stops answering,
    no call fails: each process paces itself at its share of the rate until it answers again.

    The other settings (``rate_limit``, ``max_concurrency``, ``retry_policy``, the hooks, ``session``,
    ``timeouts``, ``trust_env``, ``transport``, ``clock``, ...) are those of ``ClientOptions``, shared
    with ``LegacyBillingClient``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        base_url: str | None = None,
        token_url: str | None = None,
        token_provider: TokenProvider | Callable[[], Awaitable[str]] | None = None,
        authorization_prefix: str | None = None,
        token_settings: TokenSettings | None = None,
        on_token_refresh: Callable[[TokenRefresh], None] | None = None,
        token_cache: TokenCache | None = None,
        redis_url: str | None = None,
        redis: Redis | None = None,
        redis_prefix: str | None = None,
        environ: Mapping[str, str] | None = None,
        **settings: Unpack[ClientSettings],
    ) -> None:
        env = Environment(environ)
        if redis is not None and redis_url is not None:
            rule = "pass either redis= (a client you own) or redis_url=, not both"
            raise errors.ValidationError([errors.FieldError("redis_url", rule)])
        api_key = env.value(API_KEY, api_key)
        if token_provider is None:
            client_id = env.value(CLIENT_ID, client_id)
            client_secret = env.value(CLIENT_SECRET, client_secret)
        env.check()  # every missing credential at once, before anything else is looked at
        if "daily_quota" not in settings:  # the v3 key's; the v2 client's key is another
            settings["daily_quota"] = env.daily_quota()
        options = _options(env, BASE_URL, base_url, settings)
        shared = redis
        if shared is None and (url := env.optional(REDIS_URL, redis_url)) is not None:
            given = redis_url is not None
            shared = connect(url, setting=REDIS_URL.argument if given else REDIS_URL.variable)
        space = ""
        if shared is not None:
            space = namespace(_redis_prefix(env.value(REDIS_PREFIX, redis_prefix)), api_key, client_id or "")
            if token_cache is None:
                token_cache = RedisTokenCache(shared, prefix=space, clock=options.clock)
        transport, owned = transport_for(options, env.environ)
        tokens: TokenProvider
        if token_provider is not None:
            tokens = as_token_provider(token_provider)
        else:
            url, name = env.url(TOKEN_URL, token_url)
            tokens = TokenManager(
                transport=transport,
                token_url=check_url(url, setting=name),
                client_id=client_id or "",
                client_secret=client_secret or "",
                settings=token_settings,
                clock=options.clock,
                on_token_refresh=on_token_refresh,
                cache=token_cache,
                retry_policy=options.retry_policy,
            )
        prefix = env.prefix(authorization_prefix)
        credentials = JwtCredentials(api_key, tokens, prefix=prefix, owns_tokens=token_provider is None)
        self._pipeline = Pipeline(options, credentials, transport, owned=owned)
        self._redis = None  # a Redis client this client made (from redis_url), closed with it
        if shared is not None:
            self._pipeline.share_budget(shared, space)
            self._redis = shared if redis is None else None
        self.accounts = Accounts(self._pipeline, options.clock)
        # whose account list the reconciler reads: a journal's index of another key's is never used
        owner = hashlib.sha256(f"{options.base_url}\n{api_key}".encode()).hexdigest()[:32]
        self.accounts.reconciler.owner = owner
        self.webhooks = Webhooks(self._pipeline)
        self.bulk = Bulk(self.accounts)

    def __repr__(self) -> str:
        return f"<PartnerClient {self._pipeline.options.base_url}>"

    @property
    def token_provider(self) -> TokenProvider:
        """Where this client's JWTs come from (the ``TokenManager`` unless you passed your own)."""
        credentials = self._pipeline.credentials
        assert isinstance(credentials, JwtCredentials)
        return credentials.tokens

    async def aclose(self) -> None:
        """Stop the account sweeps and token renewals in flight, then close the pool if the client
        created it. Safe to call twice. ``WrongEventLoopError`` (closing nothing) from another event loop
        than the client's while that one is open."""
        self._pipeline.check_close()
        await self.accounts.aclose()
        try:
            await self._pipeline.aclose()
        finally:
            if self._redis is not None:
                redis, self._redis = self._redis, None
                await redis.aclose()


class LegacyBillingClient(_Lifecycle):
    """The legacy v2 billing-plan endpoint: HTTP Basic auth plus the ``api_key`` query parameter.

    A setting not passed is read from ``environ`` (default ``os.environ``): ``CTCT_LEGACY_USERNAME``,
    ``CTCT_LEGACY_PASSWORD``, ``CTCT_LEGACY_API_KEY`` (never ``CTCT_API_KEY``: the v2 key is another
    key, and it travels in the query string), ``CTCT_LEGACY_BASE_URL`` and ``CTCT_RATE_LIMIT``, as for
    ``PartnerClient``. The other settings are those of ``ClientOptions``.
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        **settings: Unpack[ClientSettings],
    ) -> None:
        env = Environment(environ)
        username = env.value(LEGACY_USERNAME, username)
        password = env.value(LEGACY_PASSWORD, password)
        api_key = env.value(LEGACY_API_KEY, api_key)
        env.check()
        credentials = BasicCredentials(username, password, api_key)
        options = _options(env, LEGACY_BASE_URL, base_url, settings)
        transport, owned = transport_for(options, env.environ)
        self._pipeline = Pipeline(options, credentials, transport, owned=owned)
        self._clock = options.clock

    def __repr__(self) -> str:
        return f"<LegacyBillingClient {self._pipeline.options.base_url}>"

    async def get_plan(self, account_id: str, *, timeout: float | None = None) -> LegacyPlan:
        """The account's billing plan (``plan_type`` 1 is the trial)."""
        response = await self._pipeline.send(operations.build_legacy_get_plan(account_id), timeout=timeout)
        return operations.parse_legacy_plan(response)

    async def update_plan(
        self,
        account_id: str,
        *,
        plan_type: int,
        billing_day_of_month: int | None = None,
        timeout: float | None = None,
    ) -> LegacyPlan:
        """Change the plan; ``billing_day_of_month`` only counts on the move off the trial."""
        request = operations.build_legacy_update_plan(account_id, plan_type, billing_day_of_month)
        return operations.parse_legacy_plan(await self._pipeline.send(request, timeout=timeout))

    async def cancel(
        self,
        account_id: str,
        *,
        reason: CancelReason | int | None = None,
        cancel_date: dt.datetime | None = None,
        timeout: float | None = None,
    ) -> LegacyPlan:
        """Cancel the account, now unless ``cancel_date`` (timezone-aware) says otherwise."""
        now = dt.datetime.fromtimestamp(self._clock.time(), dt.UTC)
        when = cancel_date if cancel_date is not None else now
        request = operations.build_legacy_cancel(account_id, reason, when)
        return operations.parse_legacy_plan(await self._pipeline.send(request, timeout=timeout))
