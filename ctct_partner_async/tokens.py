"""The token endpoint without I/O: the client-credentials request and the reading of its answer."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import attrs

from .protocol import Request, Response, decode_json, jwt_claims

__all__ = ["DEFAULT_SCOPE", "DEFAULT_TOKEN_URL", "NEWER_TOKEN_URL", "Token", "basic_auth",
           "build_token_request", "parse_token_response"]  # fmt: skip

DEFAULT_TOKEN_URL = "https://v3api-partner.auth.us-east-1.amazoncognito.com/oauth2/token"  # noqa: S105 (a URL, not a secret)
NEWER_TOKEN_URL = "https://authz.constantcontact.com/partners/oauth2/default/v1/token"  # noqa: S105
DEFAULT_SCOPE = "v3api/general.partner"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


@attrs.frozen
class Token:
    """A JWT and when it stops being usable, on the monotonic clock. The JWT never shows in a repr."""

    value: str = attrs.field(repr=False)
    expires_at: float


def basic_auth(username: str, password: str) -> str:
    """An HTTP Basic ``Authorization`` header value."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def build_token_request(token_url: str, scope: str | None = DEFAULT_SCOPE) -> Request:
    """The client-credentials request; the caller adds the Basic credentials when it sends."""
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    return Request("POST", token_url, "fetch_token", body=urlencode(form).encode(), headers=FORM_HEADERS)


def parse_token_response(response: Response, *, received_mono: float, received_wall: float) -> Token:
    """The token in a successful answer, expiring at the earlier of ``expires_in`` and the JWT's ``exp``.

    ``expires_in`` counts from ``received_mono`` (the monotonic clock at receipt); ``exp`` is wall-clock
    time, so it is turned into a monotonic deadline through ``received_wall``. Never trusting the local
    wall clock alone, we take the earlier of the two.
    """
    data = decode_json(response)
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
        raise ValueError("the token endpoint answered without an access_token")  # noqa: TRY004
    value = data["access_token"]
    lifetime = float(data.get("expires_in") or 3600)
    exp = jwt_claims(value).get("exp")
    if isinstance(exp, int | float):
        lifetime = min(lifetime, float(exp) - received_wall)
    return Token(value, received_mono + lifetime)
