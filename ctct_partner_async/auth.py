"""Where the partner JWT comes from: the ``TokenProvider`` seam.

``PartnerClient`` asks its provider for a token before each call and tells it which token a 401 refused.
Pass your own provider (an object with ``get_token``, or any async callable returning the JWT) or let
the client build the client-credentials manager from ``client_id`` and ``client_secret``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import attrs

from . import errors
from .clock import SYSTEM_CLOCK, Clock
from .tokens import DEFAULT_SCOPE, Token, basic_auth, build_token_request, parse_token_response
from .transport import Transport

__all__ = ["TokenManager", "TokenProvider", "TokenRefresh", "TokenSettings", "as_token_provider"]


@attrs.frozen(kw_only=True)
class TokenSettings:
    """When to renew the JWT: ``advisory_window`` seconds before expiry a renewal starts in the
    background while callers keep the still-valid token; ``mandatory_window`` seconds before expiry
    callers wait for the new one. The token endpoint is never asked more than once per ``min_interval``.
    """

    advisory_window: float = 300.0
    mandatory_window: float = 60.0
    min_interval: float = 1.0
    scope: str | None = DEFAULT_SCOPE


@attrs.frozen(kw_only=True)
class TokenRefresh:
    """What ``on_token_refresh`` hears about one token request (never the token itself)."""

    reason: str
    duration: float
    outcome: str
    error: BaseException | None = None


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


class TokenManager:
    """Client-credentials tokens: fetched on demand, renewed before expiry, one request at a time."""

    def __init__(
        self,
        *,
        transport: Transport,
        token_url: str,
        client_id: str,
        client_secret: str,
        settings: TokenSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
        on_token_refresh: Callable[[TokenRefresh], None] | None = None,
    ) -> None:
        settings = settings or TokenSettings()
        self._transport = transport
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = settings.scope
        self._margin = settings.mandatory_window
        self._on_refresh = on_token_refresh
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<TokenManager {self._token_url} client_id={self._client_id!r}>"

    def _usable(self) -> str | None:
        token = self._token
        if token is not None and self._clock.monotonic() < token.expires_at - self._margin:
            return token.value
        return None

    async def get_token(self) -> str:
        value = self._usable()
        if value is not None:
            return value
        async with self._lock:
            value = self._usable()
            if value is None:
                self._token = await self._fetch()
                value = self._token.value
            return value

    def invalidate(self, token: str) -> None:
        if self._token is not None and self._token.value == token:
            self._token = None

    async def _fetch(self) -> Token:
        request = build_token_request(self._token_url, self._scope)
        headers = {"Authorization": basic_auth(self._client_id, self._client_secret)}
        try:
            response = await self._transport.send(request, headers)
        except errors.TransportError as exc:
            raise errors.AuthenticationError(f"token endpoint {self._token_url} unreachable") from exc
        if response.status != 200:
            raise errors.AuthenticationError(
                f"token endpoint {self._token_url} refused the client credentials (HTTP {response.status})"
            )
        try:
            return parse_token_response(
                response, received_mono=self._clock.monotonic(), received_wall=self._clock.time()
            )
        except ValueError as exc:
            raise errors.AuthenticationError(f"token endpoint {self._token_url}: {exc}") from exc
