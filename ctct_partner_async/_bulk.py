"""Bulk jobs: create accounts, change plans and cancel accounts from a stream of rows.

``client.bulk.create_accounts(rows)`` (and ``change_plans``, ``cancel_accounts``) takes any iterable or
async iterable of rows (models, mappings such as CSV records, or ``BadRow``), keeps at most
``concurrency`` rows in flight under the client's rate limiter, and yields one ``Outcome`` per row as it
completes. Memory stays flat in the number of rows. One row's failure never stops the job: it becomes a
``failed`` or ``invalid`` outcome, except a spent daily quota or refused credentials: then no later row
is sent, and each is reported failed with that error. Bugs and cancellation still propagate.

With a ``Journal`` the job survives a crash: run it again with the same journal and finished rows are
skipped, rows that were in flight are reconciled (never blindly resent) and the rest are done.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Collection, Iterable
from typing import Any, Generic, TypeVar

import attrs

from ._accounts import Accounts
from ._errors import (
    AuthenticationError,
    CtctError,
    FieldError,
    QuotaExceededError,
    UnconfirmedCreateError,
    ValidationError,
)
from ._models import Cancellation, CreateResult, CreateStatus, NewAccount, PlanChange, PlanType
from ._rows import BadRow, cancellation_from_row, new_account_from_row, plan_change_from_row
from ._validation import check_new_account, check_text
from .journal import Entry, Journal, NullJournal

__all__ = ["Bulk", "Outcome", "OutcomeState"]

P = TypeVar("P")
Rows = Iterable[Any] | AsyncIterable[Any]


class OutcomeState(enum.StrEnum):
    """How a row ended."""

    CREATED = "created"
    RECONCILED = "reconciled"
    PENDING = "pending"
    UPDATED = "updated"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    FAILED = "failed"
    INVALID = "invalid"


STOPS_THE_JOB = (QuotaExceededError, AuthenticationError)
"""Errors no later row can escape: once one is met, the remaining rows are reported failed, not sent."""

SUCCESS = frozenset(
    {
        OutcomeState.CREATED,
        OutcomeState.RECONCILED,
        OutcomeState.UPDATED,
        OutcomeState.CANCELED,
        OutcomeState.SKIPPED,
    }
)


@attrs.frozen(kw_only=True)
class Outcome:
    """One row's result. ``index`` counts input rows from 1; ``key`` is the login name or account id."""

    index: int
    key: str
    state: OutcomeState
    encoded_account_id: str | None = None
    error: str | None = None
    attempts: int = 0
    deferred: bool = False
    exception: BaseException | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def ok(self) -> bool:
        """Whether the row's work is done (``skipped`` rows finished in an earlier run)."""
        return self.state in SUCCESS


@attrs.frozen
class _Parsed(Generic[P]):
    key: str
    payload: P


class _Job(Generic[P]):
    """One kind of bulk job: how to read a row and how to do it."""

    name: str
    finished_state: OutcomeState

    def parse(self, item: Any) -> _Parsed[P]:
        raise NotImplementedError

    async def run(self, payload: P, previously_attempted: bool) -> tuple[OutcomeState, str | None, Any]:
        raise NotImplementedError


def _fallback_key(item: Any, index: int, field: str) -> str:
    if isinstance(item, dict):
        value = item.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"#row-{index}"


class Bulk:
    """Bulk jobs over one client (``client.bulk``)."""

    def __init__(self, accounts: Accounts, *, concurrency: int = 64) -> None:
        self._accounts = accounts
        self._concurrency = concurrency

    def create_accounts(
        self,
        rows: Rows,
        *,
        concurrency: int | None = None,
        journal: Journal | None = None,
        pending_wait: float = 60.0,
    ) -> AsyncGenerator[Outcome, None]:
        """Create an account per row (``NewAccount`` or a mapping of its fields), never twice.

        Rows answered with a 503 are stored by the API and created later: they are resolved from the
        account list at the end of the job, waiting up to ``pending_wait`` seconds, and reported then.
        """
        return _Runner(_CreateJob(self._accounts, pending_wait), journal).stream(
            rows, self._concurrency if concurrency is None else concurrency
        )

    def change_plans(
        self,
        rows: Rows,
        *,
        concurrency: int | None = None,
        journal: Journal | None = None,
        allowed_plan_types: Collection[str] = PlanType.KNOWN,
    ) -> AsyncGenerator[Outcome, None]:
        """Change the plan per row: ``encoded_account_id``, ``plan_type``, ``billing_day_of_month``."""
        job = _PlanJob(self._accounts, frozenset(p.upper() for p in allowed_plan_types))
        return _Runner(job, journal).stream(rows, self._concurrency if concurrency is None else concurrency)

    def cancel_accounts(
        self, rows: Rows, *, concurrency: int | None = None, journal: Journal | None = None
    ) -> AsyncGenerator[Outcome, None]:
        """Cancel the account per row: ``encoded_account_id``, ``reason_id``, ``effective_date``."""
        return _Runner(_CancelJob(self._accounts), journal).stream(
            rows, self._concurrency if concurrency is None else concurrency
        )


