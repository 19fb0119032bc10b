"""Introspection and control under ``/_sandbox`` (no auth: a local emulator bound to loopback).

``GET /_sandbox`` (or ``/_sandbox/``) lists the endpoints below, each with its method, path and a line
saying what it does.

``GET accounts`` · ``POST accounts`` (seed one: ``{"login_name", ...}``) · ``GET accounts/{id}`` ·
``GET stats`` · ``GET requests`` (``?limit=N``: the last N) · ``GET webhooks`` · ``GET deliveries`` ·
``POST deliveries/flush`` · ``POST rotate-webhook-key`` · ``GET``/``PUT faults`` (PUT merges; 400 on an
unknown name or bad value) · ``POST reset`` · ``POST revoke-tokens``.
Admin requests are not counted, logged, limited or faulted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from .replies import Reply, error_list, render
from .state import Sandbox

ADMIN_PREFIX = "/_sandbox"
AdminHandler = Callable[[web.Request, Sandbox], Awaitable[Reply]]
AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _json_object(request: web.Request) -> dict[str, object]:
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, RecursionError):
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")  # noqa: TRY004 - answered as a 400
    return body


async def get_accounts(request: web.Request, sandbox: Sandbox) -> Reply:
    """All accounts, in creation order."""
    return Reply(200, sandbox.accounts())


async def get_account(request: web.Request, sandbox: Sandbox) -> Reply:
    """One account, or 404."""
    found = sandbox.account(request.match_info["encoded_account_id"])
    return Reply(200, found) if found is not None else error_list(404, "not_found", "No such account")


async def seed_account(request: web.Request, sandbox: Sandbox) -> Reply:
    """Create an account directly, bypassing the API."""
    try:
        body = await _json_object(request)
        login = body.pop("login_name", None)
        if isinstance(login, str):
            return Reply(201, sandbox.seed_account(login, **body))
    except ValueError as exc:
        return error_list(400, "validation_error", str(exc))
    return error_list(400, "validation_error", "login_name is required")


async def get_stats(request: web.Request, sandbox: Sandbox) -> Reply:
    """The counters."""
    return Reply(200, sandbox.stats())


async def get_requests(request: web.Request, sandbox: Sandbox) -> Reply:
    """The request log, oldest first; ``?limit=N`` keeps the last N."""
    entries = sandbox.request_log()
    limit = request.query.get("limit", "")
    wanted = int(limit) if limit.isascii() and limit.isdigit() and len(limit) <= 9 else 0
    return Reply(200, entries[-wanted:] if wanted > 0 else entries)


async def get_webhooks(request: web.Request, sandbox: Sandbox) -> Reply:
    """The webhook subscriptions."""
    return Reply(200, sandbox.webhook_subscriptions())


async def get_deliveries(request: web.Request, sandbox: Sandbox) -> Reply:
    """The webhook deliveries with their attempts and answers, oldest first."""
    return Reply(200, sandbox.deliveries())


async def flush_deliveries(request: web.Request, sandbox: Sandbox) -> Reply:
    """Make every webhook attempt that is due by the sandbox clock now; answer how many were made."""
    return Reply(200, {"attempts": await sandbox.outbox.flush()})


async def rotate_webhook_key(request: web.Request, sandbox: Sandbox) -> Reply:
    """Sign webhooks with a new key (the JWKS keeps the old one after it)."""
    sandbox.outbox.signer.rotate()
    return Reply(200, {"keys": len(sandbox.outbox.signer.jwks()["keys"])})  # type: ignore[arg-type]


async def get_faults(request: web.Request, sandbox: Sandbox) -> Reply:
    """The live fault settings."""
    return Reply(200, sandbox.faults.as_dict())


async def put_faults(request: web.Request, sandbox: Sandbox) -> Reply:
    """Merge fault settings; all or nothing."""
    try:
        sandbox.faults.update(await _json_object(request))
    except ValueError as exc:
        return error_list(400, "validation_error", str(exc))
    return Reply(200, sandbox.faults.as_dict())


async def post_reset(request: web.Request, sandbox: Sandbox) -> Reply:
    """Start afresh (tokens stay valid)."""
    sandbox.reset()
    return Reply(200, {"reset": True})


async def post_revoke(request: web.Request, sandbox: Sandbox) -> Reply:
    """Revoke every issued token."""
    return Reply(200, {"revoked": sandbox.revoke_tokens()})


async def get_index(request: web.Request, sandbox: Sandbox) -> Reply:
    """This list of the admin endpoints."""
    return Reply(200, {"endpoints": admin_index()})


def admin_index() -> list[dict[str, str]]:
    """Every admin endpoint: ``method``, ``path`` (under ``/_sandbox``) and ``description``."""
    return [
        {"method": method, "path": ADMIN_PREFIX + path, "description": _summary(handler)}
        for method, path, handler in ADMIN_ROUTES
        if handler is not get_index
    ]


def _summary(handler: AdminHandler) -> str:
    return (handler.__doc__ or "").strip().splitlines()[0].replace("``", "")


ADMIN_ROUTES: list[tuple[str, str, AdminHandler]] = [
    ("GET", "", get_index),
    ("GET", "/", get_index),
    ("GET", "/accounts", get_accounts),
    ("POST", "/accounts", seed_account),
    ("GET", "/accounts/{encoded_account_id}", get_account),
    ("GET", "/stats", get_stats),
    ("GET", "/requests", get_requests),
    ("GET", "/webhooks", get_webhooks),
    ("GET", "/deliveries", get_deliveries),
    ("POST", "/deliveries/flush", flush_deliveries),
    ("POST", "/rotate-webhook-key", rotate_webhook_key),
    ("GET", "/faults", get_faults),
    ("PUT", "/faults", put_faults),
    ("POST", "/reset", post_reset),
    ("POST", "/revoke-tokens", post_revoke),
]


def admin_endpoint(sandbox: Sandbox, handler: AdminHandler) -> AiohttpHandler:
    """The aiohttp handler for an admin route."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return render(await handler(request, sandbox))

    return handle
