"""Fixtures for the sandbox tests: a fake clock and a sandbox on loopback driven by that clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox
from tests.sandbox.support import Api, FakeClock

StartSandbox = Callable[..., Awaitable[Api]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def start_sandbox(clock: FakeClock) -> AsyncIterator[StartSandbox]:
    """Start sandboxes on the fake clock; limits are off unless a test turns them on."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(**overrides: Any) -> Api:
            settings: dict[str, Any] = {
                "clock": clock,
                "rate_limit": 0,
                "daily_quota": 0,
                "token_rate_limit": 0,
            }
            settings.update(overrides)
            handle = await stack.enter_async_context(run_sandbox(SandboxConfig(**settings)))
            return Api(session, handle)

        yield start


@pytest.fixture
async def api(start_sandbox: StartSandbox) -> Api:
    return await start_sandbox()


@pytest.fixture
def handle(api: Api) -> SandboxHandle:
    return api.handle
