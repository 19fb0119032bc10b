"""Where the partner JWT comes from: the ``TokenProvider`` seam.

``PartnerClient`` asks its provider for a token before each call and tells it which token a 401 refused.
Pass your own provider (an object with ``get_token``, or any async callable returning the JWT) or let
the client build the client-credentials manager from ``client_id`` and ``client_secret``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from . import errors
from .tokens import DEFAULT_SCOPE, Token, basic_auth, build_token_request, parse_token_response
from .transport import Transport

__all__ = ["TokenManager", "TokenProvider", "as_token_provider"]


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
        scope: str | None = DEFAULT_SCOPE,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._margin = refresh_margin
        self._clock = clock
        self._wall_clock = wall_clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<TokenManager {self._token_url} client_id={self._client_id!r}>"

    def _usable(self) -> str | None:
        token = self._token
        if token is not None and self._clock() < token.expires_at - self._margin:
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
                response, received_mono=self._clock(), received_wall=self._wall_clock()
            )
        except ValueError as exc:
            raise errors.AuthenticationError(f"token endpoint {self._token_url}: {exc}") from exc
