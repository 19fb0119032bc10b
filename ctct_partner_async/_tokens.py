"""The token endpoint without I/O: the client-credentials request, the reading of its answer, and when a
token must be renewed.

Two clocks meet here. A ``Token`` keeps its deadline on the *monotonic* clock (it never jumps); the JWT's
``exp`` and a shared cache speak *wall-clock* epoch seconds. The wall clock is only ever used to cross-check
(``min`` with ``expires_in``) or to carry a deadline between processes, never alone.

A lifetime is believed only when it is a finite positive number: ``expires_in`` may come as a JSON number or
a numeric string (``"3599"``); NaN, an infinity, zero, a negative value, a boolean or text mean "unknown".
Unknown falls back to the JWT's ``exp``, then to :data:`DEFAULT_LIFETIME` with one warning on the
``ctct_partner_async.auth`` logger. A non-finite deadline never reaches the renewal arithmetic: such a token
counts as expired.
"""

from __future__ import annotations

import base64
import logging
import math
import re
from collections.abc import Mapping
from typing import Any, Final, Literal
from urllib.parse import urlencode

import attrs

from ._protocol import Request, Response, decode_json, jwt_claims, parse_error_body

__all__ = ["ADVISORY", "CREDENTIAL_STATUSES", "DEFAULT_LIFETIME", "DEFAULT_SCOPE", "DEFAULT_TOKEN_URL",
           "FRESH", "MANDATORY", "NEWER_TOKEN_URL", "CachedToken", "Phase", "Token", "basic_auth",
           "build_token_request", "describe_refusal", "fresh_until", "from_cached", "parse_token_response",
           "renewal_phase", "to_cached", "token_lifetime"]  # fmt: skip

DEFAULT_TOKEN_URL = "https://v3api-partner.auth.us-east-1.amazoncognito.com/oauth2/token"  # noqa: S105 (a URL, not a secret)
NEWER_TOKEN_URL = "https://authz.constantcontact.com/partners/oauth2/default/v1/token"  # noqa: S105
DEFAULT_SCOPE = "v3api/general.partner"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
DEFAULT_LIFETIME: Final = 300.0
"""Seconds a token is taken to live when neither ``expires_in`` nor the JWT's ``exp`` says anything usable.
Conservative (the documented life is an hour): renewing early costs one request, renewing late a failed
call."""
CREDENTIAL_STATUSES: Final = frozenset({400, 401, 403})
"""Token-endpoint statuses that mean "these credentials (or this request) will never work": no retry."""
ADVISORY_SHARE: Final = 0.5
MANDATORY_SHARE: Final = 0.25
"""Renewal windows are capped at these shares of a token's lifetime, so a short-lived token is still used
for half its life and renewed in the background before callers have to wait."""

Phase = Literal["fresh", "advisory", "mandatory"]
FRESH: Final[Phase] = "fresh"
ADVISORY: Final[Phase] = "advisory"
MANDATORY: Final[Phase] = "mandatory"

logger = logging.getLogger("ctct_partner_async.auth")  # the token lifecycle's logger, as in _auth
_NUMERIC = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # plain decimal, ASCII digits only


@attrs.frozen
class Token:
    """A JWT and when it stops being usable, on the monotonic clock. The JWT never shows in a repr.

    ``lifetime`` is how long it was issued for (seconds); renewal windows are capped by it.
    """

    value: str = attrs.field(repr=False)
    expires_at: float
    lifetime: float = math.inf


@attrs.frozen
class CachedToken:
    """A JWT as a token cache holds it: ``expires_at`` in wall-clock epoch seconds, shareable between
    processes. The JWT never shows in a repr."""

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
    return Request(
        "POST",
        token_url,
        "fetch_token",
        body=urlencode(form).encode(),
        headers=FORM_HEADERS,
        idempotent=True,  # asking again only ever gives another token
    )


