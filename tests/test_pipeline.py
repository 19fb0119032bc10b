"""The send pipeline on MockTransport: order of waits, pacing, 401 replay, retries, hooks, counts.

No server and no socket: every answer comes from a handler function, time from a FakeClock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tenacity

from ctct_partner_async import (
    CallLog,
    ClientClosedError,
    ClientOptions,
    CreateStatus,
    FakeClock,
    LegacyBillingClient,
    NewAccount,
    PartnerClient,
    Request,
    Response,
    RetryDetails,
    RetryPolicy,
    _policy,
)
from ctct_partner_async import _errors as errors
from ctct_partner_async._hooks import ResponseDetails
from ctct_partner_async.testing import MockTransport

API_KEY = "test-api-key-0123"
JWT = "header.payload-jwt-secret.signature"
Handler = Callable[[Request], Response | Awaitable[Response]]


class Tokens:
    """A token provider the test controls: ``value`` is served, ``gate`` (if set) holds callers."""

    def __init__(self, value: str = JWT) -> None:
        self.value = value
        self.gate: asyncio.Event | None = None
        self.refused: list[str] = []

    async def get_token(self) -> str:
        if self.gate is not None:
            await self.gate.wait()
        return self.value

    def invalidate(self, token: str) -> None:
        self.refused.append(token)
        self.value = "renewed-" + token


def client_for(
    answer: Handler | MockTransport, *, tokens: Tokens | None = None, **options: Any
) -> PartnerClient:
    """A client on a MockTransport (or on ``answer`` itself), with no rate limit and no retry log."""
    transport = answer if isinstance(answer, MockTransport) else MockTransport(answer)
    settings: dict[str, Any] = {"rate_limit": None, "on_retry": None, **options}
    return PartnerClient(api_key=API_KEY, token_provider=tokens or Tokens(), transport=transport, **settings)


def account(i: int = 1, org: str | None = "Org") -> NewAccount:
    return NewAccount(contact_email=f"o{i}@example.com", login_name=f"client_{i:05d}", password="s3cret-pass",
                      country_code="US", state_code="MA", organization_name=org)  # fmt: skip


def api_error(status: int, key: str = "") -> Response:
    return Response.from_json(status, [{"error_key": key, "error_message": "x"}] if key else None)


async def run_clock(clock: FakeClock, tasks: list[asyncio.Task[Any]], *, step: float = 0.01,
                    at: dict[float, Callable[[], None]] | None = None) -> None:  # fmt: skip
    """Advance ``clock`` by ``step`` per few loop turns until every task is done; run ``at`` events."""
    events = dict(sorted((at or {}).items()))
    start = clock.monotonic()
    while not all(t.done() for t in tasks):
        if clock.monotonic() - start > 300:  # a livelock fails the test rather than hanging it
            for task in tasks:
                task.cancel()
            raise AssertionError("calls still pending after 300 s of fake time")
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(step)
        for when in [w for w in events if clock.monotonic() - start >= w]:
            events.pop(when)()
    await asyncio.gather(*tasks)


# -- pacing: concurrency slot -> token -> rate slot -> send ------------------------------------------------
async def test_no_bunching_after_a_token_wait() -> None:
    """13 calls wait 2 s for a token at rate_limit=4: afterwards no two requests are closer than 0.25 s."""
    clock = FakeClock()
    tokens = Tokens()
    tokens.gate = asyncio.Event()
    sent: list[float] = []

    def handler(request: Request) -> Response:
        sent.append(clock.monotonic())
        return Response.from_json(200, [])

    async with client_for(handler, tokens=tokens, rate_limit=4, clock=clock) as client:
        tasks = [asyncio.create_task(client.webhooks.list()) for _ in range(13)]
        await run_clock(clock, tasks, at={2.0: tokens.gate.set})
    assert len(sent) == 13
    assert sent[0] >= 1000.0 + 2.0
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert min(gaps) >= 0.25 - 1e-9
    assert sent[-1] - sent[0] == pytest.approx(12 * 0.25, abs=0.05)


async def test_no_bunching_after_a_token_wait_mid_run() -> None:
    """A renewal that holds callers in the middle of a paced run (a rollover) leaves the spacing intact."""
    clock = FakeClock()
    tokens = Tokens()
    sent: list[float] = []

    def handler(request: Request) -> Response:
        sent.append(clock.monotonic())
        if len(sent) == 4:
            tokens.gate = asyncio.Event()  # the next callers wait for a renewal, until t = 2.5 s
        return Response.from_json(200, [])

    def release() -> None:
        assert tokens.gate is not None
        tokens.gate.set()

    async with client_for(handler, tokens=tokens, rate_limit=4, clock=clock) as client:
        tasks = [asyncio.create_task(client.webhooks.list()) for _ in range(12)]
        await run_clock(clock, tasks, at={2.5: release})
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert len(sent) == 12
    assert min(gaps) >= 0.25 - 1e-9
    assert max(gaps) >= 1.0  # the renewal really held them


async def test_a_call_never_sends_a_token_it_saw_before_queueing() -> None:
    """The token renewed while calls waited for their turn: every later request carries the new one."""
    clock = FakeClock()
    tokens = Tokens("jwt-A")
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers["Authorization"])
        tokens.value = "jwt-B"
        return Response.from_json(200, [])

    async with client_for(handler, tokens=tokens, rate_limit=4, clock=clock) as client:
        tasks = [asyncio.create_task(client.webhooks.list()) for _ in range(6)]
        await run_clock(clock, tasks)
    assert seen == ["jwt-A"] + ["jwt-B"] * 5


async def test_concurrency_slot_is_held_over_the_token_wait() -> None:
    """max_concurrency bounds calls waiting for a token too: the slot comes first."""
    tokens = Tokens()
    tokens.gate = asyncio.Event()
    async with client_for(lambda r: Response.from_json(200, []), tokens=tokens, max_concurrency=3) as client:
        tasks = [asyncio.create_task(client.webhooks.list()) for _ in range(10)]
        await asyncio.sleep(0)
        assert client.limiter.free_slots == 0  # three hold a slot, seven queue for one
        tokens.gate.set()
        await asyncio.gather(*tasks)


# -- credentials: headers, the 401 replay, the v2 basic auth ----------------------------------------------
async def test_headers_carry_the_key_and_the_jwt() -> None:
    """x-api-key and the raw JWT by default; the prefix when configured; no query."""
    transport = MockTransport(lambda r: Response.from_json(200, []))
    async with PartnerClient(api_key=API_KEY, token_provider=Tokens(), transport=transport,
                             authorization_prefix="Bearer ", rate_limit=None) as client:  # fmt: skip
        await client.webhooks.list()
    (sent,) = transport.requests
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["Authorization"] == "Bearer " + JWT
    assert not sent.query


async def test_401_invalidates_the_refused_token_and_replays_once() -> None:
    """A 401 tells the provider which token failed; the replay carries the new one and succeeds."""
    tokens = Tokens()
    replies = [api_error(401, "unauthorized"), Response.from_json(200, [])]
    async with client_for(lambda r: replies.pop(0), tokens=tokens) as client:
        log = CallLog()
        await client.send(Request("GET", "partner/webhooks/subscriptions", "list_webhooks"), log=log)
    assert tokens.refused == [JWT]
    assert (log.attempts, log.requests, log.errors) == (1, 2, [])


async def test_second_401_raises_unauthorized() -> None:
    """Two 401s in a row: UnauthorizedError (an AuthenticationError), two requests, never a third."""
    transport = MockTransport(lambda r: api_error(401, "unauthorized"))
    async with PartnerClient(api_key=API_KEY, token_provider=Tokens(), transport=transport,
                             rate_limit=None) as client:  # fmt: skip
        with pytest.raises(errors.AuthenticationError) as info:
            await client.webhooks.list()
    assert isinstance(info.value, errors.UnauthorizedError)
    assert len(transport.requests) == 2


async def test_legacy_client_sends_basic_auth_and_key_query_and_never_replays_a_401() -> None:
    """v2: Basic auth and ?api_key=; a 401 is raised after one request (the password won't change)."""
    transport = MockTransport(lambda r: api_error(401))
    async with LegacyBillingClient(username="partner-user", password="basic-secret-pw", api_key=API_KEY,
                                   transport=transport, rate_limit=None, on_retry=None) as v2:  # fmt: skip
        with pytest.raises(errors.UnauthorizedError) as info:
            await v2.get_plan("a07e1my9tbw0")
    (sent,) = transport.requests
    assert sent.headers["Authorization"].startswith("Basic ")
    assert sent.query == {"api_key": API_KEY}
    assert API_KEY not in str(info.value) and "basic-secret-pw" not in str(info.value)


# -- errors and retries -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "cls"),
    [(307, errors.RedirectError), (400, errors.BadRequestError), (403, errors.PermissionDeniedError),
     (404, errors.NotFoundError), (409, errors.ConflictError), (415, errors.UnsupportedMediaTypeError),
     (418, errors.APIError)],
)  # fmt: skip
async def test_error_statuses_raise_their_class_after_one_request(
    status: int, cls: type[errors.APIError]
) -> None:
    """Each non-retryable status raises its class with method, full URL and status; nothing is resent."""
    transport = MockTransport(lambda r: api_error(status, "some_key"))
    async with client_for(transport) as client:
        with pytest.raises(cls) as info:
            await client.accounts.get_plan("a07e1my9tbw0")
    assert type(info.value) is cls
    assert (info.value.method, info.value.status) == ("GET", status)
    assert info.value.url == "https://api.cc.email/v3/partner/accounts/a07e1my9tbw0/plan"
    assert len(transport.requests) == 1


