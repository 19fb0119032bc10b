"""The API key's budget beyond one process: the daily quota as counted here, and the key's rate and quota
shared in Redis by every process on the key (``PartnerClient(redis_url=...)``).

``DailyQuota`` is every client's: requests sent per UTC day as this SDK counted them, and the stop a
``quota_exceeded`` answer starts. Until 00:00 UTC a stopped client raises ``QuotaExceededError`` without
sending anything. The count is never enforced: the server's is the one that counts (other tools may
spend the key too), ours only tells (``client.quota``) and estimates.

``SharedBudget`` keeps three things in Redis, under one namespace per API key and client id:

- the key's next free slot, booked by one Lua script (GCRA in "reserve" style, on Redis ``TIME``): each
  request books the slot after the last one booked by any process and sleeps until it, one round trip
  per request and no polling, so N processes together send ``rate`` a second, evenly spaced;
- the rate in force: a 429 ``throttled`` seen by any process cuts it for all (by ``backoff_factor``,
  with the local limiter's cooldown), and it climbs back over ``recovery_time`` as the local one does;
- the day's request count, the ``quota_exceeded`` stop (until 00:00 UTC) and the workers' heartbeats.

When Redis does not answer (an error, or no answer within ``timeout``), nothing fails: the process paces
itself at ``rate / workers`` (the workers seen by heartbeat while Redis answered), logs once, asks Redis
again after ``retry_interval`` (one caller at a time) and logs once more when it answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import math
import uuid
from typing import TYPE_CHECKING, Any

import attrs

from . import _errors as errors
from ._clock import Clock
from ._environ import DEFAULT_DAILY_QUOTA
from ._policy import MIN_SLEEP, RateLimiter
from ._protocol import next_utc_midnight

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DEFAULT_DAILY_QUOTA", "DailyQuota", "QuotaStatus", "SharedBudget", "connect", "namespace"]

logger = logging.getLogger("ctct_partner_async.shared")

DAY = 86_400.0


@attrs.frozen(kw_only=True)
class QuotaStatus:
    """The key's daily quota as far as this SDK has counted it (``client.quota``).

    ``used``: requests sent since 00:00 UTC, by this process, or by every process on the key when the
    budget is shared in Redis (``shared``; then as of the last request or ``refresh_quota``). ``limit``:
    the configured ``daily_quota`` (``None``: not known). ``stopped``: a ``quota_exceeded`` answer has
    stopped the key until ``reset_at``; calls raise ``QuotaExceededError`` without sending.
    """

    used: int
    limit: int | None
    reset_at: dt.datetime
    shared: bool = False
    stopped: bool = False

    @property
    def remaining(self) -> int | None:
        """What is left today by the SDK's count (0 once stopped); ``None`` without a limit."""
        if self.stopped:
            return 0
        return None if self.limit is None else max(0, self.limit - self.used)


def _day_end(wall: float) -> float:
    return (math.floor(wall / DAY) + 1) * DAY


def quota_stop_error(reset_at: dt.datetime, method: str = "", url: str = "") -> errors.QuotaExceededError:
    """The error of a call refused by the SDK because the key's quota is spent (nothing was sent)."""
    message = "the API key's daily quota is spent; the SDK sent nothing"
    return errors.QuotaExceededError(
        reset_at=reset_at, method=method or "-", url=url or "-", status=429,
        error_keys=("quota_exceeded",), messages=(message,),
    )  # fmt: skip