class _CreateJob(_Job[NewAccount]):
    name = "provision"
    finished_state = OutcomeState.CREATED

    def __init__(self, accounts: Accounts, pending_wait: float) -> None:
        self.accounts = accounts
        self.pending_wait = pending_wait

    def parse(self, item: Any) -> _Parsed[NewAccount]:
        if isinstance(item, NewAccount):
            check_new_account(item)
            check_text(attrs.asdict(item))  # a lone surrogate is this row's problem, not the job's
            return _Parsed(item.login_name, item)
        account = new_account_from_row(item)
        return _Parsed(account.login_name, account)

    async def run(
        self, payload: NewAccount, previously_attempted: bool
    ) -> tuple[OutcomeState, str | None, Any]:
        result = await self.accounts.create(payload, previously_attempted=previously_attempted)
        return OutcomeState(result.status.value), result.encoded_account_id, result


class _PlanJob(_Job[tuple[str, PlanChange]]):
    name = "plans"
    finished_state = OutcomeState.UPDATED

    def __init__(self, accounts: Accounts, allowed: frozenset[str]) -> None:
        self.accounts = accounts
        self.allowed = allowed

    def parse(self, item: Any) -> _Parsed[tuple[str, PlanChange]]:
        account_id, change = plan_change_from_row(item, allowed_plan_types=self.allowed)
        return _Parsed(account_id, (account_id, change))

    async def run(
        self, payload: tuple[str, PlanChange], previously_attempted: bool
    ) -> tuple[OutcomeState, str | None, Any]:
        account_id, change = payload
        plan = await self.accounts.update_plan(
            account_id,
            plan_type=change.plan_type,
            billing_day_of_month=change.billing_day_of_month,
            plan_group_id=change.plan_group_id,
        )
        return OutcomeState.UPDATED, account_id, plan


class _CancelJob(_Job[tuple[str, Cancellation]]):
    name = "cancel"
    finished_state = OutcomeState.CANCELED

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    def parse(self, item: Any) -> _Parsed[tuple[str, Cancellation]]:
        account_id, cancellation = cancellation_from_row(item)
        return _Parsed(account_id, (account_id, cancellation))

    async def run(
        self, payload: tuple[str, Cancellation], previously_attempted: bool
    ) -> tuple[OutcomeState, str | None, Any]:
        account_id, cancellation = payload
        result = await self.accounts.cancel(
            account_id, reason=cancellation.reason_id, effective_date=cancellation.effective_date
        )
        return OutcomeState.CANCELED, account_id, result


