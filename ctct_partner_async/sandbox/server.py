"""Wiring: :func:`create_app` builds the aiohttp application; :func:`run_sandbox` serves it on loopback.

Layout of one app: the v3 partner API under ``/v3``, the token endpoint at ``/oauth2/token``, the legacy
plan endpoint under ``/v2``, the webhook signing keys at ``/.well-known/jwks.json`` and introspection
under ``/_sandbox``. While the app runs, its webhook deliveries are sent in the background.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from . import actions, legacy, partner, webhooks
from .admin import ADMIN_PREFIX, ADMIN_ROUTES, AiohttpHandler, admin_endpoint
from .config import SandboxConfig
from .credentials import legacy_gate, partner_gate
from .oauth import token_endpoint
from .outbox import sending
from .pipeline import Gate, Route, endpoint
from .replies import error_list, render
from .state import Sandbox

SANDBOX_KEY = web.AppKey("ctct_partner_sandbox", Sandbox)
V3_PREFIX = "/v3"
V2_PREFIX = "/v2"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a secret
JWKS_PATH = "/.well-known/jwks.json"


def _add_api(app: web.Application, sandbox: Sandbox, prefix: str, routes: list[Route], gate: Gate) -> None:
    for method, path, operation in routes:
        app.router.add_route(method, prefix + path, endpoint(sandbox, operation, gate))


@web.middleware
async def json_routing_errors(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
    """The router's own 404 and 405, answered as JSON error lists like every other answer; a client that
    hangs up before its body has come is let go without a traceback in the log."""
    try:
        return await handler(request)
    except ConnectionResetError:  # nobody is left to answer
        return web.Response(status=400)
    except web.HTTPNotFound:
        return render(error_list(404, "not_found", f"No endpoint at {request.path}"))
    except web.HTTPMethodNotAllowed as exc:
        reply = render(error_list(405, "method_not_allowed", f"{request.method} is not allowed here"))
        reply.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return reply


async def jwks(request: web.Request, sandbox: Sandbox) -> web.StreamResponse:
    """The public keys that check the webhook signatures (501 without the ``[webhooks]`` extra)."""
    if not sandbox.outbox.signer.available():
        reply = error_list(501, "not_implemented", "Signing needs ctct-partner-async[webhooks]")
        return render(reply)
    return web.json_response(sandbox.outbox.signer.jwks())


def create_app(config: SandboxConfig | None = None) -> web.Application:
    """A new sandbox application; its state is ``app[SANDBOX_KEY]``."""
    sandbox = Sandbox(config if config is not None else SandboxConfig())
    app = web.Application(middlewares=[json_routing_errors])
    app[SANDBOX_KEY] = sandbox
    v3_routes = partner.ROUTES + actions.ROUTES + webhooks.ROUTES
    _add_api(app, sandbox, V3_PREFIX, v3_routes, partner_gate)
    _add_api(app, sandbox, V2_PREFIX, legacy.ROUTES, legacy.negotiating(legacy_gate))
    app.router.add_post(TOKEN_PATH, functools.partial(token_endpoint, sandbox=sandbox))
    app.router.add_get(JWKS_PATH, functools.partial(jwks, sandbox=sandbox))
    for method, path, handler in ADMIN_ROUTES:
        app.router.add_route(method, ADMIN_PREFIX + path, admin_endpoint(sandbox, handler))

    async def deliver_webhooks(app: web.Application) -> AsyncIterator[None]:
        async with sending(sandbox.outbox):
            yield

    app.cleanup_ctx.append(deliver_webhooks)
    return app


@dataclass(frozen=True)
class SandboxHandle:
    """A running sandbox: its state and its addresses."""

    sandbox: Sandbox
    app: web.Application
    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The v3 API base, ``.../v3``."""
        return self.url + V3_PREFIX

    @property
    def token_url(self) -> str:
        """The token endpoint, ``.../oauth2/token``."""
        return self.url + TOKEN_PATH

    @property
    def legacy_url(self) -> str:
        """The v2 base, ``.../v2``."""
        return self.url + V2_PREFIX

    @property
    def jwks_url(self) -> str:
        """The webhook signing keys, ``.../.well-known/jwks.json`` (for ``JwsVerifier``)."""
        return self.url + JWKS_PATH

    @property
    def admin_url(self) -> str:
        """The introspection prefix, ``.../_sandbox``."""
        return self.url + ADMIN_PREFIX


@asynccontextmanager
async def run_sandbox(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[SandboxHandle]:
    """Serve a new sandbox in the running loop (``port`` 0: an ephemeral port) until the block exits."""
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        yield SandboxHandle(app[SANDBOX_KEY], app, host, bound_port)
    finally:
        await runner.cleanup()
