"""A per-call ``timeout=`` on every operation: it bounds each request the call sends (like openai-python's),
in place of the client's ``Timeouts.total``; the waits before a request and the backoff don't count; a
bad value is a ValidationError before anything is sent.

On MockTransport (``asyncio.timeout`` in the pipeline) and over loopback on the aiohttp transport (the
request's own total timeout). Real time only as long as a timeout of a few hundredths of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ctct_partner_async import (
    CallLog,
    ConnectError,
    CreateStatus,
    FakeClock,
    LegacyBillingClient,
    NewAccount,
    PartnerClient,
    Request,
    RequestTimeoutError,
    Response,
    RetryPolicy,
    SsoUser,
    Timeouts,
    UnconfirmedCreateError,
    ValidationError,
)
from ctct_partner_async._accounts import Accounts
from ctct_partner_async._hooks import ResponseDetails
from ctct_partner_async._webhooks import Webhooks
from ctct_partner_async.testing import MockTransport

API_KEY = "timeout-api-key-77"
JWT = "header.payload-timeout-jwt.signature"
ACCOUNT = "a07e1my9tbw0"
NO_RETRY = RetryPolicy(max_attempts=1, max_throttle_retries=0)
SHORT = 0.02  # seconds: the real time a timed-out request costs a test
Operation = Callable[[PartnerClient, LegacyBillingClient, Any], Awaitable[object]]


async def tokens() -> str:
    return JWT


def account(i: int = 1) -> NewAccount:
    return NewAccount(contact_email=f"t{i}@example.com", login_name=f"timeout_{i:03d}", password="s3cret-pass",
                      country_code="US", state_code="MA", organization_name="Timeout Org")  # fmt: skip


SSO_USER = SsoUser(first_name="Josie", last_name="Lang", role_name="campaign_creator",
                   contact_email="josie@example.com", login_name="josie.lang", external_id="2337",
                   external_provider="Yahoo")  # fmt: skip


async def drain(pages: AsyncIterator[object]) -> list[object]:
    return [page async for page in pages]


OPERATIONS: dict[str, Operation] = {
    "accounts.pages": lambda v3, v2, t: drain(v3.accounts.pages(timeout=t)),
    "accounts.list": lambda v3, v2, t: drain(v3.accounts.list(timeout=t)),
    "accounts.create": lambda v3, v2, t: v3.accounts.create(account(), timeout=t),
    "accounts.get_plan": lambda v3, v2, t: v3.accounts.get_plan(ACCOUNT, timeout=t),
    "accounts.update_plan": lambda v3, v2, t: v3.accounts.update_plan(ACCOUNT, plan_type="GOLD", timeout=t),
    "accounts.reactivate": lambda v3, v2, t: v3.accounts.reactivate(ACCOUNT, plan_type="GOLD", timeout=t),
    "accounts.cancel": lambda v3, v2, t: v3.accounts.cancel(ACCOUNT, timeout=t),
    "accounts.operate": lambda v3, v2, t: v3.accounts.operate(ACCOUNT, "GET", "/contacts", timeout=t),
    "accounts.create_sso_user": lambda v3, v2, t: v3.accounts.create_sso_user(ACCOUNT, SSO_USER, timeout=t),
    "accounts.unsubscribe_contacts": lambda v3, v2, t: v3.accounts.unsubscribe_contacts(
        ACCOUNT, ["a@example.com"], timeout=t
    ),
    "webhooks.list": lambda v3, v2, t: v3.webhooks.list(timeout=t),
    "webhooks.get": lambda v3, v2, t: v3.webhooks.get(1, timeout=t),
    "webhooks.subscribe": lambda v3, v2, t: v3.webhooks.subscribe(1, "https://example.com/hook", timeout=t),
    "webhooks.unsubscribe": lambda v3, v2, t: v3.webhooks.unsubscribe(1, timeout=t),
    "webhooks.send_test": lambda v3, v2, t: v3.webhooks.send_test(1, timeout=t),
    "client.send": lambda v3, v2, t: v3.send(Request("GET", "partner/webhooks", "list_webhooks"), timeout=t),
    "legacy.get_plan": lambda v3, v2, t: v2.get_plan(ACCOUNT, timeout=t),
    "legacy.update_plan": lambda v3, v2, t: v2.update_plan(ACCOUNT, plan_type=2, timeout=t),
    "legacy.cancel": lambda v3, v2, t: v2.cancel(ACCOUNT, timeout=t),
    "legacy.send": lambda v3, v2, t: v2.send(Request("GET", f"accounts/{ACCOUNT}/plan", "plan"), timeout=t),
}


class Hang:
    """A handler that never answers (until released) but the requests ``answers`` names."""

    def __init__(self, answers: dict[str, Response] | None = None) -> None:
        self.answers = answers or {}
        self.release = asyncio.Event()

    async def __call__(self, request: Request) -> Response:
        if request.operation in self.answers:
            return self.answers[request.operation]
        await self.release.wait()
        return Response.from_json(200, [])


def clients(transport: MockTransport, **settings: Any) -> tuple[PartnerClient, LegacyBillingClient]:
    common: dict[str, Any] = {"rate_limit": None, "on_retry": None, "environ": {}, **settings}
    v3 = PartnerClient(api_key=API_KEY, token_provider=tokens, transport=transport, **common)
    v2 = LegacyBillingClient(
        username="u", password="basic-pw-123", api_key=API_KEY, transport=transport, **common
    )
    return v3, v2


def test_every_public_operation_takes_a_keyword_timeout() -> None:
    """Each operation of client.accounts, client.webhooks and LegacyBillingClient (and send) has
    ``timeout: float | None = None``; resolve is the one exception (its ``wait`` bounds it), and
    refresh_quota sends no API request (it reads Redis, under the Redis calls' own timeout)."""
    owners = [Accounts, Webhooks, LegacyBillingClient, PartnerClient]
    exempt = {"resolve", "aclose", "refresh_quota"}
    missing = []
    for owner in owners:
        for name, function in inspect.getmembers(owner, inspect.isfunction):
            if name.startswith("_") or name in exempt:
                continue
            parameter = inspect.signature(function).parameters.get("timeout")
            if (
                parameter is None
                or parameter.kind is not inspect.Parameter.KEYWORD_ONLY
                or parameter.default is not None
            ):
                missing.append(f"{owner.__name__}.{name}")
    assert missing == []
    assert len(OPERATIONS) == 20  # every one of them is exercised below


@pytest.mark.parametrize("name", OPERATIONS)
@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "5"])
async def test_a_bad_timeout_is_refused_before_anything_is_sent(name: str, bad: Any) -> None:
    """Zero, negative, NaN, infinite, a bool or a string: ValidationError on ``timeout``, no request."""
    transport = MockTransport(Hang())
    v3, v2 = clients(transport)
    async with v3, v2:
        with pytest.raises(ValidationError) as info:
            await OPERATIONS[name](v3, v2, bad)
    assert info.value.field == "timeout"
    assert transport.requests == []


