"""Instrumentation: frozen detail objects handed to ``on_request``, ``on_response`` and ``on_retry``.

None of them holds a credential: URLs are shown without their query, headers and bodies are never
included. The default ``on_retry`` hook logs through the ``ctct_partner_async`` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

__all__ = ["RequestDetails", "ResponseDetails", "RetryDetails", "log_retry", "shown"]

logger = logging.getLogger("ctct_partner_async")


@attrs.frozen
class RequestDetails:
    """A request about to be sent (``attempt`` counts from 1)."""

    operation: str
    method: str
    url: str
    attempt: int


@attrs.frozen
class ResponseDetails:
    """A response received, or a transport error (``status`` is ``None`` and ``exception`` says what)."""

    operation: str
    method: str
    url: str
    attempt: int
    status: int | None
    elapsed: float
    exception: BaseException | None = attrs.field(default=None, eq=False)


@attrs.frozen
class RetryDetails:
    """A failed attempt that will be retried after ``wait`` seconds.

    ``error`` is the failure as text (class and message, never a secret); ``exception`` is the
    exception itself, for hooks that branch on its type or read its ``status`` or ``retry_after``.
    """

    operation: str
    method: str
    url: str
    attempt: int
    wait: float
    error: str
    exception: BaseException | None = attrs.field(default=None, eq=False)


def shown(url: str) -> str:
    """``url`` as the hooks show it: without its query (a next page's link carries its offset)."""
    return url.partition("?")[0]


RequestHook = Callable[[RequestDetails], None]
ResponseHook = Callable[[ResponseDetails], None]
RetryHook = Callable[[RetryDetails], None]


def log_retry(details: RetryDetails) -> None:
    """The default ``on_retry`` hook: one INFO line per retry on ``ctct_partner_async``, without secrets;
    its fields in ``extra``: ``operation``, ``method``, ``url`` (no query), ``attempt``, ``wait`` and
    ``error_type``."""
    error_type = type(details.exception).__name__ if details.exception is not None else None
    logger.info(
        "retrying %s %s (attempt %d failed: %s) in %.2fs",
        details.method,
        details.url,
        details.attempt,
        details.error,
        details.wait,
        extra={"operation": details.operation, "method": details.method, "url": details.url,
               "attempt": details.attempt, "wait": details.wait, "error_type": error_type},
    )  # fmt: skip
