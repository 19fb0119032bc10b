"""Credentials: what varies between the v3 and the v2 client, as small strategy objects (httpx's ``Auth``).

The pipeline asks its credentials for the headers of each attempt and tells them when the API answered
401; it never knows whether a JWT or a password is behind them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ._auth import TokenManager, TokenProvider
from ._tokens import basic_auth

__all__ = ["BasicCredentials", "Credentials", "JwtCredentials"]


class Credentials(Protocol):
    """Gives an attempt its credentials and hears when the API refused them."""

    query: Mapping[str, str] | None
    """Query parameters every request carries (the v2 ``api_key``), or ``None``."""

    def ready(self) -> Mapping[str, str] | None:
        """The headers to send now if they need no wait (the fast path), else ``None``."""
        ...

    async def headers(self) -> Mapping[str, str]:
        """The credential headers to send now (may wait, for a token)."""
        ...

    def refused(self, headers: Mapping[str, str]) -> bool:
        """The API answered 401 to ``headers``: whether a replay with fresh ones can succeed."""
        ...

    async def aclose(self) -> None:
        """Stop what the credentials run in the background, if anything."""
        ...


class JwtCredentials:
    """The v3 partner credentials: the API key (``x-api-key``) and a JWT from ``tokens``.

    The header dict is built once per token and shared by the attempts that send it. A 401 tells the
    provider which token was refused (compare-and-clear), and the attempt is replayed once.
    """

    __slots__ = ("_api_key", "_fresh", "_headers", "_owns_tokens", "_prefix", "_token", "query", "tokens")

    def __init__(self, api_key: str, tokens: TokenProvider, *, prefix: str = "", owns_tokens: bool = False):
        self._api_key = api_key
        self.tokens = tokens
        self._prefix = prefix
        self._owns_tokens = owns_tokens
        self._token: str | None = None
        self._headers: Mapping[str, str] = {}
        self.query: Mapping[str, str] | None = None
        self._fresh = tokens.fresh_token if isinstance(tokens, TokenManager) else None

    def ready(self) -> Mapping[str, str] | None:
        """The cached headers while the manager's token is fresh (no await, no renewal due)."""
        if self._fresh is not None and (token := self._fresh()) is not None and token == self._token:
            return self._headers
        return None

    async def headers(self) -> Mapping[str, str]:
        token = await self.tokens.get_token()
        if token != self._token:
            self._headers = {"x-api-key": self._api_key, "Authorization": self._prefix + token}
            self._token = token
        return self._headers

    def refused(self, headers: Mapping[str, str]) -> bool:
        self.tokens.invalidate(headers["Authorization"][len(self._prefix) :])
        return True

    async def aclose(self) -> None:
        if self._owns_tokens and isinstance(self.tokens, TokenManager):
            await self.tokens.aclose()

    def __repr__(self) -> str:
        return f"<JwtCredentials {self.tokens!r}>"


class BasicCredentials:
    """The v2 billing credentials: HTTP Basic auth and the ``api_key`` query parameter."""

    __slots__ = ("_headers", "query")

    def __init__(self, username: str, password: str, api_key: str) -> None:
        self._headers = {"Authorization": basic_auth(username, password)}
        self.query: Mapping[str, str] | None = {"api_key": api_key}

    def ready(self) -> Mapping[str, str] | None:
        return self._headers

    async def headers(self) -> Mapping[str, str]:
        return self._headers

    def refused(self, headers: Mapping[str, str]) -> bool:
        return False  # the password won't change by asking again

    async def aclose(self) -> None:
        pass

    def __repr__(self) -> str:
        return "<BasicCredentials>"
