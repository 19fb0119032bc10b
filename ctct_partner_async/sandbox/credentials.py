"""Credential checks: the v3 gate (API key + JWT), the v2 gate (Basic + ``api_key``) and Basic parsing.

v3 failures answer 401 ``{"error_key": "unauthorized", ...}`` (a single object, as the vendor's auth
errors are); v2 failures answer a one-entry error array, as v2 errors are. The ``Authorization`` header
may carry the raw JWT (the vendor's examples) or ``Bearer <jwt>``.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web

from .replies import Reply, error_list, error_object
from .state import Sandbox

UNAUTHORIZED = "unauthorized"


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from a ``Basic`` ``Authorization`` header, or ``None``."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def client_matches(sandbox: Sandbox, pair: tuple[str, str] | None) -> bool:
    """Whether a Basic pair is the configured client id and secret."""
    if pair is None:
        return False
    config = sandbox.config
    same_id = hmac.compare_digest(pair[0].encode(), config.client_id.encode())
    same_secret = hmac.compare_digest(pair[1].encode(), config.client_secret.encode())
    return same_id and same_secret


def partner_gate(sandbox: Sandbox, request: web.Request, now: float) -> Reply | None:
    """v3: ``x-api-key`` must be the configured key and ``Authorization`` a live sandbox token."""
    headers = request.headers
    if headers.get("x-api-key") != sandbox.config.api_key:
        return error_object(401, UNAUTHORIZED, "The x-api-key header is missing or not a valid API key")
    token = headers.get("Authorization")
    if not token:
        return error_object(401, UNAUTHORIZED, "The Authorization header is missing")
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    problem = sandbox.tokens.check(token, now)
    if problem is not None:
        return error_object(401, UNAUTHORIZED, problem)
    return None


def legacy_gate(sandbox: Sandbox, request: web.Request, now: float) -> Reply | None:
    """v2: Basic ``client_id:client_secret`` and the ``api_key`` query parameter."""
    if not client_matches(sandbox, parse_basic(request.headers.get("Authorization"))):
        return error_list(401, UNAUTHORIZED, "Authentication failure: use Basic authentication")
    if request.query.get("api_key") != sandbox.config.api_key:
        return error_list(401, UNAUTHORIZED, "The api_key query parameter is missing or not valid")
    return None
