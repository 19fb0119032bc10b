"""State shared by every process on one API key, kept in Redis (the optional ``[redis]`` extra).

>>> cache = RedisTokenCache.from_url("redis://localhost:6379/0")
>>> async with PartnerClient(api_key=..., client_id=..., client_secret=..., token_cache=cache) as client:
...     ...
>>> await cache.aclose()

``RedisTokenCache`` is a ``SharedTokenCache``: a process asking for a token first reads the one another
process put there, so workers on one client id share one token instead of asking for one each. Each
entry lives under ``{prefix}:token:{sha256 of the cache key}`` (the key names the client id, which never
reaches Redis in the clear) as JSON ``{"value": ..., "expires_at": ...}`` with a Redis expiry at the
token's. The token itself is kept only in Redis and in memory, never logged.

One renewal runs at a time for all processes: the renewer takes ``{prefix}:token-lock:{sha256}`` with
``SET NX PX`` (its random owner id, a short expiry so a killed holder never blocks the others for long),
checks the cache again, asks the endpoint, writes the token and releases the lock with a
compare-and-delete script (after a transient failure it keeps the lock for its backoff instead, so the
others don't ask the failing endpoint in turn). The others watch the token key until the new token is
there or the lock is free. A 401 removes the cached token only if it is still the refused one
(compare-and-clear), so one revoked token costs one renewal however many processes it reached.

redis-py is imported only when this module needs it, so the package works without the extra.
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


def lock_key(prefix: str, key: str) -> str:
    """The Redis key of the renewal lock for cache key ``key``."""
    return f"{prefix}:token-lock:{hashlib.sha256(key.encode()).hexdigest()}"


# KEYS[1] the lock, ARGV[1] the owner, ARGV[2] milliseconds: take it, or extend it if the owner has it
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""

# KEYS[1] the lock, ARGV[1] the owner, ARGV[2] milliseconds to keep it (0: delete it)
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local keep = tonumber(ARGV[2])
if keep > 0 then return redis.call('PEXPIRE', KEYS[1], keep) end
return redis.call('DEL', KEYS[1])
"""

# KEYS[1] the token entry, ARGV[1] the refused token: delete the entry only if it still holds that token
DISCARD = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, entry = pcall(cjson.decode, raw)
if ok and type(entry) == 'table' and entry['value'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


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


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


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
        self._acquire = redis.register_script(ACQUIRE)
        self._release = redis.register_script(RELEASE)
        self._discard = redis.register_script(DISCARD)

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

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """Take the renewal lock of ``key`` for ``owner`` and ``ttl`` seconds (``SET NX PX``; extended if
        ``owner`` has it already); ``False`` if another holder has it."""
        taken = await self._acquire(keys=[lock_key(self._prefix, key)], args=[owner, _milliseconds(ttl)])
        return bool(taken)

    async def unlock(self, key: str, owner: str, *, keep: float = 0.0) -> None:
        """Release the lock if ``owner`` still holds it; with ``keep`` (seconds), hold it that much longer
        instead (a backoff nobody else should spend asking the endpoint)."""
        ms = _milliseconds(keep) if keep > 0 else 0
        await self._release(keys=[lock_key(self._prefix, key)], args=[owner, ms])

    async def discard(self, key: str, value: str) -> None:
        """Forget the entry of ``key`` only if it still holds the token ``value`` (refused by the API)."""
        await self._discard(keys=[token_key(self._prefix, key)], args=[value])

    async def aclose(self) -> None:
        """Close the Redis client if this cache created it (:meth:`from_url`); else leave it to its owner."""
        if self._owned:
            await self._redis.aclose()

    def __repr__(self) -> str:
        return f"<RedisTokenCache prefix={self._prefix!r}>"