async def test_redirect_names_the_location_host_and_is_not_followed() -> None:
    """A 307 is a RedirectError naming the Location's host, never followed and never retried."""
    transport = MockTransport(
        lambda r: Response(307, {"Location": "http://elsewhere.example:8080/v3/partner/accounts"})
    )
    async with client_for(transport) as client:
        with pytest.raises(errors.RedirectError) as info:
            await client.accounts.create(account())
    assert info.value.location_host == "elsewhere.example"
    assert "elsewhere.example" in str(info.value) and "307" in str(info.value)
    assert len(transport.requests) == 1
    assert client.retries == 0


async def test_retries_until_success_on_the_fake_clock() -> None:
    """500, a connect error and a 429 are retried with backoff on the injected clock; the hook hears each."""
    clock = FakeClock(autojump=True)
    seen: list[RetryDetails] = []
    failures: list[Response | Exception] = [
        api_error(500),
        errors.ConnectError("refused", method="GET", url="u"),
        api_error(429, "throttled"),
    ]

    def handler(request: Request) -> Response:
        if failures:
            failure = failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return Response.from_json(200, [])

    async with client_for(handler, clock=clock, on_retry=seen.append) as client:
        log = CallLog()
        await client.send(Request("GET", "partner/webhooks/subscriptions", "list_webhooks"), log=log)
    assert [d.attempt for d in seen] == [1, 2, 3]
    assert [type(d.exception) for d in seen] == [
        errors.ServerError,
        errors.ConnectError,
        errors.ThrottledError,
    ]
    assert seen[0].error.startswith("ServerError: GET https://api.cc.email/v3/partner/webhooks/subscriptions")
    assert all(d.operation == "list_webhooks" for d in seen)
    assert (log.attempts, log.requests, len(log.errors)) == (4, 4, 3)
    assert client.retries == 3
    assert clock.monotonic() > 1000.0
    assert client.limiter.throttles == 1