class DailyQuota:
    """Requests sent today (UTC) as this SDK counts them, and the stop after a ``quota_exceeded``."""

    __slots__ = ("_clock", "_day_end", "limit", "shared", "stopped_until", "used")

    def __init__(self, limit: int | None, clock: Clock) -> None:
        if limit is not None and limit < 1:
            raise errors.ValidationError([errors.FieldError("daily_quota", "must be at least 1, or None")])
        self.limit = limit
        self._clock = clock
        self._day_end = -math.inf
        self.used = 0
        self.stopped_until: float | None = None  # wall-clock epoch seconds; None: not stopped
        self.shared = False

    def sent(self) -> None:
        """One request went out."""
        now = self._clock.time()
        if now >= self._day_end:
            self._day_end = _day_end(now)
            self.used = 0
        self.used += 1

    def seen(self, used: int) -> None:
        """The key's count today across processes, as Redis told it (replies to concurrent requests may
        come back out of order: the count only grows within a day)."""
        now = self._clock.time()
        if now >= self._day_end:
            self._day_end = _day_end(now)
            self.used = 0
        self.used = max(self.used, used)

    def stop(self, reset_at: dt.datetime) -> None:
        """A ``quota_exceeded`` answer: no request until ``reset_at``."""
        self.stopped_until = reset_at.timestamp()

    def check(self, method: str, url: str) -> None:
        """``QuotaExceededError`` if the key is stopped; lifts a stop whose reset has come."""
        until = self.stopped_until
        if until is None:
            return
        if self._clock.time() >= until:
            self.stopped_until = None
            return
        raise quota_stop_error(dt.datetime.fromtimestamp(until, dt.UTC), method, url)

    def status(self) -> QuotaStatus:
        now = self._clock.time()
        if self.stopped_until is not None and now >= self.stopped_until:
            self.stopped_until = None
        used = self.used if now < self._day_end else 0
        reset_at = next_utc_midnight(dt.datetime.fromtimestamp(now, dt.UTC))
        stopped = self.stopped_until is not None
        return QuotaStatus(
            used=used, limit=self.limit, reset_at=reset_at, shared=self.shared, stopped=stopped
        )


# One script per step, each one round trip. Times are seconds on Redis TIME, kept as text with
# microseconds ("%.6f": Lua's tostring keeps only 14 digits); a rate of 0 books no slot (no limit).
_RATE_AT = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function num(text, default)
  local value = tonumber(text)
  if value == nil then return default end
  return value
end
local function rate_at(now, ceiling, regain, floor, climb)
  if floor < ceiling then
    local rate = floor * (1 + regain * math.max(0, now - climb))
    if rate < ceiling then return rate end
  end
  return ceiling
end
"""

RESERVE = (
    _RATE_AT
    + """
-- KEYS: rate hash, today's count, the quota stop, the workers' heartbeats
-- ARGV: ceiling (0: no limit), regain per second, max_wait (negative: none), worker id, heartbeat (s),
--       seconds until the day's count expires, whether to count the request ('1') or only rebook it
local now = clock()
local stop = redis.call('GET', KEYS[3])
if stop then return {'stopped', stop, redis.call('GET', KEYS[2]) or '0', '0'} end
local ceiling, regain, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
if ceiling > 0 then
  local state = redis.call('HMGET', KEYS[1], 'tat', 'floor', 'climb')
  local tat = num(state[1], 0)
  local rate = rate_at(now, ceiling, regain, num(state[2], ceiling), num(state[3], 0))
  local slot = math.max(tat, now)
  wait = slot - now
  if max_wait >= 0 and wait > max_wait then return {'too_long', string.format('%.6f', wait), '0', '0'} end
  redis.call('HSET', KEYS[1], 'tat', string.format('%.6f', slot + 1 / rate))
  redis.call('PEXPIRE', KEYS[1], 60000)
end
local used
if ARGV[7] == '1' then
  used = redis.call('INCR', KEYS[2])
  if used == 1 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