@pytest.mark.parametrize("name", [n for n in OPERATIONS if n != "accounts.create"])
async def test_the_timeout_bounds_the_request_of_every_operation(name: str) -> None:
    """A request that never answers ends in RequestTimeoutError after ``timeout`` seconds."""
    hang = Hang()
    v3, v2 = clients(MockTransport(hang), retry_policy=NO_RETRY)
    async with v3, v2:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError, match="within the call's timeout of 0.02s"):
            await OPERATIONS[name](v3, v2, SHORT)
        assert time.monotonic() - started < 1.0
        untimed = asyncio.ensure_future(OPERATIONS[name](v3, v2, None))
        await asyncio.sleep(SHORT * 2)
        assert not untimed.done()  # the timeout was the call's: a call without one still waits
        untimed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await untimed


async def test_a_create_that_times_out_is_reconciled_from_the_list() -> None:
    """The create request gets the timeout; the timed-out attempt is ambiguous, and the list (read
    without it, under reconcile_timeout) shows the account: reconciled, never reported as failed."""
    listed = {"site_owner_list": [{"encoded_account_id": "a1b2c3", "site_owner_name": "timeout_001",
                            "organization_name": "Timeout Org"}], "_links": {}}  # fmt: skip
    hang = Hang({"list_accounts": Response.from_json(200, listed)})
    v3, v2 = clients(MockTransport(hang), retry_policy=NO_RETRY)
    async with v3, v2:
        result = await v3.accounts.create(account(), timeout=SHORT)
        assert (result.status, result.encoded_account_id) == (CreateStatus.RECONCILED, "a1b2c3")
    hang.answers["list_accounts"] = Response.from_json(200, {"site_owner_list": [], "_links": {}})
    v3, v2 = clients(MockTransport(hang), retry_policy=NO_RETRY)
    async with v3, v2:
        with pytest.raises(UnconfirmedCreateError) as info:
            await v3.accounts.create(account(), timeout=SHORT, reconcile_timeout=0)
    assert isinstance(info.value.__cause__, RequestTimeoutError)