async def test_one_decision_per_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry decision runs once per failed attempt and feeds the wait, the stop and the budget."""
    calls: list[type[BaseException]] = []
    real = _policy.decide

    def counting(error: BaseException, request: Request, policy: RetryPolicy) -> _policy.RetryDecision:
        calls.append(type(error))
        return real(error, request, policy)

    monkeypatch.setattr(_policy, "decide", counting)
    replies = [api_error(500), api_error(502), api_error(404)]
    async with client_for(lambda r: replies.pop(0), clock=FakeClock(autojump=True)) as client:
        with pytest.raises(errors.NotFoundError):
            await client.accounts.get_plan("a07e1my9tbw0")
    assert calls == [errors.ServerError, errors.ServerError, errors.NotFoundError]


async def test_attempt_cap_and_deadline() -> None:
    """No more than max_attempts attempts; no retry starts after the deadline."""
    clock = FakeClock(autojump=True)
    transport = MockTransport(lambda r: api_error(500))
    async with client_for(transport, clock=clock, retry_policy=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(errors.ServerError):
            await client.webhooks.list()
    assert len(transport.requests) == 3
    slow = RetryPolicy(max_attempts=100, deadline=10.0, backoff_initial=4.0, backoff_max=4.0)
    transport = MockTransport(lambda r: api_error(500))
    async with client_for(transport, clock=clock, retry_policy=slow) as client:
        started = clock.monotonic()
        with pytest.raises(errors.ServerError):
            await client.webhooks.list()
    assert 2 < len(transport.requests) < 100
    assert clock.monotonic() - started <= 10.0 + 4.0


async def test_max_attempts_one_sends_one_request() -> None:
    """max_attempts=1 sends exactly one request, whatever the error."""
    transport = MockTransport(lambda r: api_error(503))
    async with client_for(transport, retry_policy=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(errors.ServiceUnavailableError):
            await client.webhooks.list()
    assert len(transport.requests) == 1


async def test_budget_limits_retries_in_an_outage() -> None:
    """When the budget is spent, failures are raised without retry; throttles don't spend it."""
    replies: list[Response] = [api_error(500)] * 10
    policy = RetryPolicy(budget_reserve=2, budget_ratio=0.0, max_attempts=10)
    async with client_for(lambda r: replies.pop(0) if replies else Response.from_json(200, []),
                          clock=FakeClock(autojump=True), retry_policy=policy) as client:  # fmt: skip
        with pytest.raises(errors.ServerError):
            await client.webhooks.list()
        assert len(replies) == 7  # two retries from the reserve
        with pytest.raises(errors.ServerError):
            await client.webhooks.list()
        assert len(replies) == 6
        replies[:] = [api_error(429, "throttled")] * 3
        await client.webhooks.list()
        assert replies == []


