"""The token manager against a fake token endpoint and a fake clock: single flight, advisory and mandatory
renewal, failures and backoff, compare-and-clear, pacing, the cache seam, the hook, and closing."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

import attrs
import pytest

from ctct_partner_async import _errors as errors
from ctct_partner_async._auth import (
    CACHE_RETRY,
    MemoryTokenCache,
    TokenManager,
    TokenRefresh,
    TokenSettings,
    as_token_provider,
    log_token_refresh,
)
from ctct_partner_async._client import PartnerClient
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._policy import RetryPolicy
from ctct_partner_async._protocol import Request, Response
from ctct_partner_async._tokens import CachedToken

from .conftest import API_KEY, WireServer
from .test_token_lifecycle import gaps
from .test_tokens import make_jwt

URL = "https://auth.example/oauth2/token"
SECRET = "client-secret-xyz"
TTL = 100.0
SETTINGS = TokenSettings(advisory_window=30, mandatory_window=10, first_request_jitter=0)


class FakeEndpoint:
    """A token endpoint behind the transport seam: answers from a script (200 when empty), records the
    fake-clock time of every request, and holds requests while ``gate`` is closed."""

    def __init__(self, clock: FakeClock, ttl: float = TTL) -> None:
        self.clock = clock
        self.ttl = ttl
        self.sent: list[float] = []
        self.requests: list[tuple[Request, dict[str, str]]] = []
        self.script: deque[int | Exception] = deque()
        self.gate: asyncio.Event | None = None
        self.issued: list[str] = []

    async def send(
        self,
        request: Request,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Response:
        self.sent.append(self.clock.monotonic())
        self.requests.append((request, dict(headers or {})))
        if self.gate is not None:
            await self.gate.wait()
        action = self.script.popleft() if self.script else 200
        if isinstance(action, Exception):
            raise action
        if action != 200:
            key = "invalid_client" if action in (400, 401) else "temporarily_unavailable"
            return Response(action, {}, json.dumps({"error": key}).encode())
        return self._issue()

    def _issue(self) -> Response:
        wall = self.clock.time()
        jwt = make_jwt(exp=wall + self.ttl, iat=wall, jti=len(self.issued))
        self.issued.append(jwt)
        body = {"access_token": jwt, "expires_in": int(self.ttl), "token_type": "Bearer"}
        return Response(200, {}, json.dumps(body).encode())


class RecordingCache:
    """A custom TokenCache that records what the manager asks of it."""

    def __init__(self, entry: CachedToken | None = None) -> None:
        self.entry = entry
        self.gets: list[str] = []
        self.sets: list[tuple[str, CachedToken]] = []

    async def get(self, key: str) -> CachedToken | None:
        self.gets.append(key)
        return self.entry

    async def set(self, key: str, token: CachedToken) -> None:
        self.sets.append((key, token))
        self.entry = token


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def endpoint(clock: FakeClock) -> FakeEndpoint:
    return FakeEndpoint(clock)


@pytest.fixture
def events() -> list[TokenRefresh]:
    return []


@pytest.fixture
async def make_manager(
    endpoint: FakeEndpoint, clock: FakeClock, events: list[TokenRefresh]
) -> AsyncIterator[Callable[..., TokenManager]]:
    made: list[TokenManager] = []

    def make(**overrides: Any) -> TokenManager:
        options: dict[str, Any] = {"settings": SETTINGS, "on_token_refresh": events.append, **overrides}
        manager = TokenManager(
            transport=endpoint,
            token_url=URL,
            client_id="client-1",
            client_secret=SECRET,
            clock=clock,
            **options,
        )
        made.append(manager)
        return manager

    yield make
    for manager in made:
        await manager.aclose()


@pytest.fixture
def manager(make_manager: Callable[..., TokenManager]) -> TokenManager:
    return make_manager()


async def spin(times: int = 5) -> None:
    """Let every ready task run a few steps (no real waiting)."""
    for _ in range(times):
        await asyncio.sleep(0)


STEP = 0.25


async def settle(task: asyncio.Future[Any], clock: FakeClock, *, limit: int = 2000) -> None:
    """Move the fake clock on in ``STEP``s until ``task`` is done (its retries and backoff take clock time)."""
    for _ in range(limit):
        await spin()
        if task.done():
            return
        clock.advance(STEP)
    raise AssertionError(f"still waiting after {limit * STEP} s of fake time")


async def drain(manager: TokenManager) -> None:
    """Wait for the manager's renewal in flight, if any, to end."""
    while manager._renewal.running is not None:
        await asyncio.sleep(0)


async def test_single_flight_under_1000_concurrent_callers(
    manager: TokenManager, endpoint: FakeEndpoint
) -> None:
    """1,000 concurrent get_token() calls on an empty manager send one token request and share its token."""
    endpoint.gate = asyncio.Event()
    calls = [asyncio.create_task(manager.get_token()) for _ in range(1000)]
    await spin()
    assert len(endpoint.sent) == 1
    endpoint.gate.set()
    assert set(await asyncio.gather(*calls)) == {endpoint.issued[0]}
    assert len(endpoint.sent) == 1