def _number(value: object) -> float | None:
    """``value`` as a finite float if it is a JSON number (not a boolean), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too big for a float
        return None
    return number if math.isfinite(number) else None


def _seconds(value: object) -> float | None:
    """A lifetime in seconds from ``value`` (a number or a numeric string), or ``None`` if unusable."""
    if isinstance(value, str):
        text = value.strip()
        value = float(text) if _NUMERIC.fullmatch(text) else None
    number = _number(value)
    return number if number is not None and number > 0 else None


def _exp_lifetime(claims: Mapping[str, Any], received_wall: float) -> float | None:
    """Seconds to the JWT's ``exp`` (``exp - iat`` if the local wall clock puts it in the past), or
    ``None`` if the JWT says nothing usable."""
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is not None and exp > received_wall:
        return exp - received_wall
    if exp is not None and iat is not None and exp > iat:
        return exp - iat
    return None


def token_lifetime(expires_in: object, claims: Mapping[str, Any], received_wall: float) -> float:
    """Seconds the token lives from receipt: the earlier of ``expires_in`` and the JWT's ``exp``.

    ``exp`` is read against the local wall clock at receipt. If that puts ``exp`` in the past, the local
    clock is wrong by more than the token's life, so it is not trusted: ``exp - iat`` (the lifetime the
    issuer meant) stands in. An unusable ``expires_in`` (see the module docstring) or ``exp`` is left out;
    with neither, :data:`DEFAULT_LIFETIME`, logged once as a warning. Always finite and positive.
    """
    candidates = [
        seconds
        for seconds in (_seconds(expires_in), _exp_lifetime(claims, received_wall))
        if seconds is not None
    ]
    if candidates:
        return min(candidates)
    said = "no expires_in" if expires_in is None else f"an unusable expires_in ({type(expires_in).__name__})"
    logger.warning(
        "token endpoint answered with %s and a token without a usable exp; taking it to live %g s",
        said,
        DEFAULT_LIFETIME,
    )
    return DEFAULT_LIFETIME


def parse_token_response(response: Response, *, received_mono: float, received_wall: float) -> Token:
    """The token in a successful answer, expiring at the earlier of ``expires_in`` and the JWT's ``exp``.

    ``expires_in`` counts from ``received_mono`` (the monotonic clock at receipt); ``exp`` is wall-clock
    time, turned into a monotonic deadline through ``received_wall`` (see :func:`token_lifetime`). An
    opaque (non-JWT) token is fine, and so is an unusable ``expires_in`` (it counts as unknown).
    ``ValueError`` if there is no ``access_token``; the message never quotes the body.
    """
    data = decode_json(response)
    value = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise ValueError("the token endpoint answered without an access_token")
    lifetime = token_lifetime(data.get("expires_in"), jwt_claims(value), received_wall)
    return Token(value, received_mono + lifetime, lifetime)


def renewal_phase(token: Token | None, now: float, advisory_window: float, mandatory_window: float) -> Phase:
    """Where ``token`` stands at monotonic ``now``.

    ``mandatory`` (no token, expired, or within ``mandatory_window`` of expiry: callers wait for a new
    one), ``advisory`` (within ``advisory_window``: renew in the background, keep using this one) or
    ``fresh``. The advisory window is capped at half the token's lifetime, the mandatory one at a quarter.
    A token whose deadline is not a finite number is expired.
    """
    if token is None or not math.isfinite(token.expires_at):
        return MANDATORY
    if now >= token.expires_at - _window(mandatory_window, token.lifetime, MANDATORY_SHARE):
        return MANDATORY
    if now >= fresh_until(token, advisory_window):
        return ADVISORY
    return FRESH


def fresh_until(token: Token, advisory_window: float) -> float:
    """The monotonic moment ``token`` stops being ``fresh`` (its advisory window starts); ``-inf`` (never
    fresh) if its deadline is not a finite number."""
    if not math.isfinite(token.expires_at):
        return -math.inf
    return token.expires_at - _window(advisory_window, token.lifetime, ADVISORY_SHARE)


def _window(window: float, lifetime: float, share: float) -> float:
    """``window`` capped at ``share`` of ``lifetime``; a NaN lifetime caps nothing (like an unknown one)."""
    return window if math.isnan(lifetime) else min(window, lifetime * share)


def to_cached(token: Token, *, now_mono: float, now_wall: float) -> CachedToken:
    """``token`` with its deadline moved to the wall clock, for a cache shared between processes. A
    deadline that is not a finite number goes as ``now_wall`` (expired)."""
    if not math.isfinite(token.expires_at):
        return CachedToken(token.value, now_wall)
    return CachedToken(token.value, now_wall + (token.expires_at - now_mono))


def from_cached(cached: CachedToken, *, now_mono: float, now_wall: float) -> Token:
    """A cached token with its deadline back on the monotonic clock.

    The JWT's ``exp`` is checked again (the earlier wins); its lifetime is ``exp - iat`` when the JWT
    says, else what is left of it. A cached deadline that is not a finite number is expired (``now_mono``,
    lifetime 0).
    """
    if not math.isfinite(cached.expires_at):
        return Token(cached.value, now_mono, 0.0)
    claims = jwt_claims(cached.value)
    remaining = cached.expires_at - now_wall
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is not None:
        remaining = min(remaining, exp - now_wall)
    lifetime = exp - iat if exp is not None and iat is not None and exp > iat else max(remaining, 0.0)
    return Token(cached.value, now_mono + remaining, lifetime)


def describe_refusal(token_url: str, response: Response) -> str:
    """Why the token endpoint at ``token_url`` gave no token, for an exception message.

    Names the URL, the status and the OAuth ``error`` keys (never the body's free text or a credential).
    """
    keys, _ = parse_error_body(response.body)
    keys = [key[:80] for key in keys[:5]]  # a server's text, cut short
    detail = f"HTTP {response.status}" + (f" {', '.join(keys)}" if keys else "")
    if response.status in CREDENTIAL_STATUSES:
        return (
            f"token endpoint {token_url} refused the client credentials ({detail}); check client_id and "
            "client_secret (the partner credentials from Constant Contact, not the API key) and the scope"
        )
    return f"token endpoint {token_url} gave no token ({detail})"
