"""``PartnerClient`` (v3 partner API, JWT) and ``LegacyBillingClient`` (v2 billing, basic auth).

Each client owns one transport (one aiohttp connection pool) for its lifetime; use it with ``async with``
or call ``aclose()``. Operations live on the resource facades ``client.accounts`` and
``client.webhooks``; they validate their input, build a request, send it through the client's pipeline
and parse the answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import aiohttp

from . import errors, operations
from .accounts import Accounts
from .auth import TokenManager, TokenProvider, TokenRefresh, TokenSettings, as_token_provider
from .clock import SYSTEM_CLOCK, Clock
from .models import CancelReason, LegacyPlan
from .protocol import Request, Response, error_for
from .tokens import DEFAULT_TOKEN_URL, basic_auth
from .transport import Timeouts, Transport, check_url
from .webhooks import Webhooks

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_LEGACY_URL", "LegacyBillingClient", "PartnerClient"]

DEFAULT_BASE_URL = "https://api.cc.email/v3"
DEFAULT_LEGACY_URL = "https://api.constantcontact.com/v2"


def _required(setting: str, value: str | None) -> str:
    if not value:
        raise errors.ValidationError([errors.FieldError(setting, "is required")])
    return value


class _Client:
    """What both clients share: the transport, the lifecycle and the error check."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

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

    def _check(self, request: Request, response: Response) -> Response:
        if response.status >= 400:
            raise error_for(request.method, self._transport.url_for(request), response)
        return response


class PartnerClient(_Client):
    """The v3 technology-partner API.

    Every call carries the API key (``x-api-key``) and a partner JWT (``Authorization``). The JWT comes
    from ``token_provider`` if given, else from the client-credentials token endpoint at ``token_url``
    with ``client_id`` and ``client_secret``. ``authorization_prefix`` goes before the JWT: empty by
    default, as the vendor's examples send it; ``"Bearer "`` for the newer token URL.
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
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        user_agent: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._api_key = _required("api_key", api_key)
        transport = Transport(
            base_url=base_url,
            session=session,
            timeouts=timeouts,
            max_connections=max_connections,
            user_agent=user_agent,
        )
        super().__init__(transport)
        self._prefix = authorization_prefix
        if token_provider is not None:
            self._tokens = as_token_provider(token_provider)
        else:
            self._tokens = TokenManager(
                transport=transport,
                token_url=check_url(token_url, setting="token_url"),
                client_id=_required("client_id", client_id),
                client_secret=_required("client_secret", client_secret),
                settings=token_settings,
                clock=clock,
                on_token_refresh=on_token_refresh,
            )
        self.accounts = Accounts(self)
        self.webhooks = Webhooks(self)

    def __repr__(self) -> str:
        return f"<PartnerClient {self._transport.base_url}>"

    async def send(self, request: Request) -> Response:
        """Send one built request with credentials; on a 401 renew the token once and replay once.

        Returns the response on success and raises the matching ``APIError`` on an error status.
        """
        token = await self._tokens.get_token()
        response = await self._send_with(request, token)
        if response.status == 401:
            self._tokens.invalidate(token)
            response = await self._send_with(request, await self._tokens.get_token())
        return self._check(request, response)

    async def _send_with(self, request: Request, token: str) -> Response:
        headers = {"x-api-key": self._api_key, "Authorization": self._prefix + token}
        return await self._transport.send(request, headers)


class LegacyBillingClient(_Client):
    """The legacy v2 billing-plan endpoint: HTTP Basic auth plus the ``api_key`` query parameter."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        api_key: str,
        base_url: str = DEFAULT_LEGACY_URL,
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        user_agent: str | None = None,
    ) -> None:
        self._auth = {
            "Authorization": basic_auth(_required("username", username), _required("password", password))
        }
        self._query = {"api_key": _required("api_key", api_key)}
        super().__init__(
            Transport(
                base_url=base_url,
                session=session,
                timeouts=timeouts,
                max_connections=max_connections,
                user_agent=user_agent,
            )
        )

    def __repr__(self) -> str:
        return f"<LegacyBillingClient {self._transport.base_url}>"

    async def send(self, request: Request) -> Response:
        """Send one built request with the basic credentials and API key; raise on an error status."""
        return self._check(request, await self._transport.send(request, self._auth, self._query))

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
        when = cancel_date if cancel_date is not None else dt.datetime.now(dt.UTC)
        request = operations.build_legacy_cancel(account_id, reason, when)
        return operations.parse_legacy_plan(await self.send(request))
