"""One client, one loop: a client used from an event loop other than the one it first ran in raises
``WrongEventLoopError`` before it takes a slot, a token or a connection, so nothing is sent and nothing leaks.

Every test drives real event loops from a plain function (``asyncio.new_event_loop``, ``asyncio.run``). The
sandbox serves from a loop of its own in a thread, so it answers whichever loop the client runs in and
counts every request that reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from ctct_partner_async import (
    CallLog,
    ClientClosedError,
    ConnectError,
    CtctError,
    LegacyBillingClient,
    PartnerClient,
    Request,
    Response,
    RetryPolicy,
    TokenSettings,
    WrongEventLoopError,
)
from ctct_partner_async._transport import Transport
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox
from ctct_partner_async.testing import MockTransport, sandbox_client

RULE = "create one client per event loop"
OTHER_LOOP = "this client was first used in another event loop"
NO_JITTER = TokenSettings(first_request_jitter=0)  # no real sleep before the first token request
Client = PartnerClient | LegacyBillingClient


@contextlib.contextmanager
def sandbox_in_thread() -> Iterator[SandboxHandle]:
    """A sandbox (no limits) serving from its own loop in a thread, whatever loop the client is in."""
    started = threading.Event()
    running: list[tuple[SandboxHandle, asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        stop = asyncio.Event()
        async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0)) as handle:
            running.append((handle, asyncio.get_running_loop(), stop))
            started.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="sandbox")
    thread.start()
    started.wait(5)
    assert running, "the sandbox did not start"
    handle, loop, stop = running[0]
    try:
        yield handle
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)


@contextlib.contextmanager
def no_resource_warnings() -> Iterator[None]:
    """Fails if an unclosed session, connector, transport or socket is reported inside (a gc pass included)."""
    gc.collect()  # what earlier tests left is theirs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


@contextlib.contextmanager
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A new loop that stays open (not running) until the block ends, like a long-lived application's."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def seen(handle: SandboxHandle) -> tuple[object, object]:
    """(token requests, API requests) that reached the sandbox."""
    stats = handle.sandbox.stats()
    return stats["token_requests"], stats["api_requests"]


def session_of(client: Client) -> aiohttp.ClientSession | None:
    transport = client._pipeline.transport
    assert isinstance(transport, Transport)
    return transport._session


def answer(request: Request) -> Response:
    if request.url.endswith("/oauth2/token"):
        return Response.from_json(200, {"access_token": "jwt", "expires_in": 3600})
    if "/plan" in request.url:
        return Response.from_json(200, {"status": "ACTIVE", "plan_type": 1})
    return Response.from_json(200, [])


def partner(transport: MockTransport, **options: Any) -> PartnerClient:
    return PartnerClient(
        api_key="key", client_id="id", client_secret="secret", transport=transport, rate_limit=None,
        token_settings=NO_JITTER, **options,
    )  # fmt: skip


def legacy(transport: MockTransport, **options: Any) -> LegacyBillingClient:
    return LegacyBillingClient(
        username="user", password="pass", api_key="key", transport=transport, rate_limit=None, **options
    )


async def use(client: Client) -> None:
    if isinstance(client, PartnerClient):
        await client.webhooks.list()
    else:
        await client.get_plan("a07e1my9tbw0")


def test_a_call_from_another_loop_is_refused_before_anything_is_sent() -> None:
    """From a second loop: ``WrongEventLoopError`` naming the rule; no request, no new session, no leak."""
    with sandbox_in_thread() as handle, no_resource_warnings(), event_loop() as first:
        client = sandbox_client(handle, token_settings=NO_JITTER)
        first.run_until_complete(use(client))
        session, before = session_of(client), seen(handle)
        with pytest.raises(WrongEventLoopError) as refused:
            asyncio.run(use(client))
        assert OTHER_LOOP in str(refused.value) and RULE in str(refused.value)
        assert "still open" in str(refused.value)
        assert isinstance(refused.value, RuntimeError) and isinstance(refused.value, CtctError)
        assert seen(handle) == before == (1, 1)
        assert session_of(client) is session
        first.run_until_complete(use(client))  # its own loop still works
        first.run_until_complete(client.aclose())
        assert session is not None and session.closed
    assert seen(handle) == (1, 2)


def test_the_legacy_client_is_held_to_its_loop_too() -> None:
    """``LegacyBillingClient`` on the sandbox: the second loop is refused and sends nothing."""
    with sandbox_in_thread() as handle, no_resource_warnings(), event_loop() as first:
        config = handle.sandbox.config
        client = LegacyBillingClient(
            username=config.client_id, password=config.client_secret, api_key=config.api_key,
            base_url=handle.legacy_url, rate_limit=None, retry_policy=RetryPolicy(max_attempts=1),
        )  # fmt: skip
        with contextlib.suppress(CtctError):  # no such account: a 404 is an answer all the same
            first.run_until_complete(client.get_plan("a07e1my9tbw0"))
        before = seen(handle)
        with pytest.raises(WrongEventLoopError, match=RULE):
            asyncio.run(client.get_plan("a07e1my9tbw0"))
        assert seen(handle) == before == (0, 1)
        first.run_until_complete(client.aclose())


@pytest.mark.parametrize("make", [partner, legacy], ids=["partner", "legacy"])
def test_asyncio_run_twice_is_refused_and_the_client_still_closes(
    make: Callable[[MockTransport], Client],
) -> None:
    """The issue's pattern, ``asyncio.run`` twice on one client: the second run is refused (its first loop
    is closed) and reaches no transport; ``aclose`` from a third loop closes it; later calls say closed."""
    transport = MockTransport(answer)
    client = make(transport)
    with no_resource_warnings():
        asyncio.run(use(client))
        sent = len(transport.requests)
        with pytest.raises(WrongEventLoopError, match="since closed") as refused:
            asyncio.run(use(client))
        assert RULE in str(refused.value)
        assert len(transport.requests) == sent
        asyncio.run(client.aclose())
        assert client.closed
        with pytest.raises(ClientClosedError):
            asyncio.run(use(client))
    assert len(transport.requests) == sent


def test_aclose_from_another_loop_refuses_while_the_first_is_open() -> None:
    """``aclose`` from another loop while the client's own is open: ``WrongEventLoopError`` saying to close it
    there, and nothing closed; in its own loop it then closes."""
    with sandbox_in_thread() as handle, no_resource_warnings(), event_loop() as first:
        client = sandbox_client(handle, token_settings=NO_JITTER)
        first.run_until_complete(use(client))
        with pytest.raises(WrongEventLoopError, match="close it there") as refused:
            asyncio.run(client.aclose())
        assert RULE in str(refused.value)
        session = session_of(client)
        assert not client.closed and session is not None and not session.closed
        first.run_until_complete(client.aclose())
        assert client.closed and session.closed


def test_a_session_left_by_a_closed_loop_is_closed_from_another() -> None:
    """The client's loop closed before the client (its session open, no connection pooled): ``aclose`` from a
    new loop closes the session, with no error and no warning."""
    with socket.socket() as probe:  # a loopback port nothing listens on: every connect is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def token() -> str:
        return "jwt"

    client = PartnerClient(
        api_key="key", token_provider=token, base_url=f"http://127.0.0.1:{port}/v3", rate_limit=None,
        retry_policy=RetryPolicy(max_attempts=1),
    )  # fmt: skip
    with no_resource_warnings():
        with pytest.raises(ConnectError):
            asyncio.run(use(client))
        session = session_of(client)
        assert session is not None and not session.closed
        asyncio.run(client.aclose())
        assert client.closed and session.closed


def test_the_transport_refuses_another_loop_for_every_caller() -> None:
    """The aiohttp transport (the token manager calls it directly) shares the client's loop: after the
    client's first call, a send from another loop is refused there too, and opens nothing."""
    with sandbox_in_thread() as handle, no_resource_warnings(), event_loop() as first:
        client = sandbox_client(handle, token_settings=NO_JITTER)
        first.run_until_complete(use(client))
        transport = client._pipeline.transport
        session, before = session_of(client), seen(handle)
        with pytest.raises(WrongEventLoopError, match=RULE):
            asyncio.run(transport.send(Request("GET", "partner/webhooks", "list_webhooks"), {}))
        assert seen(handle) == before and session_of(client) is session
        first.run_until_complete(client.aclose())


