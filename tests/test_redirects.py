"""Redirects are never followed, on the wire: a 307 to a second loopback server reaches nothing there.

Following one would resend the API key, the JWT and the create body (an account password) to another
host, over plain http if the Location says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest
from aiohttp import web

from ctct_partner_async import (
    AuthenticationError,
    LegacyBillingClient,
    NewAccount,
    PartnerClient,
    RedirectError,
)

API_KEY = "test-api-key-0123"
SECRET = "client-secret-value-9"


@attrs.define
class Server:
    url: str = ""
    paths: list[str] = attrs.Factory(list)
    location: str = ""


async def _serve(host: str, server: Server) -> web.AppRunner:
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        server.paths.append(request.path)
        if server.location:
            return web.Response(status=307, headers={"Location": server.location + request.path})
        return web.json_response({"encoded_account_id": "stolen", "access_token": "x", "expires_in": 3600})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server.url = f"http://{host}:{runner.addresses[0][1]}"
    return runner


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    """``api`` redirects everything to ``other`` (another loopback address), which would answer 2xx."""
    api, other = Server(), Server()
    runners = [await _serve("127.0.0.1", api), await _serve("127.0.0.2", other)]
    api.location = other.url
    yield api, other
    for runner in runners:
        await runner.cleanup()


def account() -> NewAccount:
    return NewAccount(contact_email="o@example.com", login_name="client_00001", password="s3cret-pass",
                      country_code="US", state_code="MA")  # fmt: skip


async def _token() -> str:
    return "header.payload-jwt-secret.signature"


async def test_api_redirect_is_not_followed(servers: tuple[Server, Server]) -> None:
    """A 307 on create is a RedirectError naming the other host; one request, none to the other host."""
    api, other = servers
    async with PartnerClient(api_key=API_KEY, token_provider=_token, base_url=api.url + "/v3",
                             rate_limit=None, on_retry=None) as client:  # fmt: skip
        with pytest.raises(RedirectError) as info:
            await client.accounts.create(account())
    assert info.value.status == 307
    assert info.value.location_host == "127.0.0.2"
    assert api.paths == ["/v3/partner/accounts"]
    assert other.paths == []


async def test_legacy_redirect_is_not_followed(servers: tuple[Server, Server]) -> None:
    """The v2 client (basic auth and the api_key query) never follows a redirect either."""
    api, other = servers
    async with LegacyBillingClient(username="u", password="basic-secret-pw", api_key=API_KEY,
                                   base_url=api.url + "/v2", rate_limit=None) as v2:  # fmt: skip
        with pytest.raises(RedirectError):
            await v2.get_plan("a07e1my9tbw0")
    assert len(api.paths) == 1
    assert other.paths == []


async def test_token_endpoint_redirect_is_not_followed(servers: tuple[Server, Server]) -> None:
    """A redirecting token endpoint gives AuthenticationError caused by RedirectError; the secret stays."""
    api, other = servers
    async with PartnerClient(api_key=API_KEY, client_id="client-1", client_secret=SECRET,
                             base_url=api.url + "/v3", token_url=api.url + "/oauth2/token",
                             rate_limit=None) as client:  # fmt: skip
        with pytest.raises(AuthenticationError) as info:
            await client.webhooks.list()
    assert isinstance(info.value.__cause__, RedirectError)
    assert api.paths == ["/oauth2/token"]
    assert other.paths == []
    assert SECRET not in str(info.value)