async def test_post_is_not_resent_after_a_500() -> None:
    """A webhook test send (POST, not idempotent) that meets a 500 is raised at once."""
    transport = MockTransport(lambda r: api_error(500))
    async with client_for(transport) as client:
        with pytest.raises(errors.ServerError):
            await client.webhooks.send_test(1)
    assert len(transport.requests) == 1


async def test_quota_exceeded_is_raised_at_once_with_reset_time() -> None:
    """quota_exceeded: one request, QuotaExceededError resetting at 00:00 UTC, no retry, no rate cut."""
    transport = MockTransport(lambda r: api_error(429, "quota_exceeded"))
    async with client_for(transport, clock=FakeClock(autojump=True)) as client:
        with pytest.raises(errors.QuotaExceededError) as info:
            await client.webhooks.list()
    assert info.value.reset_at.hour == 0
    assert len(transport.requests) == 1
    assert client.retries == 0 and client.limiter.throttles == 0


async def test_cancellation_during_backoff_leaves_nothing_behind() -> None:
    """Cancelling a call asleep in backoff cancels it at once: no sleeper, no further request."""
    clock = FakeClock()
    transport = MockTransport(lambda r: api_error(500))
    async with client_for(transport, clock=clock) as client:
        task = asyncio.create_task(client.webhooks.list())
        while clock.sleepers == 0:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert clock.sleepers == 0
    assert len(transport.requests) == 1