def test_a_refused_call_takes_no_slot_no_token_and_calls_no_hook() -> None:
    """The refusal comes first: no hook hears of the call, no slot is taken, no token asked, no retry made."""
    heard: list[object] = []
    asked: list[int] = []

    async def token() -> str:
        asked.append(1)
        return "jwt"

    transport = MockTransport(answer)
    client = PartnerClient(
        api_key="key", token_provider=token, transport=transport, rate_limit=None, max_concurrency=2,
        on_request=heard.append, on_response=heard.append,
    )  # fmt: skip
    with no_resource_warnings(), event_loop() as first:
        first.run_until_complete(use(client))
        heard.clear()
        asked.clear()
        log = CallLog()
        with pytest.raises(WrongEventLoopError):
            asyncio.run(client.send(Request("GET", "partner/webhooks", "list_webhooks"), log=log))
        assert (heard, asked, log.requests, log.attempts, log.errors) == ([], [], 0, 0, [])
        assert client.limiter.free_slots == 2 and client.retries == 0
        assert len(transport.requests) == 1
        first.run_until_complete(client.aclose())


def test_only_a_call_binds_a_client_to_its_loop() -> None:
    """A client built inside one loop that never used it works in the next: the first call decides."""

    async def make() -> PartnerClient:
        return partner(MockTransport(answer))

    client = asyncio.run(make())

    async def use_and_close() -> None:
        async with client:
            await use(client)

    with no_resource_warnings():
        asyncio.run(use_and_close())
    assert client.closed


def test_a_loop_running_in_another_thread_keeps_its_client() -> None:
    """A client that lives in a loop run by another thread: refused from this thread's loop (use and close
    alike), still served and closed in its own."""
    transport = MockTransport(answer)
    client = partner(transport)
    home = asyncio.new_event_loop()
    thread = threading.Thread(target=home.run_forever, name="home loop")
    thread.start()
    try:
        with no_resource_warnings():
            asyncio.run_coroutine_threadsafe(use(client), home).result(5)
            with pytest.raises(WrongEventLoopError, match="still open"):
                asyncio.run(use(client))
            with pytest.raises(WrongEventLoopError, match="close it there"):
                asyncio.run(client.aclose())
            assert len(transport.requests) == 2  # the token and the first call
            asyncio.run_coroutine_threadsafe(client.aclose(), home).result(5)
            assert client.closed
    finally:
        home.call_soon_threadsafe(home.stop)
        thread.join(5)
        home.close()
