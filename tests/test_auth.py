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

import pytest

from ctct_partner_async import _errors as errors
from ctct_partner_async._auth import (
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


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


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
    """In the mandatory window callers wait for the new token instead of using the old one."""
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
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock, events: list[TokenRefresh]
) -> None:
    """A failed background renewal keeps serving the cached token and retries after 1, 2, 4 s."""
    old = await manager.get_token()
    endpoint.script.extend([503, 503, 503])
    start = clock.monotonic()
    for step in [75, 0.5, 0.5, 1, 1, 2, 2]:
        clock.advance(step)
        assert await manager.get_token() == old
        await drain(manager)
    assert [t - start for t in endpoint.sent[1:]] == [75, 76, 78, 82]
    assert await manager.get_token() == endpoint.issued[1]
    assert [(e.reason, e.outcome, e.status) for e in events[1:]] == [
        ("advisory", "error", 503), ("advisory", "error", 503), ("advisory", "error", 503), ("advisory", "ok", None)
    ]  # fmt: skip


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
    ceilings = [min(60.0, 2.0**n) for n in range(len(sent) - 1)]  # backoff_initial 1, doubling
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
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache that raises is logged and bypassed."""

    class BrokenCache:
        async def get(self, key: str) -> CachedToken | None:
            raise ConnectionError("cache down")

        async def set(self, key: str, token: CachedToken) -> None:
            raise ConnectionError("cache down")

    manager = make_manager(cache=BrokenCache())
    assert await manager.get_token() == endpoint.issued[0]
    assert [r.levelname for r in caplog.records if r.name == "ctct_partner_async.auth"] == [
        "WARNING",
        "WARNING",
    ]


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
    """Defaults: renew from 5 min before expiry, wait from 1 min, one token request a second."""
    settings = TokenSettings()
    assert (settings.advisory_window, settings.mandatory_window, settings.min_interval) == (300, 60, 1)
    assert (settings.backoff_initial, settings.backoff_max, settings.scope) == (
        1,
        60,
        "v3api/general.partner",
    )


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


async def test_failed_mandatory_renewal_keeps_the_valid_token(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock, events: list[TokenRefresh]
) -> None:
    """In the mandatory window a failed renewal hands the waiters the held token (valid for more than
    usable_for: 5 s here, half the 10 s window); later callers get it without waiting, while renewal goes
    on behind them after 1, 2 s; once the token is no longer usable callers wait, a request goes out at
    once (not after the backoff), and they get the new token. No caller ever sees an error."""
    old = await manager.get_token()
    endpoint.script.extend([503] * 4)
    clock.advance(91)  # 9 s left: mandatory, usable until 5 s before expiry
    waiting = [asyncio.create_task(manager.get_token()) for _ in range(20)]
    await spin()
    assert {await task for task in waiting} == {old}
    assert len(endpoint.sent) == 2
    served: list[str] = []
    for _ in range(12):  # 91 s to 94 s: the held token, background renewals at +1 s and +2 s (then +4 s)
        clock.advance(0.25)
        served += [await manager.get_token() for _ in range(10)]
        await drain(manager)
    assert set(served) == {old}
    assert [t - endpoint.sent[0] for t in endpoint.sent[1:]] == [91, 92, 94]
    clock.advance(1.0)  # 95 s: 5 s left, no longer usable; the next background renewal was due at 98 s
    late = asyncio.gather(*(manager.get_token() for _ in range(20)))
    await settle(late, clock)
    assert set(late.result()) == {endpoint.issued[1]} != {old}
    assert endpoint.sent[-1] - endpoint.sent[0] <= 96.0  # cut short: one request at most a second away
    assert all(e.outcome == "error" for e in events[1:-1]) and events[-1].outcome == "ok"


async def test_a_final_failure_in_the_mandatory_window_keeps_the_valid_token(
    manager: TokenManager, endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """Even refused credentials don't throw away a token that still works: callers keep it while it is
    usable, then get CredentialsRefusedError."""
    old = await manager.get_token()
    endpoint.script.extend([401] * 10)
    clock.advance(91)
    assert await manager.get_token() == old
    clock.advance(4.5)
    with pytest.raises(errors.CredentialsRefusedError):
        await manager.get_token()


async def test_usable_for_is_a_setting(
    make_manager: Callable[..., TokenManager], endpoint: FakeEndpoint, clock: FakeClock
) -> None:
    """usable_for=1: the held token is kept until 1 s before expiry; usable_for=0 keeps it to the end."""
    settings = TokenSettings(advisory_window=30, mandatory_window=10, usable_for=1, first_request_jitter=0)
    manager = make_manager(settings=settings, retry_policy=RetryPolicy(deadline=0))
    old = await manager.get_token()
    endpoint.script.extend([503] * 10)
    clock.advance(98.5)
    assert await manager.get_token() == old
    clock.advance(0.5)
    with pytest.raises(errors.TokenUnavailableError):
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
