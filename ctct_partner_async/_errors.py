"""The exceptions this SDK raises.

Every exception derives from :class:`CtctError`::

    CtctError
    ├── ValidationError            bad input, raised before anything is sent (also a ValueError)
    ├── AuthenticationError        no usable JWT: the token endpoint gave none, or the API said 401 twice
    │   ├── CredentialsRefusedError  the token endpoint refused the client credentials: never retried
    │   └── TokenUnavailableError    the token endpoint failed (down, 5xx, 429) for as long as the call waited
    ├── RateLimitError             the client-side limiter was asked to fail fast and had no capacity
    ├── ClientClosedError          the client was closed (before or during the call); also a RuntimeError
    ├── WrongEventLoopError        the client was used from an event loop other than its own; a RuntimeError
    ├── MalformedResponseError     a success status with a body that isn't the documented JSON
    ├── UnconfirmedCreateError     an account creation that may have happened but can't be confirmed yet
    ├── NotificationError          a webhook notification refused: unsigned, forged, stale or malformed
    ├── TransportError             nothing usable came back over the wire
    │   ├── ConnectError           the request never left: always safe to retry
    │   └── ResponseError          the request may have been received: retry only what is safe
    │       └── RequestTimeoutError
    └── APIError                   the API answered with an error status
        ├── RedirectError              3xx: never followed (credentials never go to another URL)
        ├── BadRequestError            400
        ├── UnauthorizedError          401 (also an AuthenticationError)
        ├── PermissionDeniedError      403
        ├── NotFoundError              404
        ├── ConflictError              409 (create: the login name is taken)
        ├── UnsupportedMediaTypeError  415 (and 406)
        ├── ThrottledError             429 ``throttled``: the per-second limit; retried
        │   └── QuotaExceededError     429 ``quota_exceeded``: the daily limit; never retried
        └── ServerError                5xx
            └── ServiceUnavailableError  503 (on create: "stored, processed later")

An :class:`APIError` carries the method, URL, status, the server's ``error_key`` values and messages, and
the raw body. None of them ever carries a secret: the request headers (JWT, API key, basic auth) and the
request body are never stored on an error, and the URL has its ``api_key`` query parameter redacted.

Its message (``str(error)``, what logs, the journal and a results file keep) quotes the server's keys and
messages cut short: each to 200 characters, all of them to 1,000, with control characters escaped, so a
server that echoes a huge or hostile body can't bloat or forge a log line. The attributes keep them whole.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Sequence

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "ConnectError",
    "CredentialsRefusedError",
    "CtctError",
    "FieldError",
    "MalformedResponseError",
    "NotFoundError",
    "NotificationError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RedirectError",
    "RequestTimeoutError",
    "ResponseError",
    "ServerError",
    "ServiceUnavailableError",
    "ThrottledError",
    "TokenUnavailableError",
    "TransportError",
    "UnauthorizedError",
    "UnconfirmedCreateError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "WrongEventLoopError",
]


MAX_SERVER_TEXT = 200  # one error_key or message of the server, in an error's message
MAX_SERVER_DETAIL = 1000  # all of them together
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _clip(text: str, limit: int) -> str:
    """``text`` with control characters escaped, cut to ``limit`` characters with an ellipsis."""
    text = _CONTROL.sub(_escape, text[: limit + 1])  # one character in gives one or more out
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _server_detail(keys: Sequence[str], messages: Sequence[str]) -> str:
    """``key: message; ...`` for an error's message, each part and the whole cut short."""
    parts: list[str] = []
    used = 0
    pairs = list(itertools.zip_longest(keys, messages, fillvalue=""))
    for i, (key, message) in enumerate(pairs):
        key, message = _clip(key, MAX_SERVER_TEXT), _clip(message, MAX_SERVER_TEXT)
        part = f"{key}: {message}" if key and message else key or message
        if used + len(part) > MAX_SERVER_DETAIL:
            parts.append(f"\u2026 and {len(pairs) - i} more")
            break
        parts.append(part)
        used += len(part) + 2
    return "; ".join(parts)


class CtctError(Exception):
    """Base class of every exception the SDK raises on purpose."""


class FieldError:
    """One broken rule: the field (dotted path) and the rule it breaks."""

    __slots__ = ("field", "rule")

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule

    def __repr__(self) -> str:
        return f"FieldError({self.field!r}, {self.rule!r})"

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldError) and (self.field, self.rule) == (other.field, other.rule)

    def __hash__(self) -> int:
        return hash((self.field, self.rule))


class ValidationError(CtctError, ValueError):
    """The input breaks a documented rule; nothing was sent.

    ``errors`` lists every broken rule; ``field`` and ``rule`` are the first one's. Values are never
    quoted, so a password can't leak through the message.
    """

    def __init__(self, errors: Sequence[FieldError]) -> None:
        if not errors:
            raise ValueError("ValidationError needs at least one FieldError")
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    @property
    def field(self) -> str:
        return self.errors[0].field

    @property
    def rule(self) -> str:
        return self.errors[0].rule


class AuthenticationError(CtctError):
    """No valid JWT could be had, or the API refused a fresh one."""


