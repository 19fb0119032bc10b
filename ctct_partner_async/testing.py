"""Test helpers for your own suites: ``MockTransport`` and the pytest plugin's ``ctct_sandbox`` fixture.

``MockTransport(handler)`` (like ``httpx.MockTransport``) answers a client's requests with a function,
with no network and no server::

    def handler(request: Request) -> Response:
        if request.url.endswith("/oauth2/token"):
            return Response.from_json(200, {"access_token": "jwt", "expires_in": 3600})
        return Response.from_json(201, {"encoded_account_id": "a07e1my9tbw0"})

    client = PartnerClient(api_key="k", client_id="id", client_secret="s", transport=MockTransport(handler))

The handler gets each request as sent, credentials merged into ``request.headers`` and ``request.query``;
it may be async, and it may raise a ``TransportError`` (``ConnectError``, ``ResponseError``, ...) to play
a network failure. ``transport.requests`` keeps every request it answered, in order.

Installed with the package (entry point ``pytest11``) and active wherever pytest-asyncio is installed::

    async def test_provisioning(ctct_sandbox):
        result = await ctct_sandbox.client.accounts.create(NewAccount(...))
        assert ctct_sandbox.sandbox.accounts()[0]["encoded_account_id"] == result.encoded_account_id

The fixture starts a sandbox on an ephemeral loopback port (no rate limit, no faults; change
``ctct_sandbox.sandbox.faults`` to script some) and gives a ``PartnerClient`` already pointed at it. Mark
a test with ``@pytest.mark.ctct_sandbox(rate_limit=4, token_ttl=5, ...)`` to pass ``SandboxConfig``
settings.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import attrs
import pytest

from ._auth import TokenSettings
from ._client import PartnerClient
from ._protocol import Request, Response
from .sandbox import Sandbox, SandboxConfig, SandboxHandle, run_sandbox

__all__ = ["MockTransport", "SandboxFixture", "sandbox_client"]

Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """An ``AsyncTransport`` that answers every request with ``handler(request)``."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []

    async def send(
        self, request: Request, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> Response:
        merged_query = {**(request.query or {}), **(query or {})} or None
        sent = attrs.evolve(request, headers={**request.headers, **headers}, query=merged_query)
        self.requests.append(sent)
        answer = self._handler(sent)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, Response):
            raise TypeError(f"a MockTransport handler must return a Response, not {type(answer).__name__}")
        return answer

    def __repr__(self) -> str:
        return f"<MockTransport {len(self.requests)} requests>"


@attrs.frozen
class SandboxFixture:
    """A running sandbox and a client for it."""

    handle: SandboxHandle
    client: PartnerClient

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox's state: accounts, stats, faults, request log."""
        return self.handle.sandbox


def sandbox_client(handle: SandboxHandle, **options: Any) -> PartnerClient:
    """A ``PartnerClient`` with the sandbox's URLs and credentials (and no client-side rate limit)."""
    config = handle.sandbox.config
    one_process = TokenSettings(first_request_jitter=0)  # nobody else shares the sandbox's client id
    settings: dict[str, Any] = {"rate_limit": None, "token_settings": one_process, **options}
    return PartnerClient(
        api_key=config.api_key,
        client_id=config.client_id,
        client_secret=config.client_secret,
        base_url=handle.base_url,
        token_url=handle.token_url,
        **settings,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ctct_sandbox(**settings): SandboxConfig settings for the ctct_sandbox fixture"
    )


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixture needs pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def ctct_sandbox(request: pytest.FixtureRequest) -> AsyncIterator[SandboxFixture]:
        """A sandbox on an ephemeral port and a ready ``PartnerClient`` for it."""
        marker = request.node.get_closest_marker("ctct_sandbox")
        settings = {"rate_limit": 0, "daily_quota": 0, **(marker.kwargs if marker else {})}
        async with run_sandbox(SandboxConfig(**settings)) as handle, sandbox_client(handle) as client:
            yield SandboxFixture(handle, client)
