"""The token endpoint without I/O: the request form, the answer's expiry, renewal phases, the cache form."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest

from ctct_partner_async._auth import TokenManager, TokenSettings
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._protocol import Request, Response
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
    fresh_until,
    from_cached,
    parse_token_response,
    renewal_phase,
    to_cached,
    token_lifetime,
)
from ctct_partner_async.testing import MockTransport

WALL = 1_800_000_000.0
MONO = 500.0
AUTH_LOGGER = "ctct_partner_async.auth"


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
        True,  # asking again only gives another token: retried like any idempotent request
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


def test_lifetime_defaults_to_five_minutes_when_nothing_is_said(caplog: pytest.LogCaptureFixture) -> None:
    """No ``expires_in`` and no ``exp``: the conservative default (300 s), with one warning."""
    with caplog.at_level(logging.WARNING, logger=AUTH_LOGGER):
        assert token_lifetime(None, {}, WALL) == DEFAULT_LIFETIME == 300
    assert [(r.name, r.levelno) for r in caplog.records] == [(AUTH_LOGGER, logging.WARNING)]
    assert "no expires_in" in caplog.records[0].getMessage()


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


def test_non_json_is_a_value_error() -> None:
    """A non-JSON body raises ValueError."""
    with pytest.raises(ValueError):
        parse_token_response(Response(200, {}, b"<html>"), received_mono=MONO, received_wall=WALL)


def raw_answer(token: str, expires_in: str | None) -> Response:
    """A token answer with ``expires_in`` written as raw JSON text (so NaN and Infinity can be sent)."""
    if expires_in is None:
        return Response(200, {}, json.dumps({"access_token": token}).encode())
    return Response(200, {}, f'{{"access_token": "{token}", "expires_in": {expires_in}}}'.encode())


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [("3599", 3599), ("3599.5", 3599.5), ('"3599"', 3599), ('" 3599 "', 3599), ('"3599.5"', 3599.5),
     ('"\\t60\\n"', 60), ("1e3", 1000)],
    ids=["int", "float", "string", "padded", "decimal-string", "tab-newline", "exponent"],
)  # fmt: skip
def test_expires_in_as_a_number_or_a_numeric_string(expires_in: str, lifetime: float) -> None:
    """``expires_in`` is believed as a JSON number or a numeric string (spaces around it allowed)."""
    token = parse_token_response(raw_answer("opaque", expires_in), received_mono=MONO, received_wall=WALL)
    assert (token.expires_at, token.lifetime) == (MONO + lifetime, lifetime)


UNUSABLE = ["NaN", "Infinity", "-Infinity", "0", "0.0", "-5", '"-5"', '"0"', "true", "false", '"soon"',
            '""', '"nan"', '"inf"', '"1e3"', '"3_599"', '"٣٥٩٩"', "null", "[3600]", '{"s": 1}', "1" * 400,
            None]  # fmt: skip
UNUSABLE_IDS = ["nan", "inf", "-inf", "zero", "zero-float", "negative", "negative-string", "zero-string",
                "true", "false", "text", "empty", "nan-string", "inf-string", "exp-string", "underscore",
                "arabic-digits", "null", "list", "object", "huge-int", "missing"]  # fmt: skip


@pytest.mark.parametrize("expires_in", UNUSABLE, ids=UNUSABLE_IDS)
def test_unusable_expires_in_falls_back_to_the_jwt_exp(
    expires_in: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """An unusable ``expires_in`` counts as unknown: the JWT's ``exp`` decides, without a warning."""
    jwt = make_jwt(exp=WALL + 1200, iat=WALL)
    with caplog.at_level(logging.WARNING, logger=AUTH_LOGGER):
        token = parse_token_response(raw_answer(jwt, expires_in), received_mono=MONO, received_wall=WALL)
    assert (token.expires_at, token.lifetime) == (MONO + 1200, 1200)
    assert caplog.records == []


