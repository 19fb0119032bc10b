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

Installed with the package (entry point ``pytest11``), the plugin gives the ``ctct_sandbox`` fixture
wherever pytest-asyncio is installed, with no configuration::

    async def test_provisioning(ctct_sandbox):
        result = await ctct_sandbox.client.accounts.create(NewAccount(...))
        assert ctct_sandbox.sandbox.accounts()[0]["encoded_account_id"] == result.encoded_account_id

The fixture starts a sandbox on an ephemeral loopback port (no rate limit, no faults; change
``ctct_sandbox.sandbox.faults`` to script some) and gives a ``PartnerClient`` already pointed at it, with
the sandbox's rate limit as its own. Mark a test with ``@pytest.mark.ctct_sandbox(rate_limit=4,
token_ttl=5, ...)`` to pass ``SandboxConfig`` settings.

pytest-asyncio's default (strict) mode runs only the async tests marked ``@pytest.mark.asyncio``; the
fixture is asyncio-only, so the plugin marks every coroutine test that uses it (at collection, before
pytest-asyncio looks), and ``asyncio_mode = auto`` is not needed. Without pytest-asyncio (not installed,
or ``-p no:asyncio``) the fixture is an error saying what to install.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import Any, NoReturn

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
    """A ``PartnerClient`` with the sandbox's URLs and credentials; its rate limit is the sandbox's
    (none if the sandbox has none) unless ``rate_limit=`` says otherwise."""
    config = handle.sandbox.config
    one_process = TokenSettings(first_request_jitter=0)  # nobody else shares the sandbox's client id
    settings: dict[str, Any] = {"rate_limit": config.rate_limit or None, "token_settings": one_process}
    return PartnerClient(
        api_key=config.api_key,
        client_id=config.client_id,
        client_secret=config.client_secret,
        base_url=handle.base_url,
        token_url=handle.token_url,
        **(settings | options),
    )


_FIXTURE = "ctct_sandbox"
_PYTEST_ASYNCIO = "asyncio"  # pytest-asyncio's plugin name (its pytest11 entry point)
INSTALL_HINT = (
    "the ctct_sandbox fixture needs pytest-asyncio, which is not active in this run: "
    "pip install pytest-asyncio (and don't disable it with -p no:asyncio)"
)


async def _sandbox_fixture(request: pytest.FixtureRequest) -> AsyncIterator[SandboxFixture]:
    """A sandbox on an ephemeral port and a ready ``PartnerClient`` for it (``@pytest.mark.ctct_sandbox(
    **settings)`` passes ``SandboxConfig`` settings; the client takes the sandbox's rate limit)."""
    marker = request.node.get_closest_marker(_FIXTURE)
    settings = {"rate_limit": 0, "daily_quota": 0, **(marker.kwargs if marker else {})}
    async with run_sandbox(SandboxConfig(**settings)) as handle, sandbox_client(handle) as client:
        yield SandboxFixture(handle, client)


def _missing_asyncio() -> NoReturn:
    """Stands in for the ctct_sandbox fixture when pytest-asyncio is not active: says what to install."""
    pytest.fail(INSTALL_HINT, pytrace=False)


def _asyncio_active(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin(_PYTEST_ASYNCIO)


def _fixtures(config: pytest.Config) -> types.ModuleType:
    """The plugin's fixtures, registered once pytest knows whether pytest-asyncio runs: the real one, or
    one that explains what is missing (pytest-asyncio may be importable yet disabled)."""
    holder = types.ModuleType(f"{__name__}.fixtures")
    if _asyncio_active(config):
        import pytest_asyncio

        vars(holder)[_FIXTURE] = pytest_asyncio.fixture(name=_FIXTURE)(_sandbox_fixture)
    else:
        vars(holder)[_FIXTURE] = pytest.fixture(name=_FIXTURE)(_missing_asyncio)
    return holder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ctct_sandbox(**settings): SandboxConfig settings for the ctct_sandbox fixture"
    )
    config.pluginmanager.register(_fixtures(config), f"{__name__}.fixtures")


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    """Mark each coroutine test that uses the fixture ``@pytest.mark.asyncio``, so pytest-asyncio's strict
    mode runs it (innermost wrapper: this runs before pytest-asyncio's wrapper inspects the items)."""
    collected = yield
    if not inspect.iscoroutinefunction(obj) or not _asyncio_active(collector.config):
        return collected
    for item in collected if isinstance(collected, list) else [collected]:
        if (
            isinstance(item, pytest.Function)
            and _FIXTURE in item.fixturenames
            and item.get_closest_marker(_PYTEST_ASYNCIO) is None
        ):
            item.add_marker(pytest.mark.asyncio)
    return collected
