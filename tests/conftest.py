"""Shared fixtures: a recording HTTP server on loopback and a client pointed at it; a real redis-server."""

from __future__ import annotations

import json
import shutil
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web

from ctct_partner_async import LegacyBillingClient, PartnerClient

from . import redis_server

API_KEY = "test-api-key-0123"
JWT = "header.payload-jwt-secret.signature"


@attrs.define
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.define
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = attrs.Factory(dict)


class WireServer:
    """Records every request and answers from a script (200 ``{}`` when the script is empty)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Reply] = deque()
        self.url = ""

    def reply(self, status: int = 200, json_body: Any = None, *, raw: bytes | None = None,
              headers: dict[str, str] | None = None) -> None:  # fmt: skip
        body = raw if raw is not None else (b"" if json_body is None else json.dumps(json_body).encode())
        hdrs = {"Content-Type": "application/json"} if json_body is not None else {}
        self.script.append(Reply(status, body, {**hdrs, **(headers or {})}))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        reply = (
            self.script.popleft() if self.script else Reply(200, b"{}", {"Content-Type": "application/json"})
        )
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]


@pytest.fixture
async def wire() -> AsyncIterator[WireServer]:
    server = WireServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


@pytest.fixture
async def client(wire: WireServer) -> AsyncIterator[PartnerClient]:
    async def token() -> str:
        return JWT

    async with PartnerClient(
        api_key=API_KEY, base_url=wire.url + "/v3", token_provider=token, rate_limit=None
    ) as c:
        yield c


@pytest.fixture
async def legacy(wire: WireServer) -> AsyncIterator[LegacyBillingClient]:
    async with LegacyBillingClient(
        username="partner-user",
        password="basic-secret-pw",
        api_key=API_KEY,
        base_url=wire.url + "/v2",
        rate_limit=None,
    ) as c:
        yield c


@pytest.fixture
async def redis_url(tmp_path: Path) -> AsyncIterator[str]:
    """A real redis-server of its own on a free loopback port; fails (never skips) when it is missing."""
    if shutil.which("redis-server") is None:
        pytest.fail(redis_server.MISSING)
    async with redis_server.running_redis(tmp_path) as url:
        yield url
