"""Rate limits by the injected clock: a token bucket per second and a daily quota that resets at 00:00 UTC.

The per-second limit is a token bucket (as API gateways do it): ``rate`` tokens a second, a burst of
``max(rate, 1)``. A request refused by the bucket does not use up the daily quota; a request refused by
the quota does not take a token. A rate or quota of 0 turns that limit off.
"""

from __future__ import annotations

from .clock import utc_day

THROTTLED = "throttled"
QUOTA_EXCEEDED = "quota_exceeded"


class TokenBucket:
    """``rate`` admissions a second, with a burst of ``max(rate, 1)``; ``rate`` 0 admits everything."""

    __slots__ = ("_capacity", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = max(rate, 1.0)
        self._tokens = self._capacity
        self._stamp: float | None = None

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        if self._rate <= 0:
            return True
        if self._stamp is not None and now > self._stamp:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        if self._stamp is None or now > self._stamp:
            self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class DailyQuota:
    """At most ``limit`` admissions per UTC day; ``limit`` 0 admits everything."""

    __slots__ = ("_day", "_limit", "used")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._day = -1
        self.used = 0

    def exhausted(self, now: float) -> bool:
        """Whether today's quota is used up (rolls over to a new day first)."""
        day = utc_day(now)
        if day != self._day:
            self._day = day
            self.used = 0
        return 0 < self._limit <= self.used

    def spend(self) -> None:
        """Count one admission against today."""
        self.used += 1


class KeyLimiter:
    """The per-second limit and the daily quota of one API key."""

    __slots__ = ("_bucket", "_off", "_quota")

    def __init__(self, rate: float, quota: int) -> None:
        self._bucket = TokenBucket(rate)
        self._quota = DailyQuota(quota)
        self._off = rate <= 0 and quota <= 0

    @property
    def used_today(self) -> int:
        """Requests counted against today's quota."""
        return self._quota.used

    def admit(self, now: float) -> str | None:
        """``None`` if a request may go ahead now, else the ``error_key`` of the 429 to answer."""
        if self._off:
            return None
        if self._quota.exhausted(now):
            return QUOTA_EXCEEDED
        if not self._bucket.take(now):
            return THROTTLED
        self._quota.spend()
        return None
