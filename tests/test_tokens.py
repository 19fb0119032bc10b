"""The token endpoint without I/O: the request form, the answer's expiry, renewal phases, the cache form."""

from __future__ import annotations

import base64
import json
import math
from typing import Any
from urllib.parse import parse_qs

import pytest

from ctct_partner_async._protocol import Response
from ctct_partner_async._tokens import (
    ADVISORY,
    DEFAULT_LIFETIME,
    DEFAULT_TOKEN_URL,
    FRESH,
    MANDATORY,
    NEWER_TOKEN_URL,
    CachedToken,
    Token,
    basic_auth,
    build_token_request,
    describe_refusal,
    from_cached,
    parse_token_response,
    renewal_phase,
    to_cached,
    token_lifetime,
)

WALL = 1_800_000_000.0
MONO = 500.0


def make_jwt(**claims: Any) -> str:
    """An unsigned JWT carrying ``claims``."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def answer(body: Any, status: int = 200) -> Response:
    return Response(status, {}, json.dumps(body).encode())


def test_default_url_is_the_spec_url_and_newer_is_documented() -> None:
    """The default token URL is the one in the current spec; the newer reported URL is the alternative."""
    assert DEFAULT_TOKEN_URL == "https://v3api-partner.auth.us-east-1.amazoncognito.com/oauth2/token"
    assert NEWER_TOKEN_URL == "https://authz.constantcontact.com/partners/oauth2/default/v1/token"


def test_token_request_is_a_client_credentials_form() -> None:
    """The request is a form POST to the token URL with grant_type and the partner scope."""
    request = build_token_request("https://auth.example/oauth2/token")
    assert (request.method, request.url, request.idempotent) == (
        "POST",
        "https://auth.example/oauth2/token",
        False,
    )
    assert request.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert request.body is not None
    assert parse_qs(request.body.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["v3api/general.partner"],
    }


def test_token_request_without_scope() -> None:
    """With no scope the form carries only the grant type."""
    request = build_token_request("https://auth.example/t", scope=None)
    assert request.body == b"grant_type=client_credentials"


def test_basic_auth_encodes_id_and_secret() -> None:
    """The Basic header is base64 of ``client_id:client_secret``."""
    header = basic_auth("client-1", "s3cr:et")
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]).decode() == "client-1:s3cr:et"


def test_expires_in_counts_from_the_monotonic_receipt() -> None:
    """An opaque (non-JWT) token expires ``expires_in`` seconds after the monotonic receipt time."""
    token = parse_token_response(
        answer({"access_token": "opaque-token", "expires_in": 3600}), received_mono=MONO, received_wall=WALL
    )
    assert token == Token("opaque-token", MONO + 3600, 3600)


def test_earlier_exp_wins_over_expires_in() -> None:
    """A JWT whose ``exp`` comes before ``expires_in`` expires at ``exp`` (mapped onto the monotonic clock)."""
    jwt = make_jwt(exp=WALL + 100, iat=WALL - 3500)
    token = parse_token_response(
        answer({"access_token": jwt, "expires_in": 3600}), received_mono=MONO, received_wall=WALL
    )
    assert token.expires_at == MONO + 100
    assert token.lifetime == 100


def test_earlier_expires_in_wins_over_exp() -> None:
    """A local wall clock running behind cannot stretch the life past ``expires_in``."""
    jwt = make_jwt(exp=WALL + 7200, iat=WALL)
    token = parse_token_response(
        answer({"access_token": jwt, "expires_in": 60}), received_mono=MONO, received_wall=WALL
    )
    assert token.expires_at == MONO + 60


def test_wall_clock_far_ahead_is_not_trusted_alone() -> None:
    """If the local wall clock puts ``exp`` in the past, ``exp - iat`` stands in for it (no instant expiry)."""
    assert token_lifetime(3600, {"exp": WALL - 10, "iat": WALL - 3610}, WALL) == 3600
    assert token_lifetime(None, {"exp": WALL - 10, "iat": WALL - 1810}, WALL) == 1800


def test_lifetime_defaults_to_an_hour_when_nothing_is_said() -> None:
    """No ``expires_in`` and no ``exp``: the documented hour."""
    assert token_lifetime(None, {}, WALL) == DEFAULT_LIFETIME == 3600


def test_exp_alone_is_used() -> None:
    """No ``expires_in``: the JWT's ``exp`` against the wall clock at receipt."""
    assert token_lifetime(None, {"exp": WALL + 42}, WALL) == 42


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": "Bearer", "expires_in": 3600},
        {"access_token": ""},
        {"access_token": 12},
        [],
        "text",
        None,
    ],
    ids=["missing", "empty", "number", "list", "string", "null"],
)
def test_missing_access_token_is_a_value_error(body: Any) -> None:
    """An answer without a usable access_token raises ValueError, whatever its shape."""
    with pytest.raises(ValueError, match="without an access_token"):
        parse_token_response(answer(body), received_mono=MONO, received_wall=WALL)


