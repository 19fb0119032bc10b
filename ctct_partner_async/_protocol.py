"""The wire protocol without I/O: request and response values, error classification, JWT claims.

Nothing here awaits or touches a socket; the transport and the client feed bytes in and take values out.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs

from . import _errors as errors

__all__ = [
    "JSON_HEADERS",
    "AsyncTransport",
    "CallLog",
    "Request",
    "Response",
    "Sender",
    "check_timeout",
    "decode_json",
    "encode_json",
    "error_for",
    "jwt_claims",
    "next_utc_midnight",
    "parse_error_body",
    "parse_retry_after",
    "resolve_url",
]

JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_ERROR_BODY = 2000


@attrs.frozen
class Request:
    """One HTTP request, ready to send.

    ``url`` is relative to the API base (``partner/accounts``) or, for pagination links, absolute on the
    host (``/v3/partner/accounts?offset=...``); the transport resolves it. Credentials are not here: the
    client adds them when it sends. ``idempotent`` says repeating the request can do no harm;
    ``reconcilable`` says a repeat can do harm but its outcome can be reconciled (account creation: a
    409 after an ambiguous attempt is looked up, not reported).
    ``query``, ``headers`` and ``body`` are kept out of the repr (they may hold the v2 API key or a
    password). ``secrets`` are values of the body (a password) that an error answer echoing the request
    must not carry into an exception, a log, a journal or a results file: ``error_for`` scrubs them.
    """

    method: str
    url: str
    operation: str
    query: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    body: bytes | None = attrs.field(default=None, repr=False)
    headers: Mapping[str, str] = attrs.field(default={}, repr=False)
    idempotent: bool = attrs.field(
        default=attrs.Factory(lambda self: self.method in IDEMPOTENT_METHODS, takes_self=True)
    )
    reconcilable: bool = False
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)


@attrs.frozen
class Response:
    """One HTTP response: status, headers and the whole body."""

    status: int
    headers: Mapping[str, str] = attrs.field(default={}, repr=False)
    body: bytes = attrs.field(default=b"", repr=False)

    @classmethod
    def from_json(
        cls, status: int, value: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> Response:
        """A response whose body is ``value`` as JSON (empty when ``None``), for transports in tests."""
        if value is None:
            return cls(status, headers or {})
        return cls(status, {**JSON_HEADERS, **(headers or {})}, encode_json(value))


class CallLog:
    """What one call did on the wire: every failed attempt's error and the requests it sent.

    Pass one to ``send(..., log=)`` to learn it; ``requests`` counts every request that went out
    (a 401 replay included), ``attempts`` the retry policy's attempts. ``on_first_send`` is called
    just before the first request is handed to the transport (a bulk job journals ``sent`` there); if
    it raises, nothing is sent and the call fails with that error. ``waited``: the seconds the current
    attempt has waited for its turn under the client's limits (an in-flight slot, the rate limit; not a
    token) since it began (an observer, ``telemetry``, takes it and starts it again as each request
    goes out).
    """

    __slots__ = ("attempts", "errors", "on_first_send", "requests", "waited")

    def __init__(self, on_first_send: Callable[[], None] | None = None) -> None:
        self.errors: list[BaseException] = []
        self.requests = 0
        self.attempts = 0
        self.waited = 0.0
        self.on_first_send = on_first_send


class Sender(Protocol):
    """What a resource facade needs from its client: send a built request, get the successful response.

    ``timeout`` (seconds, checked by ``check_timeout``) bounds each request the call sends, in place of
    the client's ``Timeouts.total``; ``None`` leaves the client's timeouts.
    """

    def send(
        self,
        request: Request,
        *,
        log: CallLog | None = None,
        until: float | None = None,
        timeout: float | None = None,
    ) -> Awaitable[Response]: ...


def check_timeout(timeout: float | None) -> None:
    """``ValidationError`` unless ``timeout`` is ``None`` or a positive, finite number of seconds."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
        rule = "must be a positive, finite number of seconds (or None for the client's timeouts)"
        raise errors.ValidationError([errors.FieldError("timeout", rule)])


class AsyncTransport(Protocol):
    """Sends one request and reads the whole response: the seam between the pipeline and the network.

    ``headers`` and ``query`` are the credentials the pipeline adds to this attempt (never stored on the
    request). ``request.url`` is relative to the client's ``base_url`` or absolute (pagination links,
    the token endpoint). A transport never follows a redirect: a 3xx is returned as it is. It raises a
    ``TransportError`` subclass when nothing usable came back (``ConnectError`` if the request surely
    never left). The aiohttp ``Transport`` is one; ``testing.MockTransport`` is another.
    """

    async def send(
        self,
        request: Request,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
    ) -> Response: ...