async def test_fresh_token_is_served_without_requests(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A fresh token is handed out again without asking the endpoint."""
    first = await manager.get_token()
    clock.advance(60)
    assert [await manager.get_token() for _ in range(100)] == [first] * 100
    assert len(endpoint.sent) == 1


async def test_advisory_renewal_runs_in_the_background(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock, events: list[TokenRefresh]
) -> None:
    """In the advisory window callers keep the old token at once while one renewal runs behind them."""
    old = await manager.get_token()
    clock.advance(75)
    endpoint.gate = asyncio.Event()
    assert await manager.get_token() == old
    await spin()
    assert [await manager.get_token() for _ in range(50)] == [old] * 50
    assert len(endpoint.sent) == 2
    endpoint.gate.set()
    await drain(manager)
    assert await manager.get_token() == endpoint.issued[1] != old
    assert [(e.reason, e.outcome) for e in events] == [("initial", "ok"), ("advisory", "ok")]


async def test_mandatory_window_makes_callers_wait(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock, events: list[TokenRefresh]
) -> None:
    """In the mandatory window (the token too close to expiry to send) callers wait for the new token
    instead of using the old one."""
    old = await manager.get_token()
    clock.advance(95)
    endpoint.gate = asyncio.Event()
    waiting = [asyncio.create_task(manager.get_token()) for _ in range(10)]
    await spin()
    assert not any(task.done() for task in waiting)
    endpoint.gate.set()
    assert set(await asyncio.gather(*waiting)) == {endpoint.issued[1]} != {old}
    assert [e.reason for e in events] == ["initial", "mandatory"]
    assert len(endpoint.sent) == 2


async def test_expired_token_is_renewed_before_use(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A token past its expiry is never handed out."""
    old = await manager.get_token()
    clock.advance(TTL + 50)
    assert await manager.get_token() == endpoint.issued[1] != old


async def test_advisory_failure_keeps_the_token_and_backs_off(
    make_manager: Callable[..., TokenManager],
    endpoint: FakeEndpoint,
    clock: FakeClock,
    events: list[TokenRefresh],
) -> None:
    """A failed background renewal keeps serving the held token; the next one waits a full-jitter backoff
    over a doubling ceiling (1, 2, 4 s), never less than min_interval; then the new token is served."""
    manager = make_manager(rng=random.Random(5))
    old = await manager.get_token()
    endpoint.script.extend([503, 503, 503])
    start = clock.monotonic()
    clock.advance(75)
    served: list[str] = []
    while len(endpoint.sent) < 5:
        served.append(await manager.get_token())
        await drain(manager)
        clock.advance(STEP)
    assert set(served[:-1]) == {old}
    sent = [t - start for t in endpoint.sent[1:]]
    assert sent[0] == 75
    for gap, ceiling in zip(gaps(sent), [1, 2, 4], strict=True):
        assert 1.0 <= gap <= max(1.0, ceiling) + STEP
    assert await manager.get_token() == endpoint.issued[1]
    assert [(e.reason, e.outcome, e.status, e.attempt) for e in events[1:]] == [
        ("advisory", "error", 503, 1), ("advisory", "error", 503, 2), ("advisory", "error", 503, 3),
        ("advisory", "ok", None, 4),
    ]  # fmt: skip
    assert all(e.retrying for e in events[1:4])  # the held token is kept: renewal goes on


async def test_transient_failures_are_retried_until_the_caller_deadline(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """Connect errors, timeouts, 5xx and 429 are asked again with a growing full-jitter backoff, never twice
    within min_interval, while a caller waits; at its deadline it gets TokenUnavailableError (an
    AuthenticationError) naming the URL, caused by the last failure, and nothing more is sent."""
    manager = make_manager(retry_policy=RetryPolicy(deadline=30), rng=random.Random(7))
    connect = errors.ConnectError("could not connect: X", method="POST", url=URL)
    timeout = errors.RequestTimeoutError("no complete response in time", method="POST", url=URL)
    endpoint.script.extend([connect, timeout, 500, 429, *[503] * 50])
    start = clock.monotonic()
    waiting = asyncio.create_task(manager.get_token())
    await settle(waiting, clock)
    with pytest.raises(errors.TokenUnavailableError, match=r"gave no token \(HTTP 503") as info:
        waiting.result()
    assert isinstance(info.value, errors.AuthenticationError) and URL in str(info.value)
    assert isinstance(info.value.__cause__, errors.ServiceUnavailableError)
    sent = [t - start for t in endpoint.sent]
    assert len(sent) >= 6 and sent[-1] <= 30
    assert min(gaps(sent)) >= 1.0
    ceilings = [min(20.0, 2.0**n) for n in range(len(sent) - 1)]  # backoff_initial 1, doubling to 20
    assert all(gap <= max(1.0, ceiling) + STEP for gap, ceiling in zip(gaps(sent), ceilings, strict=False))
    assert clock.monotonic() - start <= 30 + STEP
    clock.advance(100)
    await spin()
    assert len(endpoint.sent) == len(sent)  # nobody waits: nothing more is asked


async def test_a_blip_is_absorbed_by_every_waiter(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock, events: list[TokenRefresh]
) -> None:
    """Three failures, then a token: 100 waiting callers all get it; every failed request is reported
    (attempt number, retrying), then the success."""
    endpoint.script.extend([503, errors.ConnectError("could not connect", method="POST", url=URL), 429])
    waiting = asyncio.gather(*(manager.get_token() for _ in range(100)))
    await settle(waiting, clock)
    assert set(waiting.result()) == {endpoint.issued[0]}
    assert len(endpoint.sent) == 4
    assert [(e.outcome, e.attempt, e.retrying, e.status) for e in events] == [
        ("error", 1, True, 503), ("error", 2, True, None), ("error", 3, True, 429), ("ok", 4, False, None)
    ]  # fmt: skip
    assert {e.reason for e in events} == {"initial"}


@pytest.mark.parametrize(
    "action", [errors.TransportError("TLS failed: ClientSSLError", method="POST", url=URL), 302, 404]
)
async def test_final_failures_are_not_asked_again(
    manager: TokenManager, endpoint: FakeEndpoint, action: int | Exception
) -> None:
    """What the retry decision never retries (a TLS failure, a redirect, a 404) reaches the waiters at
    once, after one request."""
    endpoint.script.append(action)
    with pytest.raises(errors.AuthenticationError) as info:
        await manager.get_token()
    assert not isinstance(info.value, errors.TokenUnavailableError)
    assert len(endpoint.sent) == 1


async def test_answer_without_token_raises(manager: TokenManager, endpoint: FakeEndpoint) -> None:
    """A 200 without an access_token is an AuthenticationError caused by the ValueError."""

    async def no_token(request: Request, headers: Any = None, query: Any = None) -> Response:
        return Response(200, {}, b'{"token_type": "Bearer"}')

    endpoint.send = no_token  # type: ignore[method-assign]
    with pytest.raises(errors.AuthenticationError, match="without an access_token") as info:
        await manager.get_token()
    assert isinstance(info.value.__cause__, ValueError)


async def test_wrong_credentials_fail_fast_without_a_storm(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """Wrong credentials: 1,000 callers share one failure, callers in the next second get it without a
    request, and later bursts send at most one request per second."""
    endpoint.script.extend([401] * 20)
    results = await asyncio.gather(*(manager.get_token() for _ in range(1000)), return_exceptions=True)
    assert all(isinstance(r, errors.AuthenticationError) for r in results)
    assert len(endpoint.sent) == 1
    message = str(results[0])
    assert URL in message and "HTTP 401 invalid_client" in message and SECRET not in message
    for _ in range(12):
        clock.advance(0.25)
        burst = await asyncio.gather(*(manager.get_token() for _ in range(100)), return_exceptions=True)
        assert all(isinstance(r, errors.AuthenticationError) for r in burst)
    assert len(endpoint.sent) == 4
    assert all(b - a >= 1.0 for a, b in zip(endpoint.sent, endpoint.sent[1:], strict=False))


async def test_failed_waiters_get_their_own_exception(manager: TokenManager, endpoint: FakeEndpoint) -> None:
    """Callers sharing one failure each raise their own exception object, all with the same cause."""
    endpoint.script.append(401)
    results = await asyncio.gather(*(manager.get_token() for _ in range(3)), return_exceptions=True)
    assert len({id(r) for r in results}) == 3
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 3
    assert len({id(r.__cause__) for r in failures}) == 1


async def test_invalidate_is_compare_and_clear(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock, events: list[TokenRefresh]
) -> None:
    """invalidate() forgets only the token still held: 1,000 401s on one token cause one renewal."""
    first = await manager.get_token()
    manager.invalidate("some-other-token")
    assert await manager.get_token() == first
    clock.advance(1)

    async def refused_then_retry() -> str:
        manager.invalidate(first)
        await asyncio.sleep(0)
        return await manager.get_token()

    results = await asyncio.gather(*(refused_then_retry() for _ in range(1000)))
    assert set(results) == {endpoint.issued[1]}
    assert len(endpoint.sent) == 2
    manager.invalidate(first)
    assert await manager.get_token() == endpoint.issued[1]
    assert [e.reason for e in events] == ["initial", "unauthorized"]


async def test_pacing_waits_out_min_interval(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A renewal right after a request waits, on the injected clock, until min_interval has passed."""
    first = await manager.get_token()
    manager.invalidate(first)
    waiting = asyncio.create_task(manager.get_token())
    await spin()
    assert not waiting.done() and clock.sleepers == 1
    clock.advance(0.5)
    await spin()
    assert not waiting.done()
    clock.advance(0.5)
    assert await waiting == endpoint.issued[1]
    assert endpoint.sent[1] - endpoint.sent[0] == 1.0


async def test_never_two_requests_within_min_interval(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """Refusing every token as soon as it comes, requests are still at least min_interval apart."""
    calls: list[asyncio.Task[str]] = []
    for _ in range(40):
        if endpoint.issued:
            manager.invalidate(endpoint.issued[-1])
        calls.append(asyncio.create_task(manager.get_token()))
        clock.advance(0.3)
        await spin()
    clock.advance(2)
    await asyncio.gather(*calls)
    gaps = [b - a for a, b in zip(endpoint.sent, endpoint.sent[1:], strict=False)]
    assert len(endpoint.sent) >= 10
    assert min(gaps) >= 1.0 - 1e-9


async def test_custom_cache_is_read_before_and_written_after(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A custom cache's fresh token is used without a request; a refused one is not; a new token is stored
    with its wall-clock expiry."""
    shared = make_jwt(exp=clock.time() + 3000, iat=clock.time())
    cache = RecordingCache(CachedToken(shared, clock.time() + 3000))
    manager = make_manager(cache=cache)
    assert await manager.get_token() == shared
    assert endpoint.sent == []
    assert cache.gets == [f"{URL} client-1 v3api/general.partner"]
    clock.advance(1)
    manager.invalidate(shared)
    assert await manager.get_token() == endpoint.issued[0]
    assert cache.sets == [(cache.gets[0], CachedToken(endpoint.issued[0], clock.time() + TTL))]


async def test_memory_cache_is_shared_between_managers(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """Two managers on one MemoryTokenCache need one token request between them."""
    cache = MemoryTokenCache(clock)
    one, two = make_manager(cache=cache), make_manager(cache=cache)
    assert await one.get_token() == await two.get_token()
    assert len(endpoint.sent) == 1
    clock.advance(TTL)
    assert await cache.get(f"{URL} client-1 v3api/general.partner") is None


async def test_broken_cache_does_not_stop_authentication(
    make_manager: Callable[..., TokenManager],
    endpoint: FakeEndpoint,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cache that raises is bypassed: one WARNING for the outage, however many calls fail on it, and one
    INFO when it answers again."""

    class BrokenCache:
        down = True
        calls = 0

        async def get(self, key: str) -> CachedToken | None:
            self.calls += 1
            if self.down:
                raise ConnectionError("cache down")
            return None

        async def set(self, key: str, token: CachedToken) -> None:
            self.calls += 1
            if self.down:
                raise ConnectionError("cache down")

    cache = BrokenCache()
    manager = make_manager(cache=cache)
    caplog.set_level(logging.INFO, logger="ctct_partner_async.auth")
    assert await manager.get_token() == endpoint.issued[0]
    clock.advance(1)  # min_interval
    manager.invalidate(endpoint.issued[-1])
    assert await manager.get_token() == endpoint.issued[-1]
    assert cache.calls == 1  # left alone for CACHE_RETRY after it failed
    cache.down = False
    clock.advance(CACHE_RETRY)
    manager.invalidate(endpoint.issued[-1])
    assert await manager.get_token() == endpoint.issued[-1]
    assert len(endpoint.issued) == 3 and cache.calls == 3
    records = [r for r in caplog.records if r.name == "ctct_partner_async.auth" and "cache" in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "token cache did not answer (ConnectionError); renewing without it until it does"),
        ("INFO", "token cache answers again"),
    ]


class LockingCache:
    """A ``SharedTokenCache`` in memory, on the fake clock: what several processes share through Redis,
    for managers in one test. Records every lock, release and discard."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.entry: CachedToken | None = None
        self.holder: tuple[str, float] | None = None  # owner, expiry (monotonic)
        self.locks: list[bool] = []
        self.fail_sets = 0
        self.releases: list[tuple[str, float]] = []
        self.discards: list[str] = []

    async def get(self, key: str) -> CachedToken | None:
        return self.entry

    async def set(self, key: str, token: CachedToken) -> None:
        if self.fail_sets:
            self.fail_sets -= 1
            raise ConnectionError("cache down")
        self.entry = token

    def held_by(self) -> str | None:
        if self.holder is not None and self.holder[1] <= self.clock.monotonic():
            self.holder = None
        return None if self.holder is None else self.holder[0]

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        taken = self.held_by() in (None, owner)
        if taken:
            self.holder = (owner, self.clock.monotonic() + ttl)
        self.locks.append(taken)
        return taken

    async def unlock(self, key: str, owner: str, *, keep: float = 0.0) -> None:
        self.releases.append((owner, keep))
        if self.held_by() == owner:
            self.holder = (owner, self.clock.monotonic() + keep) if keep > 0 else None

    async def discard(self, key: str, value: str) -> None:
        self.discards.append(value)
        if self.entry is not None and self.entry.value == value:
            self.entry = None


SHARED = attrs.evolve(SETTINGS, min_interval=0, poll_interval=0.5, lock_ttl=10)


async def test_a_shared_cache_runs_one_renewal_for_every_manager(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """Two managers (two processes) on one shared cache: the first takes the lock and asks; the second,
    finding the lock taken, watches the cache every poll_interval and takes the first's token without a
    request of its own; the lock is released once the token is written."""
    cache = LockingCache(clock)
    one, two = make_manager(cache=cache, settings=SHARED), make_manager(cache=cache, settings=SHARED)
    endpoint.gate = asyncio.Event()
    first = asyncio.create_task(one.get_token())
    await spin()
    second = asyncio.create_task(two.get_token())
    for _ in range(4):  # the request hangs for 2 s: the second manager only polls
        await spin()
        clock.advance(0.5)
    assert len(endpoint.sent) == 1
    assert cache.locks[0] is True and len(cache.locks) >= 5 and set(cache.locks[1:]) == {False}
    endpoint.gate.set()
    await spin()
    clock.advance(0.5)
    await spin()
    assert await first == await second == endpoint.issued[0]
    assert len(endpoint.sent) == 1
    assert [keep for _, keep in cache.releases] == [0.0] and cache.held_by() is None


async def test_a_killed_lock_holder_delays_the_others_at_most_lock_ttl(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A lock whose holder died (never released): the waiting manager asks once it expires."""
    cache = LockingCache(clock)
    cache.holder = ("dead-process", clock.monotonic() + 10)
    manager = make_manager(cache=cache, settings=SHARED)
    waiting = asyncio.create_task(manager.get_token())
    for _ in range(19):
        await spin()
        clock.advance(0.5)
    assert endpoint.sent == [] and not waiting.done()
    clock.advance(0.5)
    await spin(10)
    assert await waiting == endpoint.issued[0]


async def test_after_a_transient_failure_the_lock_is_kept_for_the_backoff(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A 503 from the endpoint: the renewer keeps the lock for its backoff (no other process asks the
    failing endpoint meanwhile), asks again after it, and then releases it."""
    cache = LockingCache(clock)
    endpoint.script.append(503)
    manager = make_manager(cache=cache, settings=SHARED, rng=random.Random(7))
    other = make_manager(cache=cache, settings=SHARED)
    waiting = asyncio.create_task(manager.get_token())
    await spin()
    ((owner, keep),) = cache.releases
    assert keep > 0 and cache.held_by() == owner
    assert await cache.lock("k", "other-process", 1) is False  # nobody else takes it during the backoff
    watching = asyncio.create_task(other.get_token())
    while not waiting.done():
        clock.advance(0.05)
        await spin()
    assert endpoint.sent == [endpoint.sent[0], pytest.approx(endpoint.sent[0] + keep, abs=0.06)]
    assert await waiting == endpoint.issued[0]
    clock.advance(0.5)
    await spin()
    assert await watching == endpoint.issued[0] and len(endpoint.sent) == 2
    assert cache.releases[-1][1] == 0.0 and cache.held_by() is None


async def test_a_cache_failure_while_holding_the_lock_still_releases_it(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """The token write fails while the lock is held: the lock is released all the same (the others wait
    on it, not for lock_ttl), and the next manager takes the lock and asks at once."""
    cache = LockingCache(clock)
    cache.fail_sets = 1
    one, two = make_manager(cache=cache, settings=SHARED), make_manager(cache=cache, settings=SHARED)
    assert await one.get_token() == endpoint.issued[0]
    assert [keep for _, keep in cache.releases] == [0.0] and cache.held_by() is None
    assert await two.get_token() == endpoint.issued[1]  # the write was lost: one more request, no wait
    assert clock.monotonic() == 1_000.0


async def test_a_token_due_for_renewal_in_the_cache_is_served_while_another_renews(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A manager starting while the shared token is in its advisory window and another process holds the
    lock takes that still-valid token at once, without a request."""
    cache = LockingCache(clock)
    cache.entry = CachedToken(make_jwt(exp=clock.time() + 20, iat=clock.time(), jti=7), clock.time() + 20)
    cache.holder = ("renewing-process", clock.monotonic() + 10)
    manager = make_manager(cache=cache, settings=SHARED)
    assert await manager.get_token() == cache.entry.value
    assert endpoint.sent == []


def test_lock_ttl_and_poll_interval_must_be_positive() -> None:
    with pytest.raises(errors.ValidationError) as info:
        TokenSettings(lock_ttl=0)
    assert str(info.value) == "token_settings.lock_ttl: must be more than 0"
    with pytest.raises(errors.ValidationError) as info:
        TokenSettings(poll_interval=0)
    assert str(info.value) == "token_settings.poll_interval: must be more than 0"


async def test_a_401_discards_the_refused_token_from_a_shared_cache(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """invalidate() asks the shared cache to forget the refused token (compare-and-clear, once), so no
    other process reads it again; a token another process has put there meanwhile is taken as is."""
    cache = LockingCache(clock)
    manager = make_manager(cache=cache, settings=SHARED)
    refused = await manager.get_token()
    manager.invalidate(refused)
    renewed = await manager.get_token()
    assert renewed == endpoint.issued[1] != refused and cache.discards == [refused]
    replaced = CachedToken(make_jwt(exp=clock.time() + TTL, iat=clock.time(), jti=99), clock.time() + TTL)
    cache.entry = replaced
    manager.invalidate(renewed)
    assert await manager.get_token() == replaced.value
    assert cache.discards == [refused, renewed] and len(endpoint.sent) == 2


async def test_hook_receives_detail_objects(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock, events: list[TokenRefresh]
) -> None:
    """on_token_refresh gets reason, duration (by the injected clock), outcome, error, status and attempt."""
    endpoint.gate = asyncio.Event()
    first = asyncio.create_task(manager.get_token())
    await spin()
    clock.advance(0.25)
    endpoint.gate.set()
    await first
    clock.advance(TTL)
    endpoint.script.append(503)
    renewed = asyncio.create_task(manager.get_token())
    await settle(renewed, clock)
    assert renewed.result() == endpoint.issued[1]
    assert events[0] == TokenRefresh(reason="initial", duration=0.25, outcome="ok")
    failed = events[1]
    assert (failed.reason, failed.outcome, failed.status, failed.duration) == ("mandatory", "error", 503, 0.0)
    assert (failed.attempt, failed.retrying) == (1, True)
    assert isinstance(failed.error, errors.AuthenticationError)
    assert (events[2].reason, events[2].outcome, events[2].attempt) == ("mandatory", "ok", 2)
    with pytest.raises(AttributeError):
        failed.reason = "changed"  # type: ignore[misc]


async def test_default_hook_logs_without_the_token(
    make_manager: Callable[..., TokenManager],
    endpoint: FakeEndpoint,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The default hook logs reason, duration and outcome (INFO, WARNING on error), never token or secret."""
    caplog.set_level(logging.DEBUG)
    manager = make_manager(on_token_refresh=None)
    token = await manager.get_token()
    clock.advance(TTL)
    endpoint.script.append(401)
    with pytest.raises(errors.AuthenticationError):
        await manager.get_token()
    records = [r for r in caplog.records if r.name == "ctct_partner_async.auth"]
    assert [r.levelname for r in records] == ["INFO", "WARNING"]
    assert "renewed (initial)" in records[0].getMessage()
    assert "renewal (mandatory) failed" in records[1].getMessage()
    text = caplog.text
    assert token not in text and SECRET not in text and "eyJ" not in text


def test_log_token_refresh_formats_duration() -> None:
    """The default hook can be called directly with a detail object."""
    log_token_refresh(TokenRefresh(reason="advisory", duration=0.5, outcome="ok"))


async def test_hook_that_raises_is_ignored(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken hook is logged and does not stop the token from being served."""

    def broken(detail: TokenRefresh) -> None:
        raise RuntimeError("hook bug")

    manager = make_manager(on_token_refresh=broken)
    assert await manager.get_token() == endpoint.issued[0]
    assert "on_token_refresh hook raised RuntimeError" in caplog.text


async def test_repr_hides_secret_and_token(manager: TokenManager) -> None:
    """The manager's repr shows the URL and client id, never the secret or the token."""
    token = await manager.get_token()
    text = repr(manager)
    assert URL in text and "client-1" in text
    assert SECRET not in text and token not in text


async def test_aclose_cancels_the_background_renewal(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """aclose() cancels a renewal in flight and waits for it; no new background renewal starts after."""
    old = await manager.get_token()
    clock.advance(75)
    endpoint.gate = asyncio.Event()
    assert await manager.get_token() == old
    task = manager._renewal.running
    assert task is not None
    await manager.aclose()
    assert task.cancelled() and manager._renewal.running is None
    assert await manager.get_token() == old
    assert manager._renewal.running is None
    clock.advance(20)
    with pytest.raises(RuntimeError, match="closed"):
        await manager.get_token()
    await manager.aclose()


async def test_waiter_sees_closing_as_runtime_error(manager: TokenManager, endpoint: FakeEndpoint) -> None:
    """A caller waiting on a renewal that aclose() cancels gets RuntimeError, not a stray CancelledError."""
    endpoint.gate = asyncio.Event()
    waiting = asyncio.create_task(manager.get_token())
    await spin()
    await manager.aclose()
    with pytest.raises(RuntimeError, match="closed during the token renewal"):
        await waiting


async def test_cancelled_waiter_does_not_cancel_the_renewal(
    manager: TokenManager, endpoint: FakeEndpoint
) -> None:
    """One waiter's cancellation leaves the shared renewal running for the others."""
    endpoint.gate = asyncio.Event()
    first = asyncio.create_task(manager.get_token())
    second = asyncio.create_task(manager.get_token())
    await spin()
    first.cancel()
    await spin()
    endpoint.gate.set()
    assert await second == endpoint.issued[0]
    assert first.cancelled()


async def test_background_errors_are_retrieved(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock, events: list[TokenRefresh]
) -> None:
    """An unexpected exception in a background renewal reaches the hook, never the loop's error handler."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        old = await manager.get_token()
        clock.advance(75)
        endpoint.script.append(RuntimeError("bug"))
        assert await manager.get_token() == old
        await drain(manager)
        gc.collect()
        await spin()
    finally:
        loop.set_exception_handler(None)
    assert seen == []
    assert "failed unexpectedly (RuntimeError)" in str(events[-1].error)


async def test_unexpected_error_reaches_waiters_as_authentication_error(
    manager: TokenManager, endpoint: FakeEndpoint
) -> None:
    """A bug in a renewal callers wait for raises AuthenticationError caused by it."""
    endpoint.script.append(KeyError("bug"))
    with pytest.raises(errors.AuthenticationError) as info:
        await manager.get_token()
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"advisory_window": 10, "mandatory_window": 20}, "token_settings.mandatory_window"),
        ({"min_interval": -1}, "token_settings.min_interval"),
    ],
)
def test_settings_are_checked(options: dict[str, Any], field: str) -> None:
    """A mandatory window longer than the advisory one, or a negative setting, is a ValidationError."""
    with pytest.raises(errors.ValidationError) as info:
        TokenSettings(**options)
    assert info.value.field == field


def test_default_settings() -> None:
    """Defaults: renew from 5 min before expiry, wait in the last 10 s, one token request a second, a
    backoff from 1 s to 20 s, half a second of jitter before the first request."""
    settings = TokenSettings()
    assert (settings.advisory_window, settings.mandatory_window, settings.min_interval) == (300, 10, 1)
    assert (settings.backoff_initial, settings.backoff_max, settings.first_request_jitter) == (1, 20, 0.5)
    assert settings.scope == "v3api/general.partner"


def test_manager_is_a_token_provider(manager: TokenManager) -> None:
    """The manager satisfies the TokenProvider seam as it is."""
    assert as_token_provider(manager) is manager


async def test_client_credentials_on_the_wire(wire: WireServer) -> None:
    """Through PartnerClient: Basic credentials and the form go to token_url, then the JWT to the API."""
    jwt = make_jwt(exp=4_000_000_000, iat=1)
    wire.reply(200, {"access_token": jwt, "expires_in": 3600, "token_type": "Bearer"})
    wire.reply(200, [])
    async with PartnerClient(
        api_key=API_KEY, client_id="client-1", client_secret=SECRET, base_url=wire.url + "/v3",
        token_url=wire.url + "/oauth2/token",
    ) as client:  # fmt: skip
        assert await client.webhooks.list() == []
    token_request, api_request = wire.requests
    assert (token_request.method, token_request.path) == ("POST", "/oauth2/token")
    assert (
        token_request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"client-1:" + SECRET.encode()).decode()
    )
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token_request.body.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["v3api/general.partner"]}
    assert api_request.headers["Authorization"] == jwt
    assert api_request.headers["x-api-key"] == API_KEY


async def test_throttled_token_requests_are_asked_again_with_jitter(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """Ten 429s in a row (other workers use the endpoint's 1/s): the caller still gets a token, the
    requests spread out by the jittered backoff, never closer than min_interval."""
    manager = make_manager(rng=random.Random(3))
    endpoint.script.extend([429] * 10)
    waiting = asyncio.create_task(manager.get_token())
    await settle(waiting, clock)
    assert waiting.result() == endpoint.issued[0]
    assert len(endpoint.sent) == 11
    assert min(gaps(endpoint.sent)) >= 1.0
    assert gaps(endpoint.sent) != [1.0] * 10  # jittered, not lock-step


@pytest.mark.parametrize(
    ("status", "refused"), [(400, True), (401, True), (403, True), (503, False), (500, False)]
)
async def test_refused_credentials_are_told_apart(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, status: int, refused: bool
) -> None:
    """400/401/403 from the token endpoint is ``CredentialsRefusedError``; a failing endpoint is
    ``TokenUnavailableError`` once the caller's deadline (here 0) leaves no time to ask again. Both are
    ``AuthenticationError``s naming the URL."""
    manager = make_manager(retry_policy=RetryPolicy(deadline=0))
    endpoint.script.append(status)
    with pytest.raises(errors.AuthenticationError) as info:
        await manager.get_token()
    assert isinstance(info.value, errors.CredentialsRefusedError) is refused
    assert isinstance(info.value, errors.TokenUnavailableError) is not refused
    assert URL in str(info.value)
    assert len(endpoint.sent) == 1


async def test_a_valid_token_is_never_thrown_away(
    make_manager: Callable[..., TokenManager],
    endpoint: FakeEndpoint,
    clock: FakeClock,
    events: list[TokenRefresh],
) -> None:
    """Through the whole advisory window the endpoint fails: callers get the held token at once every time
    while the renewal goes on behind them on its backoff; in the mandatory window (the last 10 s) they
    wait, and get the new token once the endpoint answers. No caller ever sees an error. (A seeded
    jitter: an unlucky draw fits all six failures and the success inside the advisory window.)"""
    manager = make_manager(rng=random.Random(3))
    old = await manager.get_token()
    endpoint.script.extend([503] * 6)
    clock.advance(75)
    served: list[str] = []
    while clock.monotonic() < endpoint.sent[0] + 90:
        served += [await manager.get_token() for _ in range(10)]
        await spin()
        clock.advance(STEP)
    assert set(served) == {old}
    renewals = [t - endpoint.sent[0] for t in endpoint.sent[1:]]
    assert renewals[0] == 75 and len(renewals) >= 4 and min(gaps(renewals)) >= 1.0
    late = asyncio.gather(*(manager.get_token() for _ in range(20)))
    await settle(late, clock)
    assert set(late.result()) == {endpoint.issued[1]}
    assert [e.outcome for e in events[1:]] == ["error"] * 6 + ["ok"]


async def test_refused_credentials_keep_the_valid_token_until_the_mandatory_window(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """Even refused credentials don't throw away a token that still works: callers keep it through the
    advisory window, then get CredentialsRefusedError."""
    old = await manager.get_token()
    endpoint.script.extend([401] * 10)
    clock.advance(75)
    assert await manager.get_token() == old
    await drain(manager)
    clock.advance(10)
    assert await manager.get_token() == old
    clock.advance(5.5)
    with pytest.raises(errors.CredentialsRefusedError):
        await manager.get_token()


async def test_first_request_is_jittered(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A client's first token request waits a random part of first_request_jitter (workers started
    together on one client id don't all ask at once); later renewals don't wait for it."""
    settings = TokenSettings(advisory_window=30, mandatory_window=10, first_request_jitter=2.0)
    expected = random.Random(11).uniform(0, 2.0)
    manager = make_manager(settings=settings, rng=random.Random(11))
    start = clock.monotonic()
    first = asyncio.create_task(manager.get_token())
    await settle(first, clock)
    assert endpoint.sent == [pytest.approx(start + expected, abs=STEP)]
    assert 0 < endpoint.sent[0] - start <= 2.0
    manager.invalidate(first.result())
    clock.advance(5)
    assert await manager.get_token() == endpoint.issued[1]
    assert endpoint.sent[1] == clock.monotonic()


async def test_first_request_jitter_is_skipped_for_a_cached_token(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A token another holder left in the cache is served at once: there is no request to jitter."""
    shared = make_jwt(exp=clock.time() + 3000, iat=clock.time())
    settings = TokenSettings(first_request_jitter=5.0)
    manager = make_manager(settings=settings, cache=RecordingCache(CachedToken(shared, clock.time() + 3000)))
    assert await manager.get_token() == shared
    assert endpoint.sent == []


async def test_a_cancelled_waiter_leaves_the_retries_to_the_others(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A waiter cancelled during the backoff is dropped; the others go on and get the token."""
    endpoint.script.extend([503, 503])
    first = asyncio.create_task(manager.get_token())
    second = asyncio.create_task(manager.get_token())
    await spin()
    first.cancel()
    await settle(second, clock)
    assert second.result() == endpoint.issued[0] and first.cancelled()


async def test_aclose_during_the_backoff_fails_the_waiters_as_closed(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """Closing while a renewal backs off: every waiter gets ClientClosedError, nothing more is sent."""
    endpoint.script.extend([503] * 5)
    waiting = [asyncio.create_task(manager.get_token()) for _ in range(3)]
    await spin()
    await manager.aclose()
    for task in waiting:
        with pytest.raises(errors.ClientClosedError, match="closed during the token renewal"):
            await task
    clock.advance(100)
    await spin()
    assert len(endpoint.sent) == 1


class SlowCache(RecordingCache):
    """A shared cache whose writes take a while (a Redis round trip): ``release`` lets them finish."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def set(self, key: str, token: CachedToken) -> None:
        await self.release.wait()
        await super().set(key, token)


async def test_a_caller_arriving_while_the_new_token_is_cached_is_served(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """The new token is refused (401) by the API while the renewal still writes it to a slow cache: the
    caller who then waits gets a token, not a wait without end."""
    cache = SlowCache()
    manager = make_manager(cache=cache)
    first = asyncio.create_task(manager.get_token())
    await spin()
    token = manager.fresh_token()
    assert token is not None and not first.done()  # held, being cached
    manager.invalidate(token)
    second = asyncio.create_task(manager.get_token())
    await spin()
    cache.release.set()
    await settle(asyncio.gather(first, second), clock)
    assert second.result() == endpoint.issued[1] != token


class Blackhole(FakeEndpoint):
    """A token endpoint whose requests never answer once ``hang`` is set."""

    hang = False

    async def send(
        self,
        request: Request,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Response:
        if self.hang:
            self.sent.append(self.clock.monotonic())
            await asyncio.Event().wait()
        return await super().send(request, headers, query)


async def test_a_hanging_endpoint_never_holds_callers_past_their_deadline(clock: FakeClock) -> None:
    """A token request that never answers: callers keep the held token through the advisory window; in the
    mandatory window each caller gets TokenUnavailableError at its own deadline (5 s), not never."""
    endpoint = Blackhole(clock)
    manager = TokenManager(transport=endpoint, token_url=URL, client_id="client-1", client_secret=SECRET,
                           settings=SETTINGS, clock=clock, retry_policy=RetryPolicy(deadline=5))  # fmt: skip
    try:
        old = await manager.get_token()
        endpoint.hang = True
        clock.advance(75)  # advisory: the renewal hangs behind the caller
        assert await manager.get_token() == old
        await spin()
        assert len(endpoint.sent) == 2
        clock.advance(15)  # mandatory: the held token is too close to expiry to send
        start = clock.monotonic()
        waiting = asyncio.create_task(manager.get_token())
        await settle(waiting, clock)
        with pytest.raises(errors.TokenUnavailableError, match="within the call's deadline"):
            waiting.result()
        assert clock.monotonic() - start == pytest.approx(5, abs=STEP)
        assert len(endpoint.sent) == 2  # still one request in flight, no second one
    finally:
        await manager.aclose()


async def test_retry_after_holds_across_renewals(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A 429 with Retry-After 30: callers arriving every second with a 5 s deadline give up, and the
    endpoint is not asked again before the 30 s are over (the wait belongs to the client, not one renewal)."""

    async def throttled_then_ok(request: Request, headers: Any = None, query: Any = None) -> Response:
        endpoint.sent.append(clock.monotonic())
        if len(endpoint.sent) == 1:
            return Response(429, {"Retry-After": "30"}, b'{"error_key": "throttled"}')
        return endpoint._issue()

    endpoint.send = throttled_then_ok  # type: ignore[method-assign]
    manager = make_manager(retry_policy=RetryPolicy(deadline=5))
    start = clock.monotonic()
    outcomes: list[object] = []
    for _ in range(40):
        call = asyncio.ensure_future(manager.get_token())
        await settle(call, clock)
        outcomes.append(call.exception() or call.result())
        clock.advance(1)
    assert [t - start for t in endpoint.sent][:1] == [0] and endpoint.sent[1] - start >= 30
    assert isinstance(outcomes[0], errors.TokenUnavailableError) and outcomes[-1] == endpoint.issued[0]


async def test_the_first_request_jitter_never_outlasts_a_short_deadline(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """With a 0 s deadline the first request's jitter is cut to it: the call gets its token, it never fails
    against a healthy endpoint without a request sent."""
    settings = TokenSettings(first_request_jitter=5.0)
    manager = make_manager(settings=settings, retry_policy=RetryPolicy(deadline=0), rng=random.Random(2))
    assert await manager.get_token() == endpoint.issued[0]
    assert len(endpoint.sent) == 1


async def test_a_deadline_never_cuts_the_first_request_short(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """A caller's deadline bounds the waiting beyond the first token request sent for it, not that request
    (as the retry policy's deadline bounds retries, not a first attempt): a slow first answer still arrives."""
    manager = make_manager(retry_policy=RetryPolicy(deadline=1))
    endpoint.gate = asyncio.Event()
    waiting = asyncio.create_task(manager.get_token())
    await spin()
    clock.advance(5)  # past the deadline while the request is in flight
    await spin()
    assert not waiting.done()
    endpoint.gate.set()
    assert await waiting == endpoint.issued[0]


@pytest.mark.parametrize(
    ("status", "retrying", "level"),
    [(429, True, "INFO"), (429, False, "WARNING"), (503, True, "WARNING"), (401, False, "WARNING")],
)
def test_a_throttled_request_asked_again_is_no_warning(
    status: int, retrying: bool, level: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Workers sharing a client id meet the endpoint's 1/s: a 429 asked again is logged at INFO; an outage,
    refused credentials or a last failure at WARNING."""
    caplog.set_level(logging.DEBUG, logger="ctct_partner_async.auth")
    error = errors.AuthenticationError("token endpoint gave no token")
    detail = TokenRefresh(
        reason="initial", duration=0.0, outcome="error", error=error, status=status, retrying=retrying
    )
    log_token_refresh(detail)
    assert [r.levelname for r in caplog.records] == [level]