def test_non_json_and_bad_expires_in_are_value_errors() -> None:
    """A non-JSON body and a non-numeric expires_in raise ValueError without quoting the token."""
    with pytest.raises(ValueError):
        parse_token_response(Response(200, {}, b"<html>"), received_mono=MONO, received_wall=WALL)
    with pytest.raises(ValueError, match="non-numeric expires_in") as info:
        parse_token_response(
            answer({"access_token": "tok-secret", "expires_in": "soon"}),
            received_mono=MONO,
            received_wall=WALL,
        )
    assert "tok-secret" not in str(info.value)


def test_token_repr_hides_the_jwt() -> None:
    """Neither Token nor CachedToken shows the JWT in its repr."""
    assert "jwt-value" not in repr(Token("jwt-value", 1.0, 2.0))
    assert "jwt-value" not in repr(CachedToken("jwt-value", 1.0))


@pytest.mark.parametrize(
    ("now", "phase"),
    [
        (0.0, FRESH),
        (699.9, FRESH),
        (700.0, ADVISORY),
        (939.9, ADVISORY),
        (940.0, MANDATORY),
        (1000.0, MANDATORY),
    ],
)
def test_renewal_phases(now: float, phase: str) -> None:
    """Fresh until the advisory window, advisory until the mandatory window, then mandatory (also expired)."""
    token = Token("t", 1000.0, 3600.0)
    assert renewal_phase(token, now, 300.0, 60.0) == phase


def test_no_token_is_mandatory() -> None:
    """Without a token callers must wait for one."""
    assert renewal_phase(None, 0.0, 300.0, 60.0) == MANDATORY


def test_windows_are_capped_by_the_lifetime() -> None:
    """A 10-second token with default windows (300/60 s): fresh for half its life, advisory, then mandatory."""
    token = Token("t", 110.0, 10.0)
    assert renewal_phase(token, 104.9, 300.0, 60.0) == FRESH
    assert renewal_phase(token, 105.0, 300.0, 60.0) == ADVISORY
    assert renewal_phase(token, 107.5, 300.0, 60.0) == MANDATORY
    assert renewal_phase(token, 106.0, 4.0, 2.0) == ADVISORY
    assert renewal_phase(token, 108.0, 4.0, 2.0) == MANDATORY


def test_unknown_lifetime_leaves_windows_alone() -> None:
    """A token built without a lifetime uses the windows as given."""
    token = Token("t", 1000.0)
    assert token.lifetime == math.inf
    assert renewal_phase(token, 701.0, 300.0, 60.0) == ADVISORY


def test_cache_form_round_trip() -> None:
    """A token goes to the cache with a wall-clock expiry and comes back onto another monotonic clock."""
    jwt = make_jwt(exp=WALL + 3000, iat=WALL - 600)
    cached = to_cached(Token(jwt, MONO + 3000, 3600), now_mono=MONO, now_wall=WALL)
    assert cached == CachedToken(jwt, WALL + 3000)
    back = from_cached(cached, now_mono=10.0, now_wall=WALL + 1000)
    assert back == Token(jwt, 10.0 + 2000, 3600)


def test_cache_form_rechecks_exp() -> None:
    """A cached expiry later than the JWT's ``exp`` is cut back to ``exp``; an opaque token keeps its own."""
    jwt = make_jwt(exp=WALL + 50)
    assert from_cached(CachedToken(jwt, WALL + 3000), now_mono=0.0, now_wall=WALL).expires_at == 50
    opaque = from_cached(CachedToken("opaque", WALL + 30), now_mono=0.0, now_wall=WALL)
    assert (opaque.expires_at, opaque.lifetime) == (30, 30)


def test_refusal_names_url_status_and_key_not_secrets() -> None:
    """A credentials refusal names the URL, status and OAuth error key, and points at the credentials."""
    body = {"error": "invalid_client", "error_description": "secret sandbox-secret is wrong"}
    message = describe_refusal("https://auth.example/t", answer(body, 401))
    assert "https://auth.example/t" in message
    assert "HTTP 401 invalid_client" in message
    assert "client_secret" in message
    assert "sandbox-secret" not in message


def test_other_refusals_are_not_blamed_on_credentials() -> None:
    """A 503 says the endpoint gave no token, with its status."""
    message = describe_refusal("https://auth.example/t", Response(503, {}, b""))
    assert message == "token endpoint https://auth.example/t gave no token (HTTP 503)"
