"""``POST /oauth2/token``: the client-credentials token endpoint, answered OAuth-style (like Cognito).

In order: ``token_latency`` (a real delay); while ``token_fail_next`` is above 0, the request takes one off
and answers ``token_fail_status`` (see :func:`scripted_failure`); ``token_outage`` answers 503
``temporarily_unavailable``;
wrong Basic credentials 401 ``invalid_client``; ``grant_type`` other than ``client_credentials`` 400
``unsupported_grant_type``; a ``scope`` other than ``v3api/general.partner`` 400 ``invalid_scope``; more
than ``token_rate_limit`` requests a second for the client 429 ``throttled``; else 200
``{access_token, expires_in, token_type: "Bearer"}``. Every request is counted, failed ones included.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .credentials import client_matches, parse_basic
from .faults import throttled
from .ledger import TOKEN_OPERATION
from .pipeline import record
from .replies import Reply, render
from .state import Sandbox
from .tokens import SCOPE


def _oauth_error(status: int, error: str, description: str) -> Reply:
    return Reply(status, {"error": error, "error_description": description})


_OAUTH_ERRORS = {
    400: ("invalid_client", "Client authentication failed"),
    401: ("invalid_client", "Client authentication failed"),
    403: ("unauthorized_client", "The client is not authorized for this grant"),
    503: ("temporarily_unavailable", "The token service is unavailable"),
}
_SERVER_ERROR = ("server_error", "The token service failed")
_REQUEST_ERROR = ("invalid_request", "The token request was refused")


def scripted_failure(status: int) -> Reply:
    """What a ``token_fail_next`` request answers: the body the endpoint sends for ``status`` anyway.

    429: the throttling answer; 400/401: ``invalid_client``; 403 ``unauthorized_client``; 503
    ``temporarily_unavailable``; any other 5xx ``server_error``, any other 4xx ``invalid_request``.
    """
    if status == 429:
        return throttled("token_fail_next")
    error, description = _OAUTH_ERRORS.get(status, _SERVER_ERROR if status >= 500 else _REQUEST_ERROR)
    return Reply(status, {"error": error, "error_description": description}, "token_fail_next")


def token_reply(sandbox: Sandbox, request: web.Request, form: dict[str, str], now: float) -> Reply:
    """The answer to one token request whose form has been read."""
    config = sandbox.config
    faults = sandbox.faults
    if faults.token_fail_next > 0:
        faults.token_fail_next -= 1
        return scripted_failure(faults.token_fail_status)
    if faults.token_outage:
        return _oauth_error(503, "temporarily_unavailable", "The token service is unavailable")
    if not client_matches(sandbox, parse_basic(request.headers.get("Authorization"))):
        return _oauth_error(401, "invalid_client", "Client authentication failed")
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    scope = form.get("scope")
    if scope is not None and scope.strip() != SCOPE:
        return _oauth_error(400, "invalid_scope", f"The only scope is {SCOPE}")
    if not sandbox.token_bucket(config.client_id).take(now):
        return throttled()
    token = sandbox.tokens.issue(config.client_id, now, config.token_ttl)
    sandbox.ledger.counts["tokens_issued"] += 1
    return Reply(200, {"access_token": token, "expires_in": int(config.token_ttl), "token_type": "Bearer"})


async def token_endpoint(request: web.Request, sandbox: Sandbox) -> web.StreamResponse:
    """Handle one token request."""
    sandbox.ledger.counts["token_requests"] += 1
    delay = sandbox.faults.token_latency
    if delay > 0:
        await asyncio.sleep(delay)
    form = {key: str(value) for key, value in (await request.post()).items()}
    reply = token_reply(sandbox, request, form, sandbox.clock())
    record(sandbox, request, TOKEN_OPERATION, reply, {})
    return render(reply)
