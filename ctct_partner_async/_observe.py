"""The telemetry seam: what the pipeline, the safe create, the account-list reconciler and the bulk runner
tell an ``Observer`` (``telemetry.instrument`` installs the OpenTelemetry one).

Nothing here imports OpenTelemetry, and nothing calls an observer unless one is installed: every seam
is one ``is None`` test on the paths that are taken anyway. An observer hears only what carries no
secret: operation names, URL templates (``TEMPLATES``), statuses, error classes, waits and counts;
never a URL with its ids or query, a header, a body or an exception's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Protocol

from ._errors import ThrottledError
from ._hooks import RetryDetails
from ._protocol import Request

__all__ = ["Exchange", "Observer", "Operation", "Sweep"]


class Operation(Protocol):
    """One operation in progress (``ctct.<operation>``)."""

    def outcome(self, value: str) -> None:
        """How it ended, when that is more than success (a create: ``created``, ``reconciled``, ...)."""
        ...


class Exchange(Protocol):
    """One request on the wire in progress."""

    headers: Mapping[str, str]
    """The headers to send: the credentials given to ``Observer.exchange``, plus any trace context."""

    def end(self, status: int | None, error: BaseException | None = None) -> None:
        """The answer's status, or the error that left no answer (``status`` ``None``)."""
        ...


class Sweep(Protocol):
    """One read of the account list: made when it is needed, entered (``with``) by the task that reads
    it, so its requests are inside it, and ended once, when that task is done (or never ran)."""

    def __enter__(self) -> object: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> object: ...

    def end(self, pages: int, problem: str | None, error: BaseException | None) -> None:
        """How many pages it read; why it stopped before the end, or what failed it."""
        ...


class Observer(Protocol):
    """Hears what a client does. Every method is called on the client's event loop, in the task doing
    the work (so the observer's current context is the caller's)."""

    def operation(self, name: str) -> AbstractContextManager[Operation]:
        """Around one operation: a ``send`` of the pipeline, or a whole safe create (its attempts and
        looks at the list inside). A send inside an operation already open in this context is part of
        it, not an operation of its own."""
        ...

    def exchange(self, request: Request, resend: int, waited: float, headers: Mapping[str, str]) -> Exchange:
        """A request is handed to the transport now: ``resend`` requests of this call went before it,
        after ``waited`` seconds for its turn under the client's limits (token waits not included)."""
        ...

    def retried(self, details: RetryDetails) -> None:
        """A failed attempt will be retried (the ``on_retry`` details)."""
        ...

    def throttled(self, request: Request, error: ThrottledError) -> None:
        """A 429: ``throttled``, or ``quota_exceeded`` (``QuotaExceededError``)."""
        ...

    def sweep(self, full: bool) -> Sweep:
        """One read of the account list is needed now: the whole list (``full``) or its tail."""
        ...

    def joined(self, sweep: Sweep) -> None:
        """A look at the list (a create's, ``resolve``'s, ``refresh``'s) waits on ``sweep``, its own or
        one that another look started."""
        ...

    def row(self, job: str, state: str) -> None:
        """A bulk job's row ended in ``state`` (``provision``, ``plans`` or ``cancel``)."""
        ...
