"""The transport: one lazily created pool per client, borrowed sessions, timeouts, error mapping."""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses

from ctct_partner_async import PartnerClient, __version__
from ctct_partner_async import _errors as errors
from ctct_partner_async._policy import RetryPolicy
from ctct_partner_async._protocol import Request
from ctct_partner_async._transport import Timeouts, Transport

from .conftest import API_KEY, WireServer

NO_RETRY = RetryPolicy(max_attempts=1)


async def _token() -> str:
    return "jwt"


def session_of(client: PartnerClient) -> aiohttp.ClientSession | None:
    """The aiohttp session of the transport the client built (``None`` until the first call)."""
    transport = client._pipeline.transport
    assert isinstance(transport, Transport)
    return transport._session


def test_session_is_created_lazily() -> None:
    """Constructing a client outside a loop creates no session (and so needs no loop)."""
    client = PartnerClient(api_key=API_KEY, token_provider=_token)
    assert session_of(client) is None


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        ("base_url", "http://api.cc.email/v3"),
        ("base_url", "ftp://x/v3"),
        ("token_url", "http://auth.example/token"),
    ],
)
def test_plain_http_refused_unless_loopback(setting: str, url: str) -> None:
    """http:// is refused for a non-loopback host, naming the setting."""
    endpoint: dict[str, Any] = {setting: url}
    with pytest.raises(errors.ValidationError) as info:
        PartnerClient(api_key=API_KEY, client_id="id", client_secret="s", **endpoint)
    assert info.value.field == setting


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.8.9.10"])
def test_plain_http_allowed_on_loopback(host: str) -> None:
    """http:// is fine on loopback hosts, for the sandbox."""
    Transport(base_url=f"http://{host}:8911/v3")


def test_missing_credentials_named() -> None:
    """A client without a token source names the missing setting."""
    with pytest.raises(errors.ValidationError) as info:
        PartnerClient(api_key=API_KEY, client_id="id")
    assert info.value.field == "client_secret"
    with pytest.raises(errors.ValidationError) as info:
        PartnerClient(api_key="", token_provider=_token)
    assert info.value.field == "api_key"


async def test_one_pool_shared_by_concurrent_calls(wire: WireServer) -> None:
    """Concurrent calls share one session and one connector, limited to max_connections sockets."""
    async with PartnerClient(api_key=API_KEY, base_url=wire.url + "/v3", token_provider=_token, rate_limit=None,
                             max_connections=3) as client:  # fmt: skip
        await asyncio.gather(*(client.webhooks.list() for _ in range(20)))
        session = session_of(client)
        assert session is not None
        assert session.connector is not None
        assert session.connector.limit == 3
    assert session.closed
    assert len(wire.requests) == 20
    assert wire.last.headers["User-Agent"].startswith(f"ctct-partner-async/{__version__} aiohttp/")


async def test_borrowed_session_is_never_closed(wire: WireServer) -> None:
    """A session passed in by the caller is used and left open."""
    async with aiohttp.ClientSession() as session:
        async with PartnerClient(api_key=API_KEY, base_url=wire.url + "/v3", token_provider=_token, rate_limit=None,
                                 session=session) as client:  # fmt: skip
            await client.webhooks.list()
        assert client.closed
        assert not session.closed
    assert wire.last.headers["x-api-key"] == API_KEY


async def test_closed_client_cannot_be_reused(wire: WireServer) -> None:
    """aclose is idempotent and a closed client refuses new calls."""
    client = PartnerClient(api_key=API_KEY, base_url=wire.url + "/v3", token_provider=_token, rate_limit=None)
    await client.webhooks.list()
    await client.aclose()
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.webhooks.list()


async def test_unclosed_client_warns(wire: WireServer) -> None:
    """A client dropped without being closed warns with a ResourceWarning."""
    client = PartnerClient(api_key=API_KEY, base_url=wire.url + "/v3", token_provider=_token, rate_limit=None)
    await client.webhooks.list()
    session = session_of(client)
    assert session is not None
    with pytest.warns(ResourceWarning, match="not closed"):  # noqa: PT031
        del client
        gc.collect()
    await session.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connect_error_when_nothing_listens() -> None:
    """A refused connection is a ConnectError: the request never left."""
    async with PartnerClient(api_key=API_KEY, base_url=f"http://127.0.0.1:{_closed_port()}/v3",
                             token_provider=_token, retry_policy=NO_RETRY) as client:  # fmt: skip
        with pytest.raises(errors.ConnectError):
            await client.webhooks.list()


async def test_read_timeout_is_request_timeout_error() -> None:
    """A server slower than the read timeout gives RequestTimeoutError (the request may have landed)."""

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(0.1)
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/v3/partner/webhooks/subscriptions", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v3"
        async with PartnerClient(api_key=API_KEY, base_url=url, token_provider=_token,
                                 timeouts=Timeouts(read=0.02), retry_policy=NO_RETRY) as client:  # fmt: skip
            with pytest.raises(errors.RequestTimeoutError):
                await client.webhooks.list()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (aiohttp.ServerDisconnectedError(), errors.ResponseError),
        (aiohttp.ClientPayloadError("truncated"), errors.ResponseError),
        (aiohttp.ClientOSError(104, "reset"), errors.ResponseError),
        (aiohttp.ConnectionTimeoutError(), errors.ConnectError),
        (aiohttp.SocketTimeoutError(), errors.RequestTimeoutError),
        (TimeoutError(), errors.RequestTimeoutError),
    ],
)
async def test_aiohttp_errors_are_mapped(raised: Exception, expected: type[errors.TransportError]) -> None:
    """Each aiohttp failure becomes our error class, with the method and URL and the cause chained."""
    transport = Transport(base_url="https://api.example/v3")
    try:
        with aioresponses() as mocked:
            mocked.get("https://api.example/v3/partner/webhooks/subscriptions", exception=raised)
            with pytest.raises(expected) as info:
                await transport.send(Request("GET", "partner/webhooks/subscriptions", "list_webhooks"), {})
    finally:
        await transport.aclose()
    assert type(info.value) is expected
    assert info.value.url == "https://api.example/v3/partner/webhooks/subscriptions"
    assert info.value.__cause__ is raised


async def test_tls_failures_are_not_retryable() -> None:
    """A certificate failure maps to a plain TransportError, which the retry policy never retries."""
    from ctct_partner_async._policy import RetryPolicy, decide

    transport = Transport(base_url="https://api.example/v3")
    cert_error = aiohttp.ClientSSLError(
        aiohttp.client_reqrep.ConnectionKey("api.example", 443, True, True, None, None, None),
        OSError("bad cert"),
    )
    try:
        with aioresponses() as mocked:
            mocked.get("https://api.example/v3/partner/webhooks/subscriptions", exception=cert_error)
            with pytest.raises(errors.TransportError) as info:
                await transport.send(Request("GET", "partner/webhooks/subscriptions", "list_webhooks"), {})
    finally:
        await transport.aclose()
    assert type(info.value) is errors.TransportError
    assert not decide(info.value, Request("GET", "x", "op"), RetryPolicy()).retry


def test_connection_limit_checked() -> None:
    """max_connections below 1 (which aiohttp would read as unlimited) is refused."""
    with pytest.raises(errors.ValidationError) as info:
        Transport(base_url="https://api.example/v3", max_connections=0)
    assert info.value.field == "max_connections"