async def test_success_path_never_builds_tenacity(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call that succeeds first time never constructs AsyncRetrying."""

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("AsyncRetrying built on the success path")

    monkeypatch.setattr(tenacity, "AsyncRetrying", boom)
    async with client_for(lambda r: Response.from_json(200, [])) as client:
        await client.webhooks.list()


# -- hooks ------------------------------------------------------------------------------------------------
async def test_hooks_get_details_with_the_exception_and_no_credentials() -> None:
    """on_request/on_response/on_retry get frozen details; a transport failure's exception is on them."""
    seen: list[object] = []
    failures: list[Exception] = [errors.ResponseError("reset", method="GET", url="u")]

    def handler(request: Request) -> Response:
        if failures:
            raise failures.pop()
        return Response.from_json(200, [])

    async with client_for(handler, clock=FakeClock(autojump=True), on_request=seen.append,
                          on_response=seen.append, on_retry=seen.append) as client:  # fmt: skip
        await client.webhooks.list()
    kinds = [type(d).__name__ for d in seen]
    assert kinds == ["RequestDetails", "ResponseDetails", "RetryDetails", "RequestDetails", "ResponseDetails"]
    failed = seen[1]
    assert isinstance(failed, ResponseDetails)
    assert failed.status is None and isinstance(failed.exception, errors.ResponseError)
    ok = seen[4]
    assert isinstance(ok, ResponseDetails) and ok.status == 200 and ok.exception is None
    for detail in seen:
        assert JWT not in repr(detail) and API_KEY not in repr(detail)


# -- safe create counts requests, not guesses ---------------------------------------------------------------
async def test_reconciled_create_counts_the_requests_sent() -> None:
    """A 500 then a 409, found in the list: reconciled with attempts == 2, the two POSTs sent."""
    posts: list[Request] = []

    def handler(request: Request) -> Response:
        if request.method == "POST":
            posts.append(request)
            return api_error(500) if len(posts) == 1 else api_error(409, "conflict")
        listed = {"encoded_account_id": "a07e1my9tbw0", "site_owner_name": "client_00001",
                  "organization_name": "Org"}  # fmt: skip
        return Response.from_json(200, {"site_owner_list": [listed]})

    async with client_for(handler, clock=FakeClock(autojump=True)) as client:
        result = await client.accounts.create(account())
    assert result.status is CreateStatus.RECONCILED
    assert result.encoded_account_id == "a07e1my9tbw0"
    assert result.attempts == len(posts) == 2


async def test_created_and_pending_count_requests() -> None:
    """created first time: 1; created after a replayed 401: 2; pending on a 503: 1 (never resent)."""
    replies = [Response.from_json(201, {"encoded_account_id": "a1"}),
               api_error(401), Response.from_json(201, {"encoded_account_id": "a2"}),
               api_error(503)]  # fmt: skip
    async with client_for(lambda r: replies.pop(0)) as client:
        first = await client.accounts.create(account(1))
        second = await client.accounts.create(account(2))
        third = await client.accounts.create(account(3))
    assert (first.status, first.attempts) == (CreateStatus.CREATED, 1)
    assert (second.status, second.attempts) == (CreateStatus.CREATED, 2)
    assert (third.status, third.attempts) == (CreateStatus.PENDING, 1)
    assert replies == []


# -- options and the transport seam ------------------------------------------------------------------------
def test_options_are_one_frozen_value() -> None:
    """Both clients build one ClientOptions from the same keywords, with the documented defaults."""
    client = PartnerClient(
        api_key=API_KEY, token_provider=Tokens(), transport=MockTransport(lambda r: Response(200))
    )
    options = client.options
    assert isinstance(options, ClientOptions)
    assert (options.rate_limit, options.max_concurrency, options.max_connections) == (4.0, 64, 100)
    assert options.retry_policy == RetryPolicy()
    with pytest.raises(AttributeError):
        options.rate_limit = 10  # type: ignore[misc]  # frozen: the assignment must fail
    v2 = LegacyBillingClient(username="u", password="p", api_key=API_KEY, rate_limit=10, max_concurrency=2)
    assert (v2.options.rate_limit, v2.options.max_concurrency) == (10, 2)


def test_transport_cannot_be_combined_with_aiohttp_settings() -> None:
    """transport= with session/timeouts/user_agent/max_connections is refused, naming each setting."""
    with pytest.raises(errors.ValidationError) as info:
        client_for(lambda r: Response(200), user_agent="me/1", max_connections=5)
    assert [e.field for e in info.value.errors] == ["user_agent", "max_connections"]


async def test_token_manager_fetches_through_the_transport() -> None:
    """With client credentials the token request goes through the same transport (here, the mock)."""

    def handler(request: Request) -> Response:
        if request.url.endswith("/oauth2/token"):
            return Response.from_json(200, {"access_token": JWT, "expires_in": 3600, "token_type": "Bearer"})
        return Response.from_json(200, [])

    transport = MockTransport(handler)
    async with PartnerClient(api_key=API_KEY, client_id="client-1", client_secret="client-secret-9",
                             token_url="https://auth.example/oauth2/token", transport=transport,
                             rate_limit=None) as client:  # fmt: skip
        await client.webhooks.list()
        await client.webhooks.list()
    token_request, *api_requests = transport.requests
    assert token_request.method == "POST" and token_request.headers["Authorization"].startswith("Basic ")
    assert [r.headers["Authorization"] for r in api_requests] == [JWT, JWT]


async def test_mock_transport_handler_may_be_async_and_must_answer_a_response() -> None:
    """An async handler works; a handler answering something else is a TypeError naming it."""

    async def handler(request: Request) -> Response:
        await asyncio.sleep(0)
        return Response.from_json(200, json.loads("[]"))

    async with client_for(handler) as client:
        assert await client.webhooks.list() == []
    async with client_for(lambda r: {"not": "a response"}) as client:  # type: ignore[arg-type,return-value]  # a wrong handler on purpose
        with pytest.raises(TypeError, match="dict"):
            await client.webhooks.list()


async def test_closed_client_refuses_calls() -> None:
    """After aclose a call raises RuntimeError at once, with no request."""
    transport = MockTransport(lambda r: Response.from_json(200, []))
    client = client_for(transport)
    await client.aclose()
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.webhooks.list()
    assert transport.requests == []


# -- found in review: slow providers, hooks under cancellation, fail-fast, reprs ------------------------------
class SlowTokens(Tokens):
    """A provider that does I/O for every token (5 ms on the fake clock), like a shared store."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    async def get_token(self) -> str:
        await self.clock.sleep(0.005)
        return self.value


async def test_a_slow_token_provider_neither_livelocks_nor_halves_the_rate() -> None:
    """A provider taking 5 ms per token at rate 4: every call is sent, 0.25 s apart, in about N/R."""
    clock = FakeClock()
    sent: list[float] = []

    def handler(request: Request) -> Response:
        sent.append(clock.monotonic())
        return Response.from_json(200, [])

    async with client_for(handler, tokens=SlowTokens(clock), rate_limit=4, clock=clock) as client:
        tasks = [asyncio.create_task(client.webhooks.list()) for _ in range(10)]
        await run_clock(clock, tasks, step=0.005)
    assert len(sent) == 10
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert min(gaps) >= 0.25 - 1e-9
    assert sent[-1] - sent[0] <= 9 * 0.25 + 0.05


async def test_on_response_hears_a_cancelled_request() -> None:
    """A request cancelled in flight still gets its ResponseDetails (status None, the CancelledError)."""
    seen: list[object] = []
    gate = asyncio.Event()

    async def handler(request: Request) -> Response:
        await gate.wait()
        return Response.from_json(200, [])

    async with client_for(handler, on_request=seen.append, on_response=seen.append) as client:
        task = asyncio.create_task(client.webhooks.list())
        while not seen:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [type(d).__name__ for d in seen] == ["RequestDetails", "ResponseDetails"]
    done = seen[1]
    assert isinstance(done, ResponseDetails) and done.status is None
    assert isinstance(done.exception, asyncio.CancelledError)


async def test_max_wait_fails_fast_before_waiting_for_a_token() -> None:
    """With rate_limit_max_wait=0 and the next turn taken, a call fails at once, not after the token wait."""
    clock = FakeClock()
    tokens = Tokens()
    async with client_for(lambda r: Response.from_json(200, []), tokens=tokens, rate_limit=1,
                          rate_limit_max_wait=0.0, clock=clock) as client:  # fmt: skip
        await client.webhooks.list()
        tokens.gate = asyncio.Event()  # a token wait that never ends
        with pytest.raises(errors.RateLimitError) as info:
            await asyncio.wait_for(client.webhooks.list(), 1.0)
    assert info.value.retry_after == pytest.approx(1.0)


async def test_sent_requests_hide_the_v2_key_and_the_jwt_in_their_repr() -> None:
    """What MockTransport records (credentials merged in) never shows them in a repr or assert diff."""
    transport = MockTransport(lambda r: Response.from_json(200, {"plan_type": 2}))
    async with LegacyBillingClient(username="partner-user", password="basic-secret-pw", api_key=API_KEY,
                                   transport=transport, rate_limit=None) as v2:  # fmt: skip
        await v2.get_plan("a07e1my9tbw0")
    assert transport.requests[0].query == {"api_key": API_KEY}
    text = repr(transport.requests) + repr(transport)
    assert API_KEY not in text and "basic-secret-pw" not in text and "Basic " not in text


async def test_a_byte_order_mark_is_not_a_broken_answer() -> None:
    """A UTF-8 body with a BOM is read as JSON (a proxy may add one): created, not unconfirmed."""
    answer = Response(201, {}, b'\xef\xbb\xbf{"encoded_account_id": "a07e1my9tbw0"}')
    async with client_for(lambda r: answer) as client:
        result = await client.accounts.create(account())
    assert (result.status, result.encoded_account_id) == (CreateStatus.CREATED, "a07e1my9tbw0")


def _listing_handler(gate: asyncio.Event, lists: list[Request]) -> Handler:
    """POSTs meet 500 then 409 (an ambiguous create); the account list waits for ``gate``."""
    tried: set[str] = set()

    async def handler(request: Request) -> Response:
        if request.method == "POST":  # per login: 500 first (ambiguous), then 409
            login = json.loads(request.body or b"{}")["login_name"]
            first = login not in tried
            tried.add(login)
            return api_error(500) if first else api_error(409, "conflict")
        lists.append(request)
        await gate.wait()
        listed = [{"encoded_account_id": f"id{i}", "site_owner_name": f"client_{i:05d}", "organization_name": "Org"}
                  for i in (1, 2)]  # fmt: skip
        return Response.from_json(200, {"site_owner_list": listed})

    return handler


async def test_a_cancelled_create_does_not_cancel_the_sweep_others_wait_for() -> None:
    """Two ambiguous creates share one list sweep; cancelling one leaves the sweep for the other."""
    gate, lists = asyncio.Event(), []  # type: tuple[asyncio.Event, list[Request]]
    async with client_for(_listing_handler(gate, lists), clock=FakeClock(autojump=True)) as client:
        first = asyncio.create_task(client.accounts.create(account(1)))
        second = asyncio.create_task(client.accounts.create(account(2)))
        while len(lists) < 1:
            await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        first.cancel()
        gate.set()
        result = await second
        with pytest.raises(asyncio.CancelledError):
            await first
    assert (result.status, result.encoded_account_id) == (CreateStatus.RECONCILED, "id2")
    assert len(lists) == 1 and client.accounts.reconciler.sweeps == 1


async def test_closing_the_client_cancels_a_sweep_in_flight() -> None:
    """aclose() during a sweep cancels it and ends; the waiting create hears that the client closed."""
    gate, lists = asyncio.Event(), []  # type: tuple[asyncio.Event, list[Request]]
    client = client_for(_listing_handler(gate, lists), clock=FakeClock(autojump=True))
    create = asyncio.create_task(client.accounts.create(account(1)))
    while not lists:
        await asyncio.sleep(0)
    await client.aclose()
    with pytest.raises(ClientClosedError, match="sweep"):
        await create
    assert client.accounts.reconciler._sweep is None


async def test_max_wait_fails_fast_before_the_token_wait_of_a_401_replay() -> None:
    """The replay after a 401 waits in the same order as a first try: no turn within max_wait, no token wait."""
    tokens = Tokens()
    replies = [api_error(401, "unauthorized")]

    def handler(request: Request) -> Response:
        tokens.gate = asyncio.Event()  # the renewal after this 401 never ends
        return replies.pop(0)

    async with client_for(handler, tokens=tokens, rate_limit=1, rate_limit_max_wait=0.0,
                          clock=FakeClock()) as client:  # fmt: skip
        with pytest.raises(errors.RateLimitError):
            await asyncio.wait_for(client.webhooks.list(), 1.0)
    assert tokens.refused == [JWT]
