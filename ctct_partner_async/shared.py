"""State shared by every process on one API key, kept in Redis (the optional ``[redis]`` extra).

>>> cache = RedisTokenCache.from_url("redis://localhost:6379/0")
>>> async with PartnerClient(api_key=..., client_id=..., client_secret=..., token_cache=cache) as client:
...     ...
>>> await cache.aclose()

``RedisTokenCache`` is a ``TokenCache``: a process asking for a token first reads the one another process
put there, so workers on one client id share one token instead of asking for one each. Each entry lives
under ``{prefix}:token:{sha256 of the cache key}`` (the key names the client id, which never reaches
Redis in the clear) as JSON ``{"value": ..., "expires_at": ...}`` with a Redis expiry at the token's.
The token itself is kept only in Redis and in memory, never logged. redis-py is imported only when
this module needs it, so the package works without the extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import TYPE_CHECKING, Any, TypeGuard

from ._clock import SYSTEM_CLOCK, Clock
from ._tokens import CachedToken

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisTokenCache"]

logger = logging.getLogger("ctct_partner_async.shared")

MISSING_REDIS = 'the Redis token cache needs redis-py: pip install "ctct-partner-async[redis]"'


def _redis_module() -> Any:
    """``redis.asyncio``, or an ImportError that says which extra to install."""
    try:
        import redis.asyncio  # lazy: the package imports without the extra
    except ImportError as exc:
        raise ImportError(MISSING_REDIS) from exc
    return redis.asyncio


def token_key(prefix: str, key: str) -> str:
    """The Redis key for cache key ``key``: a hash, so the client id it names stays out of Redis."""
    return f"{prefix}:token:{hashlib.sha256(key.encode()).hexdigest()}"


def encode_token(token: CachedToken) -> str:
    return json.dumps({"value": token.value, "expires_at": token.expires_at})


def decode_token(raw: bytes | str) -> CachedToken | None:
    """The token in a stored value, or None when the value is not one of ours."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    value, expires_at = data.get("value"), data.get("expires_at")
    if not isinstance(value, str) or not value:
        return None
    if not _is_finite_number(expires_at):
        return None
    return CachedToken(value, float(expires_at))


def _is_finite_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class RedisTokenCache:
    """A ``TokenCache`` in Redis, shared by every process that uses the same ``redis`` and ``prefix``.

    ``redis`` is a ``redis.asyncio.Redis`` the caller owns (and closes); :meth:`from_url` builds one this
    cache owns, closed by :meth:`aclose`. A stored value that is not a token reads as no token (and is
    logged, without its content). ``clock`` gives the wall time the Redis expiry is counted from.
    """

    def __init__(self, redis: Redis, *, prefix: str = "ctct", clock: Clock = SYSTEM_CLOCK) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._owned = False

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "ctct", clock: Clock = SYSTEM_CLOCK) -> RedisTokenCache:
        """A cache on a new client for ``url`` (``redis://host:port/db``); :meth:`aclose` closes it."""
        cache = cls(_redis_module().Redis.from_url(url), prefix=prefix, clock=clock)
        cache._owned = True
        return cache

    async def get(self, key: str) -> CachedToken | None:
        name = token_key(self._prefix, key)
        raw = await self._redis.get(name)
        if raw is None:
            return None
        token = decode_token(raw)
        if token is None:
            logger.warning("token cache entry %s is not a token; ignored", name)
        return token

    async def set(self, key: str, token: CachedToken) -> None:
        remaining_ms = math.floor((token.expires_at - self._clock.time()) * 1000)
        if remaining_ms <= 0:
            return  # expired already: nothing worth sharing
        await self._redis.set(token_key(self._prefix, key), encode_token(token), px=remaining_ms)

    async def aclose(self) -> None:
        """Close the Redis client if this cache created it (:meth:`from_url`); else leave it to its owner."""
        if self._owned:
            await self._redis.aclose()

    def __repr__(self) -> str:
        return f"<RedisTokenCache prefix={self._prefix!r}>"