async def test_each_attempt_gets_the_whole_timeout_and_a_retry_follows() -> None:
    """An idempotent call whose first request times out is retried (backoff on the fake clock), and
    the retry has its own ``timeout``: the call takes longer than one timeout, as openai's does."""
    answers = iter([None, Response.from_json(200, [])])

    async def handler(request: Request) -> Response:
        answer = next(answers)
        if answer is None:
            await asyncio.Event().wait()
        assert answer is not None
        return answer

    transport = MockTransport(handler)
    log = CallLog()
    v3, v2 = clients(transport, clock=FakeClock(autojump=True))
    async with v3, v2:
        response = await v3.send(Request("GET", "partner/webhooks", "list_webhooks"), log=log, timeout=SHORT)
    assert response.status == 200
    assert (log.requests, log.attempts) == (2, 2)
    assert [type(e) for e in log.errors] == [RequestTimeoutError]


async def test_the_waits_before_a_request_do_not_count() -> None:
    """A call waiting longer than its timeout for a token is not timed out: only requests are bounded."""
    gate = asyncio.Event()

    async def slow_tokens() -> str:
        await gate.wait()
        return JWT

    transport = MockTransport(lambda r: Response.from_json(200, []))
    async with PartnerClient(api_key=API_KEY, token_provider=slow_tokens, transport=transport, rate_limit=None,
                             environ={}) as client:  # fmt: skip
        call = asyncio.ensure_future(client.webhooks.list(timeout=SHORT))
        await asyncio.sleep(SHORT * 2)
        assert not call.done()
        gate.set()
        assert await call == []


async def test_the_hooks_hear_a_timed_out_request() -> None:
    """With hooks, the timeout still bounds the request, and on_response hears its RequestTimeoutError."""
    heard: list[ResponseDetails] = []
    v3, v2 = clients(MockTransport(Hang()), retry_policy=NO_RETRY, on_response=heard.append)
    async with v3, v2:
        with pytest.raises(RequestTimeoutError):
            await v3.webhooks.get(1, timeout=SHORT)
    [details] = heard
    assert isinstance(details.exception, RequestTimeoutError)


# -- the aiohttp transport over loopback ---------------------------------------------------------------------
class SlowServer:
    """A raw HTTP server on loopback that answers ``[]`` after ``delay`` seconds (never, if None)."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.released = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.delay is None:
                await self.released.wait()
            else:
                await asyncio.sleep(self.delay)
            body = b"[]"
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v3"


async def serve(delay: float | None) -> AsyncIterator[SlowServer]:
    slow = SlowServer(delay)
    slow.server = await asyncio.start_server(slow.handle, "127.0.0.1", 0)
    try:
        yield slow
    finally:
        slow.released.set()
        slow.server.close()
        await slow.server.wait_closed()


@pytest.fixture
async def silent() -> AsyncIterator[SlowServer]:
    async for server in serve(None):
        yield server


@pytest.fixture
async def slow() -> AsyncIterator[SlowServer]:
    async for server in serve(0.05):
        yield server


def aiohttp_client(base_url: str, **settings: Any) -> PartnerClient:
    return PartnerClient(api_key=API_KEY, token_provider=tokens, base_url=base_url, rate_limit=None,
                         retry_policy=NO_RETRY, on_retry=None, environ={}, **settings)  # fmt: skip


async def test_aiohttp_request_that_never_answers_times_out(silent: SlowServer) -> None:
    """Over a real socket the call's timeout, not the client's 60 s total, ends a silent server's request."""
    async with aiohttp_client(silent.base_url) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await client.webhooks.list(timeout=SHORT)
        assert time.monotonic() - started < 1.0


async def test_aiohttp_call_timeout_replaces_the_client_total(slow: SlowServer) -> None:
    """A call's timeout longer than Timeouts.total lets a slow answer through; the next call without
    one is bounded by the client's total again."""
    async with aiohttp_client(slow.base_url, timeouts=Timeouts(total=SHORT)) as client:
        assert await client.webhooks.list(timeout=5) == []
        with pytest.raises(RequestTimeoutError):
            await client.webhooks.list()
        assert await client.webhooks.list(timeout=5.0) == []


async def test_aiohttp_connect_failure_under_a_timeout_is_still_a_connect_error() -> None:
    """The timeout is the request's total: a refused connection stays a ConnectError (safe to retry)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    async with aiohttp_client(f"http://127.0.0.1:{port}/v3") as client:
        with pytest.raises(ConnectError):
            await client.webhooks.list(timeout=1)