else
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
end
local heartbeat = tonumber(ARGV[5])
redis.call('ZADD', KEYS[4], string.format('%.6f', now), ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', string.format('%.6f', now - heartbeat))
redis.call('EXPIRE', KEYS[4], math.ceil(heartbeat * 2))
local workers = redis.call('ZCARD', KEYS[4])
return {'ok', string.format('%.6f', wait), tostring(used), tostring(workers)}
"""
)

THROTTLED = (
    _RATE_AT
    + """
-- KEYS: rate hash. ARGV: ceiling, regain per second, backoff factor, min rate, cooldown (s)
local now = clock()
local state = redis.call('HMGET', KEYS[1], 'tat', 'floor', 'climb', 'quiet')
if now < num(state[4], 0) then return 0 end  -- answers to requests sent before the last cut
local ceiling, regain = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = num(state[1], 0)
local current = rate_at(now, ceiling, regain, num(state[2], ceiling), num(state[3], 0))
local floor = math.max(tonumber(ARGV[4]), current * tonumber(ARGV[3]))
local climb = math.max(now, tat)
redis.call('HSET', KEYS[1], 'floor', string.format('%.6f', floor), 'climb', string.format('%.6f', climb),
           'quiet', string.format('%.6f', climb + tonumber(ARGV[5])))
redis.call('PEXPIRE', KEYS[1], 60000)
return 1
"""
)


def _redis_errors() -> tuple[type[BaseException], ...]:
    """What a Redis that is down or hung raises (redis-py's errors, sockets, our own timeout)."""
    import redis.exceptions  # lazy: only a shared budget needs redis-py

    return (redis.exceptions.RedisError, OSError, TimeoutError)


class SharedBudget:
    """The key's rate, quota and workers in Redis (see the module docstring); one per client.

    ``namespace`` prefixes every key (the client builds it from its prefix and a hash of the API key and
    client id). ``rate`` is the key's configured rate (``None``: no spacing; the count and the quota stop
    are still shared). ``quota`` is the client's ``DailyQuota``, kept in step with Redis. ``timeout``
    bounds each Redis call; ``heartbeat``: a worker that sent nothing for that long is no longer counted.
    """

    def __init__(
        self,
        redis: Redis,
        namespace: str,
        *,
        rate: float | None,
        quota: DailyQuota,
        clock: Clock,
        max_wait: float | None = None,
        timeout: float = 1.0,
        retry_interval: float = 5.0,
        heartbeat: float = 30.0,
        backoff_factor: float = 0.5,
        recovery_time: float = 10.0,
        min_rate: float = 0.5,
        cooldown: float = 1.0,
    ) -> None:
        self._redis = redis
        self._rate_key = f"{namespace}:rate"
        self._stop_key = f"{namespace}:quota-stop"
        self._workers_key = f"{namespace}:workers"
        self._namespace = namespace
        self._rate = rate
        self.quota = quota
        quota.shared = True
        self._clock = clock
        self._max_wait = max_wait
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._heartbeat = heartbeat
        self._regain = (1.0 - backoff_factor) / backoff_factor / recovery_time
        self._throttle_args = [
            rate or 0.0,
            self._regain,
            backoff_factor,
            min(min_rate, rate or min_rate),
            cooldown,
        ]
        self._worker = uuid.uuid4().hex
        self._reserve = redis.register_script(RESERVE)
        self._throttled = redis.register_script(THROTTLED)
        self._errors = _redis_errors()
        self.workers = 1  # processes seen sending on the key, by heartbeat (this one included)
        self._down_since: float | None = None  # monotonic; None: Redis answers
        self._retry_at = -math.inf
        self._probing = False
        self._fallback: RateLimiter | None = None

    def __repr__(self) -> str:
        state = "down" if self._down_since is not None else "up"
        return f"<SharedBudget {self._namespace} rate={self._rate} redis {state}>"

    @property
    def available(self) -> bool:
        """Whether Redis answered the last time it was asked."""
        return self._down_since is None

    # -- per request ------------------------------------------------------------------------------------
    async def turn(self, method: str, url: str, *, count: bool = True) -> float:
        """Book this request's slot; the seconds to sleep until it (0.0 for now). ``count=False``: a
        request booked before and not sent (its slot went by), booked again but not counted again.

        ``QuotaExceededError`` (nothing booked) while the key's quota is stopped; ``RateLimitError`` when
        the slot is further than ``max_wait`` away. Falls back to the local pacing while Redis is down.
        """
        self.quota.check(method, url)
        if self._down_since is not None and (self._probing or self._clock.monotonic() < self._retry_at):
            return self._local_turn(count)
        self._probing = self._down_since is not None  # after an outage, one caller at a time asks
        keys, args = self._reserve_args(count)
        try:
            reply = await self._call(self._reserve, keys, args)
        except self._errors as exc:
            self._went_down(exc)
            return self._local_turn(count)
        finally:
            self._probing = False
        self._came_back()
        return self._booked(reply, method, url)

    def _day_key(self, now: float) -> str:
        """Today's count (UTC, by this process's wall clock)."""
        return f"{self._namespace}:quota:{dt.datetime.fromtimestamp(now, dt.UTC):%Y-%m-%d}"

    def _reserve_args(self, count: bool) -> tuple[list[str], list[Any]]:
        now = self._clock.time()
        keys = [self._rate_key, self._day_key(now), self._stop_key, self._workers_key]
        max_wait = -1.0 if self._max_wait is None else self._max_wait
        expire = math.ceil(_day_end(now) - now) + 3600  # the day, and an hour for skewed clocks
        args = [self._rate or 0.0, self._regain, max_wait, self._worker, self._heartbeat, expire]
        return keys, [*args, "1" if count else "0"]

    def _booked(self, reply: Any, method: str, url: str) -> float:
        outcome, value, used, workers = (_text(part) for part in reply)
        if outcome == "stopped":
            self.quota.seen(int(used))
            reset_at = dt.datetime.fromtimestamp(float(value), dt.UTC)
            self.quota.stop(reset_at)
            raise quota_stop_error(reset_at, method, url)
        wait = float(value)
        if outcome == "too_long":
            message = f"shared rate limit: next slot in {wait:.2f}s (max_wait {self._max_wait}s)"
            raise errors.RateLimitError(message, retry_after=wait)
        self.quota.seen(int(used))
        self.workers = max(1, int(workers))
        return wait if wait > MIN_SLEEP else 0.0

    def _local_turn(self, count: bool = True) -> float:
        if count:
            self.quota.sent()
        fallback = self._fallback
        return 0.0 if fallback is None else fallback.reserve()

    # -- answers ----------------------------------------------------------------------------------------
    async def throttled(self) -> None:
        """A 429 ``throttled``: lower the key's rate for every process (this one's while Redis is down)."""
        if self._rate is None:
            return
        if self._down_since is not None:
            if self._fallback is not None:
                self._fallback.throttled()
            return
        try:
            await self._call(self._throttled, [self._rate_key], self._throttle_args)
        except self._errors as exc:
            self._went_down(exc)

    async def quota_exceeded(self, reset_at: dt.datetime) -> None:
        """A ``quota_exceeded``: stop every process on the key until ``reset_at`` (this one at once)."""
        self.quota.stop(reset_at)
        expires = math.ceil(reset_at.timestamp() * 1000)
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.set(self._stop_key, f"{reset_at.timestamp():.6f}", pxat=expires)
        except self._errors as exc:
            self._went_down(exc)

    async def refresh(self) -> QuotaStatus:
        """The quota as Redis counts it now (this process's own count while Redis is down)."""
        try:
            async with asyncio.timeout(self._timeout):
                used, stop = await self._redis.mget(self._day_key(self._clock.time()), self._stop_key)
        except self._errors as exc:
            self._went_down(exc)
            return self.quota.status()
        self._came_back()
        self.quota.seen(int(used or 0))
        if stop is not None:
            self.quota.stop(dt.datetime.fromtimestamp(float(_text(stop)), dt.UTC))
        return self.quota.status()

    # -- Redis up and down ------------------------------------------------------------------------------
    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        async with asyncio.timeout(self._timeout):
            return await script(keys=keys, args=args)

    def _went_down(self, exc: BaseException) -> None:
        self._retry_at = self._clock.monotonic() + self._retry_interval
        if self._down_since is not None:
            return
        self._down_since = self._clock.monotonic()
        rate = self._rate
        self._fallback = None if rate is None else RateLimiter(rate / self.workers, 1, self._clock)
        pace = (
            "no rate limit" if rate is None else f"{rate / self.workers:g}/s ({rate:g}/s over {self.workers})"
        )
        logger.warning(
            "Redis did not answer (%s); pacing this process alone at %s until it does",
            type(exc).__name__,
            pace,
        )

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        outage = self._clock.monotonic() - self._down_since
        self._down_since = None
        self._fallback = None
        logger.info("Redis answers again after %.1fs; the key's budget is shared again", outage)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def namespace(prefix: str, api_key: str, client_id: str) -> str:
    """Where a key's shared state lives in Redis: ``{prefix}:{<hash>}``, the hash of the API key and the
    client id (never either in the clear). The braces make the hash a Redis Cluster hash tag, so every key
    of one API key lands on one node, as a Lua script needs."""
    digest = hashlib.sha256(f"{api_key}\0{client_id}".encode()).hexdigest()[:32]
    return f"{prefix}:{{{digest}}}"


def connect(url: str, *, setting: str, timeout: float = 1.0) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` (connected on first use), its calls bounded by ``timeout`` and
    retried once after a short backoff.
    ``ValidationError`` naming ``setting`` (never the URL: it may carry a password) for a bad URL, and
    an ImportError naming the extra without redis-py."""
    try:
        import redis.asyncio  # lazy: the package imports without the extra
    except ImportError as exc:
        raise ImportError('redis_url needs redis-py: pip install "ctct-partner-async[redis]"') from exc
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff

    # one quick retry for a blip; beyond it the SDK's own fallback takes over (redis-py's default of
    # three retries with up to 10 s of backoff would hold every call that long while Redis is down)
    retry = Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.02), 1)
    try:
        return redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=retry
        )
    except ValueError:
        rule = "must be a redis://, rediss:// or unix:// URL"
        raise errors.ValidationError([errors.FieldError(setting, rule)]) from None