class CredentialsRefusedError(AuthenticationError):
    """The token endpoint said the client credentials are wrong (400/401/403, ``invalid_client``, ...).

    Never retried: this, a 401 from the API to a fresh token and a spent quota are what stop a bulk job.
    """


class TokenUnavailableError(AuthenticationError):
    """The token endpoint could not be reached or kept failing (connect error, timeout, 5xx, 429
    ``throttled``) for as long as the call could wait, its retries included. Nothing was sent to the API.

    Transient: the same call later can succeed. A bulk job waits for the token and goes on.
    """


class RateLimitError(CtctError):
    """The client-side rate limiter is in fail-fast mode and had no capacity for this call."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClientClosedError(CtctError, RuntimeError):
    """The client was closed: before this call, or while it waited for shared work (a token renewal,
    an account-list sweep). Create a new client."""


class WrongEventLoopError(CtctError, RuntimeError):
    """The client was used from an event loop other than the one it first ran in; nothing was sent.

    A client's connection pool, timers and background tasks belong to that loop. Create one client per
    event loop: inside the coroutine given to ``asyncio.run``, for instance, not before it.
    """


class MalformedResponseError(ValueError, CtctError):
    """The API answered with a success status but a body that isn't the documented JSON."""


class UnconfirmedCreateError(CtctError):
    """An account creation whose outcome is unknown.

    An attempt failed in a way that may have created the account (a dropped connection, a timeout, a
    5xx, or a 2xx with an unreadable body), the retries ran out, and the account could not be found in
    the account list. Create it again with ``previously_attempted=True`` (a bulk job with a journal does
    this on its next run): a 409 is then reconciled, never reported.
    """


class NotificationError(CtctError):
    """A webhook notification that is refused, with the HTTP status a receiver should answer.

    ``reason`` says why, as a short code: ``missing_signature``, ``bad_signature``, ``stale``,
    ``future`` (401); ``malformed`` (400); ``wrong_api_key`` (403); ``keys_unavailable``, ``busy``
    (503: the sender retries). The message never quotes the body, a signature, a key or a secret.
    """

    STATUS = {"missing_signature": 401, "bad_signature": 401, "stale": 401, "future": 401, "malformed": 400,
              "wrong_api_key": 403, "keys_unavailable": 503, "busy": 503}  # fmt: skip

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = self.STATUS.get(reason, 400)


class TransportError(CtctError):
    """Nothing usable came back: the connection failed, dropped or timed out."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(f"{message} ({method} {url})")
        self.method = method
        self.url = url


class ConnectError(TransportError):
    """The connection could not be made, so the request was never sent."""


class ResponseError(TransportError):
    """The request went out but no complete response came back: it may have taken effect."""


class RequestTimeoutError(ResponseError):
    """No complete response within the configured timeout: the request may have taken effect."""


class APIError(CtctError):
    """The API answered with an error status."""

    def __init__(
        self,
        *,
        method: str,
        url: str,
        status: int,
        error_keys: Sequence[str] = (),
        messages: Sequence[str] = (),
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.error_keys = tuple(error_keys)
        self.messages = tuple(messages)
        self.body = body
        self.retry_after = retry_after
        detail = _server_detail(self.error_keys, self.messages)
        super().__init__(f"{method} {url} -> {status}" + (f" ({detail})" if detail else ""))

    @property
    def error_key(self) -> str | None:
        """The first ``error_key`` the server sent, if any."""
        return self.error_keys[0] if self.error_keys else None


class RedirectError(APIError):
    """3xx: the server sent the request elsewhere. Never followed and never retried: following it would
    send the API key, the JWT and the body (an account password) to another URL.

    ``location_host`` is the host the ``Location`` header names (``None`` when it names none).
    """

    def __init__(self, *, location_host: str | None = None, **kwargs: object) -> None:
        self.location_host = location_host
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def __str__(self) -> str:
        where = f"to {self.location_host}" if self.location_host else "with no Location host"
        return f"{super().__str__()}; redirect {where} not followed"


class BadRequestError(APIError):
    """400: the server rejected the input."""


class UnauthorizedError(APIError, AuthenticationError):
    """401: the JWT or API key was refused."""


class PermissionDeniedError(APIError):
    """403: missing scope or privilege, or the application is deactivated."""


class NotFoundError(APIError):
    """404: unknown account, partner or topic."""


class ConflictError(APIError):
    """409: the resource conflicts with an existing one (create: the login name is taken)."""


class UnsupportedMediaTypeError(APIError):
    """415 or 406: the content type or accept header was refused."""


class ThrottledError(APIError):
    """429 ``throttled``: over the per-second limit of the API key. Clears within a second."""


class QuotaExceededError(ThrottledError):
    """429 ``quota_exceeded``: the API key's daily quota is spent. ``reset_at`` is the next 00:00 UTC."""

    def __init__(self, *, reset_at: dt.datetime, **kwargs: object) -> None:
        self.reset_at = reset_at
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{super().__str__()}; quota resets at {self.reset_at.isoformat()}"


class ServerError(APIError):
    """5xx: the server failed."""


class ServiceUnavailableError(ServerError):
    """503. On account creation it means the request was stored and will be processed later."""
