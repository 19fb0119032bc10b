"""Error responses: one class per status, every body shape, 429s told apart (the 401 replay and errors
raised by a client: test_pipeline)."""

from __future__ import annotations

import datetime as dt

import pytest

from ctct_partner_async import NewAccount, PartnerClient, Request
from ctct_partner_async import _errors as errors
from ctct_partner_async._protocol import Response, error_for, parse_error_body, parse_retry_after
from ctct_partner_async.testing import MockTransport

STATUS_CLASSES = [
    (301, errors.RedirectError),
    (302, errors.RedirectError),
    (307, errors.RedirectError),
    (308, errors.RedirectError),
    (400, errors.BadRequestError),
    (401, errors.UnauthorizedError),
    (403, errors.PermissionDeniedError),
    (404, errors.NotFoundError),
    (405, errors.APIError),
    (406, errors.UnsupportedMediaTypeError),
    (409, errors.ConflictError),
    (415, errors.UnsupportedMediaTypeError),
    (429, errors.ThrottledError),
    (500, errors.ServerError),
    (502, errors.ServerError),
    (503, errors.ServiceUnavailableError),
    (504, errors.ServerError),
]


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
def test_status_table(status: int, cls: type[errors.APIError]) -> None:
    """Each status maps to its class, which carries method, URL, status, keys and body."""
    body = b'[{"error_key": "k", "error_message": "m"}]'
    exc = error_for("GET", "https://api.example/v3/x", Response(status, {}, body))
    assert type(exc) is cls
    assert (exc.method, exc.url, exc.status, exc.error_keys, exc.messages) == (
        "GET", "https://api.example/v3/x", status, ("k",), ("m",))  # fmt: skip
    assert exc.body == body.decode()
    assert str(exc).startswith(f"GET https://api.example/v3/x -> {status} (k: m)")
    assert isinstance(exc, errors.CtctError)


def test_unauthorized_is_an_authentication_error() -> None:
    """A 401 can be caught as AuthenticationError."""
    assert issubclass(errors.UnauthorizedError, errors.AuthenticationError)


@pytest.mark.parametrize(
    ("body", "keys", "messages"),
    [
        (
            b'[{"error_key": "a", "error_message": "A"}, {"error_key": "b", "error_message": "B"}]',
            ["a", "b"],
            ["A", "B"],
        ),
        (
            b'{"error_key": "unauthorized", "error_message": "Unauthorized"}',
            ["unauthorized"],
            ["Unauthorized"],
        ),
        (
            b'{"error": "invalid_client", "error_description": "bad secret"}',
            ["invalid_client"],
            ["bad secret"],
        ),
        (b"", [], []),
        (b"   ", [], []),
        (b"<html><body>502 Bad Gateway</body></html>", [], []),
        (b"\xff\xfe not utf8", [], []),
        (b'"just a string"', [], []),
        (b"[1, null, {}]", [], []),
    ],
    ids=["array", "object", "oauth", "empty", "blank", "html", "binary", "json-string", "junk-array"],
)
def test_error_body_shapes(body: bytes, keys: list[str], messages: list[str]) -> None:
    """The error parser accepts an array, an object, an OAuth object, empty and non-JSON bodies."""
    assert parse_error_body(body) == (keys, messages)
    exc = error_for("POST", "u", Response(500, {}, body))
    assert exc.error_keys == tuple(keys)


def test_throttled_and_quota_exceeded_told_apart() -> None:
    """429 throttled is ThrottledError; 429 quota_exceeded is QuotaExceededError resetting at 00:00 UTC."""
    now = dt.datetime(2026, 11, 23, 22, 30, tzinfo=dt.UTC)
    throttled = error_for("GET", "u", Response(429, {}, b'{"error_key": "throttled"}'), now=now)
    quota = error_for("GET", "u", Response(429, {}, b'{"error_key": "quota_exceeded"}'), now=now)
    assert type(throttled) is errors.ThrottledError
    assert isinstance(quota, errors.QuotaExceededError)
    assert quota.reset_at == dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    assert "2026-11-24T00:00:00+00:00" in str(quota)


def test_retry_after_seconds_and_date() -> None:
    """Retry-After is read as seconds or as an HTTP date, and ignored when unreadable."""
    now = dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("Mon, 23 Nov 2026 12:00:05 GMT", now) == 5.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    exc = error_for("GET", "u", Response(429, {"Retry-After": "2"}, b'{"error_key": "throttled"}'), now=now)
    assert exc.retry_after == 2.0


def test_redirect_names_only_the_location_host() -> None:
    """A RedirectError keeps the Location's host, never its path or query (which may carry anything)."""
    location = {"Location": "https://other.example/v3/partner/accounts?api_key=leak"}
    exc = error_for("POST", "https://api.example/v3/partner/accounts", Response(307, location, b""))
    assert isinstance(exc, errors.RedirectError)
    assert exc.location_host == "other.example"
    assert "leak" not in str(exc) and "other.example" in str(exc)
    bare = error_for("GET", "u", Response(302, {}, b""))
    assert isinstance(bare, errors.RedirectError) and bare.location_host is None
    assert "no Location host" in str(bare)


def test_server_text_in_a_message_is_cut_short_and_escaped() -> None:
    """Each server key or message is at most 200 characters in the error's message and all of them about
    1,000; control characters are escaped (no forged log line); the attributes keep the text whole."""
    items = [{"error_key": f"key.{i}", "error_message": "x" * 5000} for i in range(500)]
    exc = error_for("POST", "https://api.example/v3/partner/accounts", Response.from_json(400, items))
    text = str(exc)
    assert len(text) < 1200
    detail = text.split(" (", 1)[1]
    first = detail.split("; ")[0]
    assert first == "key.0: " + "x" * 199 + "\u2026"
    assert text.endswith("more)") and "\u2026 and " in text
    assert len(exc.messages) == 500 and exc.messages[0] == "x" * 5000
    hostile = error_for(
        "GET", "u", Response.from_json(400, [{"error_key": "k\x1b[2J", "error_message": "no\nFAKE"}])
    )
    assert str(hostile) == "GET u -> 400 (k\\x1b[2J: no\\x0aFAKE)"
    assert hostile.error_keys == ("k\x1b[2J",)


async def test_no_request_header_or_body_reaches_an_error() -> None:
    """A refused create: the API key, the JWT and the account's password are nowhere in the error (its
    message, repr, args or attributes)."""
    seen: list[Request] = []

    def refuse(request: Request) -> Response:
        seen.append(request)
        return Response.from_json(400, [{"error_key": "bad", "error_message": "nope " * 100}])

    async def token() -> str:
        return "jwt-secret-token"

    account = NewAccount(contact_email="a@example.com", login_name="hank_smith", password="pw-secret-88",
                         country_code="GB")  # fmt: skip
    async with PartnerClient(
        api_key="key-secret-1", token_provider=token, transport=MockTransport(refuse), rate_limit=None
    ) as client:
        with pytest.raises(errors.BadRequestError) as info:
            await client.accounts.create(account)
    assert seen and b"pw-secret-88" in (seen[0].body or b"")  # it was sent, so the check means something
    exc = info.value
    everything = " ".join([str(exc), repr(exc), *map(str, exc.args), *map(str, vars(exc).values())])
    for secret in ("jwt-secret-token", "key-secret-1", "pw-secret-88"):
        assert secret not in everything
    assert len(str(exc)) < 400
