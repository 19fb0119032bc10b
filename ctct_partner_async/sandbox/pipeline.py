"""The thin async shell around the synchronous handlers: gate, limits, faults, body, log, drop.

For every API request (v3 and v2), in order: read the clock and carry out due deferred creates; the gate
(credentials: 401); the per-key limits (429 ``quota_exceeded`` / ``throttled``); ``latency``; the
pre-handler faults (nothing committed); the JSON body (415 / 400); the handler; then, for a successful
state change, maybe ``drop_after_commit``; finally the request log.

Dropping after commit: the handler has already changed the state; the shell aborts the transport and
hands aiohttp a response that can no longer be written, which aiohttp treats as a client disconnect (no
error log). The client has sent its whole request and reads EOF instead of a status line, which an
aiohttp client reports as ``aiohttp.ServerDisconnectedError``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from .ledger import redact_path
from .replies import VALIDATION, Refusal, Reply, error_list, first_error_key, invalid, render
from .state import Sandbox

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Gate = Callable[[Sandbox, web.Request, float], Reply | None]


@dataclass(slots=True)
class Call:
    """What a handler gets: the time, path parameters, query, JSON body, and notes for the log.

    The body is the handler's to keep (freshly parsed). The query is parsed only if a handler asks.
    """

    now: float
    request: web.Request
    body: dict[str, object] | None
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def params(self) -> Mapping[str, str]:
        """The path parameters."""
        return self.request.match_info

    @property
    def query(self) -> Mapping[str, str]:
        """The query parameters."""
        return self.request.query

    def json(self) -> dict[str, object]:
        """The body, or an empty object when there was none."""
        return self.body if self.body is not None else {}

    def checked(self, check: Callable[[dict[str, object]], list[str]]) -> dict[str, object]:
        """The body, after ``check``; a 400 listing every problem it finds."""
        body = self.json()
        problems = check(body)
        if problems:
            raise invalid(problems)
        return body


BodyUse = Literal["none", "optional", "required"]


@dataclass(frozen=True, slots=True)
class Operation:
    """One API operation: its log name, its handler, whether it reads a JSON body, whether it changes
    state (only those can be hit by ``drop_after_commit``)."""

    name: str
    handler: Callable[[Sandbox, Call], Reply]
    body: BodyUse = "none"
    mutating: bool = False


def reader(name: str, handler: Callable[[Sandbox, Call], Reply]) -> Operation:
    """An operation that reads state and takes no body."""
    return Operation(name, handler)


def writer(name: str, handler: Callable[[Sandbox, Call], Reply], body: BodyUse = "required") -> Operation:
    """An operation that changes state."""
    return Operation(name, handler, body, mutating=True)


Route = tuple[str, str, Operation]


def endpoint(sandbox: Sandbox, operation: Operation, gate: Gate) -> Handler:
    """The aiohttp handler running ``operation`` behind ``gate``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        now = sandbox.begin_api_request()
        notes: dict[str, object] = {}
        reply = gate(sandbox, request, now) or admit(sandbox, now)
        if reply is None:
            reply = await perform(sandbox, operation, request, now, notes)
        dropped = reply.status < 300 and operation.mutating and sandbox.injector.drop(operation.name)
        record(sandbox, request, operation.name, reply, notes, dropped=dropped)
        if dropped:
            return drop_connection(request, reply)
        return render(reply)

    return handle


def admit(sandbox: Sandbox, now: float) -> Reply | None:
    """The per-API-key limits: ``None`` to go ahead, else the 429."""
    key = sandbox.limiter.admit(now)
    if key is None:
        return None
    message = "Too Many Requests" if key == "throttled" else "The daily request quota is used up"
    return Reply(429, {"error_key": key, "error_message": message})


async def perform(
    sandbox: Sandbox, operation: Operation, request: web.Request, now: float, notes: dict[str, object]
) -> Reply:
    """Latency, pre-handler faults, body, then the handler."""
    latency = sandbox.faults.latency
    if latency > 0:
        await asyncio.sleep(latency)
        now = sandbox.clock()
    reply = sandbox.injector.before(operation.name)
    if reply is not None:
        return reply
    body: dict[str, object] | None = None
    if operation.body != "none":
        body, reply = await read_json(request, required=operation.body == "required")
        if reply is not None:
            return reply
    try:
        return operation.handler(sandbox, Call(now, request, body, notes))
    except Refusal as refusal:
        return refusal.reply


async def read_json(request: web.Request, *, required: bool) -> tuple[dict[str, object] | None, Reply | None]:
    """The JSON object body: 415 if it is not declared JSON, 400 if it is not a JSON object."""
    raw = await request.read()
    if not raw:
        if required:
            return None, error_list(400, VALIDATION, "A JSON request body is required")
        return None, None
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return None, error_list(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        body = json.loads(raw.decode("utf-8"))  # decoding first is twice as fast as loads(bytes)
    except (ValueError, RecursionError):  # also a number past the int-string limit, a too deep nesting
        return None, error_list(400, VALIDATION, "The request body is not valid JSON")
    if not isinstance(body, dict):
        return None, error_list(400, VALIDATION, "The request body must be a JSON object")
    return body, None


def record(
    sandbox: Sandbox,
    request: web.Request,
    operation: str,
    reply: Reply,
    notes: Mapping[str, object],
    *,
    dropped: bool = False,
) -> None:
    """Add the request to the log (no headers, no secrets)."""
    status = None if dropped else reply.status
    query = request.query_string
    sandbox.ledger.record({
        "time": sandbox.clock(),
        "method": request.method,
        "path": redact_path(request.path, query) if query else request.path,
        "status": status,
        "operation": operation,
        "error_key": first_error_key(reply.payload) if reply.status >= 400 else None,
        "fault": "drop_after_commit" if dropped else reply.fault,
        **notes,
    })  # fmt: skip


def drop_connection(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Abort the connection; the returned response is never written (aiohttp sees a disconnect)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=reply.status)