def resolve_url(base: str, url: str) -> str:
    """The absolute URL of a request's ``url`` against ``base`` (which ends in ``/``). A pagination link
    keeps its query (its offset goes out with the request); ``_hooks.shown`` is the URL the hooks show."""
    if "://" in url:
        return url
    if url.startswith("/"):
        parts = urlsplit(base)
        return f"{parts.scheme}://{parts.netloc}{url}"
    return base + url


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (one shared encoder: ``json.dumps`` with options builds one a call)."""
    return _ENCODER.encode(value).encode()


def decode_json(response: Response) -> Any:
    """The JSON body of a successful response (``None`` when empty); ``MalformedResponseError`` if it
    isn't JSON."""
    body = response.body
    if not body or body.isspace():
        return None
    try:
        return json.loads(body.decode("utf-8-sig"))  # UTF-8 (a BOM allowed); a str skips json's sniffing
    except ValueError:  # UnicodeDecodeError is one
        raise errors.MalformedResponseError(f"HTTP {response.status} answer is not JSON") from None


def parse_error_body(body: bytes) -> tuple[list[str], list[str]]:
    """The ``error_key`` values and messages of an error body, whatever its shape.

    Accepts the API's array of ``{error_key, error_message}``, a single such object, an OAuth
    ``{error, error_description}`` object, an empty body and non-JSON (an HTML page from a proxy).
    """
    try:
        data = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        return [], []
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    keys: list[str] = []
    messages: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        key = item.get("error_key") or item.get("error")
        message = item.get("error_message") or item.get("error_description") or item.get("message")
        if key:
            keys.append(str(key))
        if message:
            messages.append(str(message))
    return keys, messages


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def next_utc_midnight(now: dt.datetime) -> dt.datetime:
    """The next 00:00 UTC after ``now``: when a daily quota resets."""
    today = now.astimezone(dt.UTC).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


STATUS_ERRORS: Mapping[int, type[errors.APIError]] = {
    400: errors.BadRequestError,
    401: errors.UnauthorizedError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    406: errors.UnsupportedMediaTypeError,
    409: errors.ConflictError,
    415: errors.UnsupportedMediaTypeError,
    429: errors.ThrottledError,
    503: errors.ServiceUnavailableError,
}


MIN_SECRET = 4
"""Shorter values are not scrubbed (they would blank out ordinary text; passwords are 8 or more)."""


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret, as typed and as a JSON string shows it, replaced by ``***``."""
    for secret in secrets:
        if len(secret) < MIN_SECRET:
            continue
        for form in {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}:
            if form in text:
                text = text.replace(form, "***")
    return text


def credential_secrets(headers: Mapping[str, str], query: Mapping[str, str] | None) -> tuple[str, ...]:
    """The values an attempt's credentials put on the wire (a bearer token also without its scheme)."""
    values = [*headers.values(), *(query or {}).values()]
    return tuple(values + [v.split(" ", 1)[1] for v in values if " " in v])


def error_for(
    method: str,
    url: str,
    response: Response,
    *,
    now: dt.datetime | None = None,
    secrets: Iterable[str] = (),
) -> errors.APIError:
    """The exception for an error response: one table from status to class, 429s told apart.

    ``secrets`` (the request's password, the attempt's credentials) are scrubbed from everything the
    server said, for a server that echoes the request.
    """
    now = now or dt.datetime.now(dt.UTC)
    keys, messages = parse_error_body(response.body)
    secrets = tuple(secrets)
    if secrets:  # scrubbed before anything is cut short, so no part of a secret survives a cut
        keys = [scrub(k, secrets) for k in keys]
        messages = [scrub(m, secrets) for m in messages]
        body = scrub(response.body[: MAX_ERROR_BODY * 4].decode("utf-8", "replace"), secrets)[:MAX_ERROR_BODY]
    else:
        body = response.body[:MAX_ERROR_BODY].decode("utf-8", "replace")
    fields: dict[str, Any] = {
        "method": method,
        "url": url,
        "status": response.status,
        "error_keys": keys,
        "messages": messages,
        "body": body,
        "retry_after": parse_retry_after(response.headers.get("Retry-After"), now),
    }
    if response.status == 429 and "quota_exceeded" in keys:
        return errors.QuotaExceededError(reset_at=next_utc_midnight(now), **fields)
    if 300 <= response.status < 400:
        location = urlsplit(response.headers.get("Location") or "")
        return errors.RedirectError(location_host=location.hostname, **fields)
    cls = STATUS_ERRORS.get(response.status)
    if cls is None:
        cls = errors.ServerError if response.status >= 500 else errors.APIError
    return cls(**fields)


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded without checking its signature (only to read ``exp``).

    Returns ``{}`` for anything that isn't a JWT: an opaque token is not an error.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}