class _Runner(Generic[P]):
    """Streams rows through a job with bounded concurrency, a journal and duplicate detection."""

    def __init__(self, job: _Job[P], journal: Journal | None) -> None:
        self.job = job
        self.journal: Journal | NullJournal = journal or NullJournal()
        self.seen: dict[str, int] = {}
        self.pending: list[tuple[int, CreateResult]] = []
        self.stopped: CtctError | None = None

    async def stream(self, rows: Rows, concurrency: int) -> AsyncGenerator[Outcome, None]:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError([FieldError("concurrency", "must be a whole number of at least 1")])
        in_flight: set[asyncio.Task[Outcome | None]] = set()
        numbered = _numbered(rows)
        exhausted = False
        try:
            while True:
                while not exhausted and len(in_flight) < concurrency:
                    try:
                        index, item = await anext(numbered)
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    in_flight.add(asyncio.create_task(self._one(index, item)))
                if not in_flight:
                    break
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    outcome = task.result()
                    if outcome is not None:
                        yield outcome
            async for outcome in self._resolve_pending():
                yield outcome
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _one(self, index: int, item: Any) -> Outcome | None:
        """The row's outcome, or ``None`` for a pending create held back until it is resolved."""
        try:
            parsed = self._parse(index, item)
        except ValidationError as exc:
            key = _fallback_key(
                item, index, "login_name" if self.job.name == "provision" else "encoded_account_id"
            )
            return self._invalid(index, key, str(exc), exc)
        entry = self.journal.get(parsed.key)
        if entry is not None and entry.finished:
            return Outcome(
                index=index,
                key=parsed.key,
                state=OutcomeState.SKIPPED,
                encoded_account_id=entry.account_id,
                attempts=entry.attempts,
            )
        if self.stopped is not None:
            error = f"not sent: the job stopped on an earlier row ({self.stopped})"
            return Outcome(
                index=index, key=parsed.key, state=OutcomeState.FAILED, error=error, exception=self.stopped
            )
        return await self._attempt(index, parsed, entry)

    def _parse(self, index: int, item: Any) -> _Parsed[P]:
        if isinstance(item, BadRow):
            raise ValidationError([_row_error(item.reason)])
        parsed = self.job.parse(item)
        first = self.seen.setdefault(parsed.key.lower(), index)
        if first != index:
            raise ValidationError([_duplicate(parsed.key, first)])
        return parsed

    def _invalid(self, index: int, key: str, message: str, exc: BaseException) -> Outcome:
        # Not journaled: nothing was sent, the next run checks the row again, and an invalid duplicate
        # must not overwrite the journal entry of the good row it duplicates.
        return Outcome(index=index, key=key, state=OutcomeState.INVALID, error=message, exception=exc)

    async def _attempt(self, index: int, parsed: _Parsed[P], entry: Entry | None) -> Outcome | None:
        previously = entry is not None and entry.unsettled
        attempts = (entry.attempts if entry else 0) + 1
        self.journal.record(parsed.key, index, "in_flight", attempt=True)
        try:
            state, account_id, result = await self.job.run(parsed.payload, previously)
        except ValidationError as exc:
            return self._invalid(index, parsed.key, str(exc), exc)
        except CtctError as exc:
            if isinstance(exc, STOPS_THE_JOB) and self.stopped is None:
                self.stopped = exc
            # An unconfirmed create may exist: the journal keeps it unsettled so the next run reconciles it.
            unsettled = isinstance(exc, UnconfirmedCreateError)
            self.journal.record(parsed.key, index, "in_flight" if unsettled else "failed", error=str(exc))
            return Outcome(
                index=index,
                key=parsed.key,
                state=OutcomeState.FAILED,
                error=str(exc),
                attempts=attempts,
                exception=exc,
            )
        self.journal.record(parsed.key, index, state, account_id=account_id)
        outcome = Outcome(
            index=index, key=parsed.key, state=state, encoded_account_id=account_id, attempts=attempts
        )
        if state is OutcomeState.PENDING:
            self.pending.append((index, result))
            return None
        return outcome

    async def _resolve_pending(self) -> AsyncIterator[Outcome]:
        """Report the held-back pending creates once the list shows them (or the wait runs out).

        If the list can't be read (quota spent, credentials refused), each row is reported ``pending``
        with that error: the journal keeps it pending, so a rerun reconciles it.
        """
        if not self.pending:
            return
        assert isinstance(self.job, _CreateJob)
        accounts, wait = self.job.accounts, self.job.pending_wait
        resolutions = await asyncio.gather(
            *(accounts.resolve(r, wait=wait) for _, r in self.pending), return_exceptions=True
        )
        for (index, pending), resolved in zip(self.pending, resolutions, strict=True):
            yield self._resolved(index, pending, resolved)
        self.pending.clear()

    def _resolved(self, index: int, pending: CreateResult, resolved: CreateResult | BaseException) -> Outcome:
        if isinstance(resolved, CtctError):
            error = f"stored by the API (503) but not yet confirmed: {resolved}"
            return Outcome(
                index=index,
                key=pending.login_name,
                state=OutcomeState.PENDING,
                error=error,
                attempts=pending.attempts,
                deferred=True,
                exception=resolved,
            )
        if isinstance(resolved, BaseException):
            raise resolved
        state = OutcomeState.CREATED if resolved.status is CreateStatus.CREATED else OutcomeState.PENDING
        self.journal.record(resolved.login_name, index, state, account_id=resolved.encoded_account_id)
        return Outcome(
            index=index,
            key=resolved.login_name,
            state=state,
            encoded_account_id=resolved.encoded_account_id,
            attempts=resolved.attempts,
            deferred=True,
        )


def _row_error(reason: str) -> FieldError:
    return FieldError("row", reason)


def _duplicate(key: str, first: int) -> FieldError:
    return FieldError("key", f"duplicate of row {first} ({key}) in this input")


async def _numbered(rows: Rows) -> AsyncIterator[tuple[int, Any]]:
    index = 0
    if isinstance(rows, AsyncIterable):
        async for item in rows:
            index += 1
            yield index, item
    else:
        for item in rows:
            index += 1
            yield index, item