@pytest.mark.parametrize("expires_in", UNUSABLE, ids=UNUSABLE_IDS)
def test_unusable_expires_in_and_no_exp_take_the_default_with_one_warning(
    expires_in: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """No usable ``expires_in`` and an opaque token: DEFAULT_LIFETIME, one warning that never shows the token."""
    with caplog.at_level(logging.DEBUG, logger=AUTH_LOGGER):
        token = parse_token_response(
            raw_answer("opaque-secret-token", expires_in), received_mono=MONO, received_wall=WALL
        )
    assert (token.expires_at, token.lifetime) == (MONO + DEFAULT_LIFETIME, DEFAULT_LIFETIME)
    [record] = caplog.records
    assert (record.name, record.levelno) == (AUTH_LOGGER, logging.WARNING)
    assert "opaque-secret-token" not in record.getMessage()
    assert "300 s" in record.getMessage()


@pytest.mark.parametrize(
    "claims",
    [{"exp": math.nan}, {"exp": math.inf}, {"exp": "soon"}, {"exp": True}, {"exp": WALL - 10},
     {"exp": WALL - 10, "iat": WALL}, {"exp": WALL - 10, "iat": math.nan}, {"exp": 10**400}],
    ids=["nan", "inf", "text", "bool", "past-no-iat", "iat-after-exp", "nan-iat", "huge"],
)  # fmt: skip
def test_unusable_exp_falls_back_to_the_default(
    claims: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """An ``exp`` that is not a finite number, or gives no positive lifetime, is unknown too."""
    jwt = make_jwt(**claims)
    with caplog.at_level(logging.WARNING, logger=AUTH_LOGGER):
        token = parse_token_response(raw_answer(jwt, "NaN"), received_mono=MONO, received_wall=WALL)
    assert token.lifetime == DEFAULT_LIFETIME
    assert math.isfinite(token.expires_at)
    assert len(caplog.records) == 1
    assert jwt not in caplog.records[0].getMessage()


def test_a_usable_expires_in_still_loses_to_an_earlier_exp_and_an_unusable_exp_is_ignored() -> None:
    """``"3599"`` with a usable earlier ``exp``: ``exp``; with an unusable ``exp``: ``"3599"``."""
    earlier = make_jwt(exp=WALL + 100)
    assert (
        parse_token_response(raw_answer(earlier, '"3599"'), received_mono=0, received_wall=WALL).lifetime
        == 100
    )
    nan_exp = make_jwt(exp=math.nan)
    assert (
        parse_token_response(raw_answer(nan_exp, '"3599"'), received_mono=0, received_wall=WALL).lifetime
        == 3599
    )


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


@pytest.mark.parametrize("expires_at", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_a_non_finite_deadline_is_expired(expires_at: float) -> None:
    """A Token whose deadline is not a finite number is mandatory (expired) and never fresh."""
    token = Token("t", expires_at, 3600.0)
    assert renewal_phase(token, 0.0, 300.0, 60.0) == MANDATORY
    assert fresh_until(token, 300.0) == -math.inf


def test_a_nan_lifetime_leaves_windows_alone() -> None:
    """A NaN lifetime caps no window (like an unknown one) instead of switching renewal off."""
    token = Token("t", 1000.0, math.nan)
    assert renewal_phase(token, 699.9, 300.0, 60.0) == FRESH
    assert renewal_phase(token, 700.0, 300.0, 60.0) == ADVISORY
    assert renewal_phase(token, 940.0, 300.0, 60.0) == MANDATORY
    assert fresh_until(token, 300.0) == 700.0


@pytest.mark.parametrize("expires_at", [math.nan, math.inf], ids=["nan", "inf"])
def test_cache_form_with_a_non_finite_expiry_is_expired(expires_at: float) -> None:
    """A cached entry with a NaN or infinite expiry comes back expired; a held one goes to the cache expired."""
    jwt = make_jwt(exp=WALL + 3000, iat=WALL)
    back = from_cached(CachedToken(jwt, expires_at), now_mono=MONO, now_wall=WALL)
    assert (back.expires_at, back.lifetime) == (MONO, 0.0)
    assert renewal_phase(back, MONO, 300.0, 60.0) == MANDATORY
    assert to_cached(Token(jwt, expires_at, 3600), now_mono=MONO, now_wall=WALL) == CachedToken(jwt, WALL)


def test_cache_form_ignores_an_unusable_iat() -> None:
    """``iat`` after ``exp`` gives no lifetime: what is left of the token stands in."""
    jwt = make_jwt(exp=WALL + 50, iat=WALL + 100)
    back = from_cached(CachedToken(jwt, WALL + 3000), now_mono=0.0, now_wall=WALL)
    assert (back.expires_at, back.lifetime) == (50, 50)


class TokenServer:
    """A token endpoint for ``testing.MockTransport``: opaque tokens (or JWTs living ``jwt_ttl``) with
    ``expires_in`` written as raw JSON text."""

    def __init__(self, clock: FakeClock, expires_in: str, jwt_ttl: float | None = None) -> None:
        self.clock = clock
        self.expires_in = expires_in
        self.jwt_ttl = jwt_ttl
        self.issued: list[str] = []

    def __call__(self, request: Request) -> Response:
        if self.jwt_ttl is None:
            token = f"opaque-{len(self.issued)}"
        else:
            token = make_jwt(
                exp=self.clock.time() + self.jwt_ttl, iat=self.clock.time(), jti=len(self.issued)
            )
        self.issued.append(token)
        return raw_answer(token, self.expires_in)


async def wait_for(condition: Callable[[], bool]) -> None:
    """Let ready tasks run (no real waiting) until ``condition`` holds."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


@pytest.mark.parametrize(
    ("expires_in", "jwt_ttl", "lifetime"),
    [("3599", None, 3599), ('"3599"', None, 3599), ("NaN", None, DEFAULT_LIFETIME), ("NaN", 120.0, 120),
     ("Infinity", None, DEFAULT_LIFETIME), ('"soon"', 600.0, 600)],
    ids=["number", "string", "nan-opaque", "nan-jwt", "inf-opaque", "text-jwt"],
)  # fmt: skip
async def test_manager_renews_ahead_of_expiry(
    expires_in: str, jwt_ttl: float | None, lifetime: float
) -> None:
    """Through a TokenManager: ``"3599"`` and NaN (which used to switch renewal ahead of expiry off) both
    renew in the background in the advisory window and hand out the new token before the old one expires."""
    clock = FakeClock(autojump=True)
    server = TokenServer(clock, expires_in, jwt_ttl)
    manager = TokenManager(
        transport=MockTransport(server), token_url="https://auth.example/t", client_id="c",
        client_secret="s", settings=TokenSettings(advisory_window=30, mandatory_window=10), clock=clock,
    )  # fmt: skip
    try:
        first = await manager.get_token()
        issued_at = clock.monotonic()
        clock.advance(lifetime - 20 - (clock.monotonic() - issued_at))  # inside the advisory window
        assert await manager.get_token() == first
        await wait_for(lambda: len(server.issued) == 2)
        await wait_for(lambda: manager.fresh_token() == server.issued[1])
        assert clock.monotonic() < issued_at + lifetime
        assert await manager.get_token() == server.issued[1]
    finally:
        await manager.aclose()


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
