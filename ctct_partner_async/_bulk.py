"""Bulk jobs: create accounts, change plans and cancel accounts from a stream of rows.

``client.bulk.create_accounts(rows)`` (and ``change_plans``, ``cancel_accounts``) takes any iterable or
async iterable of rows (models, mappings such as CSV records, or ``BadRow``), keeps at most
``concurrency`` rows in flight under the client's rate limiter, and yields one ``Outcome`` per row as it
completes. Memory stays flat in the number of rows. One row's failure never stops the job: it becomes a
``failed``, ``unsettled`` or ``invalid`` outcome (an unexpected exception while doing a row too, with
its type), except a spent daily quota or refused credentials (the token endpoint's, or the API's 401 to a
fresh token): then no later row is sent, and each is reported failed with that error. An unreachable
token endpoint fails no row: the job waits for it and goes on, for up to ``max_pause`` seconds (then it
stops the same way). Bugs in the runner, a ``JournalError`` and cancellation propagate.

With a ``Journal`` the job survives a crash and reruns: see ``journal`` for its states and what a rerun
does with each. Error messages kept in outcomes (and so in the journal and results files) have the
row's password scrubbed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Collection, Iterable
from typing import Any, Generic, TypeVar

import attrs

from ._accounts import Accounts
from ._errors import (
    ConflictError,
    CredentialsRefusedError,
    CtctError,
    FieldError,
    QuotaExceededError,
    TokenUnavailableError,
    UnauthorizedError,
    UnconfirmedCreateError,
    ValidationError,
    WrongEventLoopError,
)
from ._models import Cancellation, CreateResult, CreateStatus, NewAccount, PlanChange, PlanType
from ._observe import Observer
from ._protocol import scrub
from ._provisioning import check_seconds
from ._rows import BadRow, cancellation_from_row, new_account_from_row, plan_change_from_row
from ._validation import check_new_account
from .journal import Entry, Journal, JournalError, NullJournal

__all__ = ["Bulk", "Outcome", "OutcomeState"]

logger = logging.getLogger("ctct_partner_async.bulk")

P = TypeVar("P")
Rows = Iterable[Any] | AsyncIterable[Any]


class OutcomeState(enum.StrEnum):
    """How a row ended."""

    CREATED = "created"
    RECONCILED = "reconciled"
    ADOPTED = "adopted"
    PENDING = "pending"
    UNSETTLED = "unsettled"
    UPDATED = "updated"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    FAILED = "failed"
    INVALID = "invalid"


class _PausedTooLongError(TokenUnavailableError):
    """A job stopped because the token endpoint gave no token for ``max_pause`` seconds."""


STOPS_THE_JOB = (
    QuotaExceededError, CredentialsRefusedError, UnauthorizedError, WrongEventLoopError, _PausedTooLongError
)  # fmt: skip
"""Errors no later row can escape (every later request meets them, the account list's too): a spent
quota, client credentials the token endpoint refuses, a fresh token the API refuses, a client used from
another event loop, a token outage longer than ``max_pause``. Once one is met, the remaining rows are
reported failed, not sent."""
PAUSES_THE_JOB = TokenUnavailableError
"""The token endpoint failed for as long as a call could wait: the row is done again (as previously
attempted once its request may have been sent), so the job waits for the endpoint, then goes on."""
PAUSE = 1.0
"""Seconds a row waits before it is done again after ``PAUSES_THE_JOB`` (the token manager itself waits
up to the retry policy's deadline; this only keeps a zero deadline from spinning)."""
MAX_PAUSE = 1800.0
"""Seconds without a token after which a paused job stops (``max_pause``)."""


def _in_causes(
    error: BaseException | None, kinds: type[CtctError] | tuple[type[CtctError], ...]
) -> CtctError | None:
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, kinds):
            return error
        error, seen = error.__cause__, seen + 1
    return None


def stopping_error(error: BaseException | None) -> CtctError | None:
    """The error in ``error`` or its causes that stops the job (one of ``STOPS_THE_JOB``)."""
    return _in_causes(error, STOPS_THE_JOB)


SUCCESS = frozenset(
    {
        OutcomeState.CREATED,
        OutcomeState.RECONCILED,
        OutcomeState.ADOPTED,
        OutcomeState.UPDATED,
        OutcomeState.CANCELED,
        OutcomeState.SKIPPED,
    }
)

_BAD = frozenset({OutcomeState.FAILED, OutcomeState.UNSETTLED, OutcomeState.INVALID})


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
    accounts: Accounts

    def parse(self, item: Any) -> _Parsed[P]:
        raise NotImplementedError

    async def run(
        self, payload: P, previously_attempted: bool, on_sent: Callable[[], None]
    ) -> tuple[OutcomeState, str | None, Any]:
        """Do the row. A create calls ``on_sent`` just before its request is first handed to the transport
        (plans and cancellations are simply done again by a rerun, so they need no ``sent`` state)."""
        raise NotImplementedError

    def stored(self, payload: P) -> CreateResult | None:
        """The pending result of a row the API stored (503) in an earlier run, for jobs that have them."""
        return None

    def begin(self, journal: Journal) -> None:
        """Before the first row: what the job takes from its journal besides the rows."""

    def end(self, journal: Journal) -> None:
        """After the last row (or a stop): what the job leaves in its journal besides the rows."""

    def scrub(self, message: str, payload: P) -> str:
        """``message`` as the journal and results may keep it: without the row's secrets."""
        return message

    def journal_key(self, key: str) -> str:
        """The row's key in the journal (login names are compared case-insensitively by the API)."""
        return key

    async def pause(self, seconds: float) -> None:
        """Sleep on the client's clock."""
        await self.accounts.clock.sleep(seconds)


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
        reconcile_timeout: float = 30.0,
        adopt_existing: bool = False,
        max_pause: float | None = MAX_PAUSE,
    ) -> AsyncGenerator[Outcome, None]:
        """Create an account per row (``NewAccount`` or a mapping of its fields), never twice.

        Rows answered with a 503 are stored by the API and created later: they are resolved from the
        account list at the end of the job, waiting up to ``pending_wait`` seconds, and reported then.
        ``reconcile_timeout`` bounds each row's look at the account list (see ``accounts.create``).
        ``adopt_existing`` reports a row whose login name is taken by a listed account that matches it
        (same user name, same organization) as ``adopted`` instead of failed: for a lost journal.
        While the token endpoint gives no token, rows wait and go on; after ``max_pause`` seconds of it
        (``None``: no limit) the job stops as on a spent quota (every job method takes it).
        """
        check_seconds("pending_wait", pending_wait)
        check_seconds("reconcile_timeout", reconcile_timeout)
        job = _CreateJob(self._accounts, pending_wait, reconcile_timeout, adopt_existing)
        return self._run(job, journal, rows, concurrency, max_pause)

    def _run(
        self,
        job: _Job[P],
        journal: Journal | None,
        rows: Rows,
        concurrency: int | None,
        max_pause: float | None,
    ) -> AsyncGenerator[Outcome, None]:
        if max_pause is not None:
            check_seconds("max_pause", max_pause)
        runner = _Runner(job, journal, max_pause)
        return runner.stream(rows, self._concurrency if concurrency is None else concurrency)

    def change_plans(
        self,
        rows: Rows,
        *,
        concurrency: int | None = None,
        journal: Journal | None = None,
        allowed_plan_types: Collection[str] = PlanType.KNOWN,
        max_pause: float | None = MAX_PAUSE,
    ) -> AsyncGenerator[Outcome, None]:
        """Change the plan per row: ``encoded_account_id``, ``plan_type``, ``billing_day_of_month``."""
        job = _PlanJob(self._accounts, frozenset(p.upper() for p in allowed_plan_types))
        return self._run(job, journal, rows, concurrency, max_pause)

    def cancel_accounts(
        self,
        rows: Rows,
        *,
        concurrency: int | None = None,
        journal: Journal | None = None,
        max_pause: float | None = MAX_PAUSE,
    ) -> AsyncGenerator[Outcome, None]:
        """Cancel the account per row: ``encoded_account_id``, ``reason_id``, ``effective_date``."""
        return self._run(_CancelJob(self._accounts), journal, rows, concurrency, max_pause)


class _CreateJob(_Job[NewAccount]):
    name = "provision"

    def begin(self, journal: Journal) -> None:
        """Start the reconciler from the account index the journal keeps (a rerun, a later job)."""
        reconciler = self.accounts.reconciler
        reconciler.warm(*journal.account_index(reconciler.owner))

    def end(self, journal: Journal) -> None:
        """Keep the reconciler's index in the journal for the next run (an optimisation: a failure to
        write it is logged and loses nothing but the next run's warm start)."""
        reconciler = self.accounts.reconciler
        try:
            journal.save_account_index(reconciler.index.accounts(), reconciler.index.tail, reconciler.owner)
        except JournalError as exc:
            logger.warning("the account index was not saved in the journal: %s", exc)

    finished_state = OutcomeState.CREATED

    def __init__(
        self, accounts: Accounts, pending_wait: float, reconcile_timeout: float, adopt_existing: bool
    ) -> None:
        self.accounts = accounts
        self.pending_wait = pending_wait
        self.reconcile_timeout = reconcile_timeout
        self.adopt_existing = adopt_existing

    def parse(self, item: Any) -> _Parsed[NewAccount]:
        if isinstance(item, NewAccount):
            check_new_account(item)
            return _Parsed(item.login_name, item)
        account = new_account_from_row(item)
        return _Parsed(account.login_name, account)

    async def run(
        self, payload: NewAccount, previously_attempted: bool, on_sent: Callable[[], None]
    ) -> tuple[OutcomeState, str | None, Any]:
        result = await self.accounts.create(
            payload,
            previously_attempted=previously_attempted,
            reconcile_timeout=self.reconcile_timeout,
            adopt_existing=self.adopt_existing,
            on_sent=on_sent,
        )
        return OutcomeState(result.status.value), result.encoded_account_id, result

    def stored(self, payload: NewAccount) -> CreateResult:
        return CreateResult(
            status=CreateStatus.PENDING,
            login_name=payload.login_name,
            organization_name=payload.organization_name,
            attempts=0,
        )

    def scrub(self, message: str, payload: NewAccount) -> str:
        return scrub(message, (payload.password,) if payload.password else ())

    def journal_key(self, key: str) -> str:
        return key.lower()


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
        self, payload: tuple[str, PlanChange], previously_attempted: bool, on_sent: Callable[[], None]
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
        self, payload: tuple[str, Cancellation], previously_attempted: bool, on_sent: Callable[[], None]
    ) -> tuple[OutcomeState, str | None, Any]:
        account_id, cancellation = payload
        result = await self.accounts.cancel(
            account_id, reason=cancellation.reason_id, effective_date=cancellation.effective_date
        )
        return OutcomeState.CANCELED, account_id, result


class _Runner(Generic[P]):
    """Streams rows through a job with bounded concurrency, a journal and duplicate detection."""

    def __init__(self, job: _Job[P], journal: Journal | None, max_pause: float | None = MAX_PAUSE) -> None:
        self.job = job
        self.journal: Journal | NullJournal = journal or NullJournal()
        self.seen: dict[str, int] = {}
        self.pending: list[tuple[int, CreateResult, P]] = []
        self.stopped: CtctError | None = None
        self.max_pause = max_pause
        self.paused_since: float | None = None  # when rows started waiting for a token
        self.states: Counter[OutcomeState] = Counter()  # rows reported, by state

    async def stream(self, rows: Rows, concurrency: int) -> AsyncGenerator[Outcome, None]:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError([FieldError("concurrency", "must be a whole number of at least 1")])
        in_flight: set[asyncio.Task[Outcome | None]] = set()
        numbered = _numbered(rows)
        exhausted = finished = False
        journal = self.journal if isinstance(self.journal, Journal) else None
        if journal is not None:
            self.job.begin(journal)
        clock, observer = self.job.accounts.clock, self.job.accounts.observer
        started = clock.monotonic()
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
                for outcome in _results(done):
                    if outcome is not None:
                        self.count(outcome, observer)
                        yield outcome
            async for outcome in self._resolve_pending():
                self.count(outcome, observer)
                yield outcome
            finished = True
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            if journal is not None:
                self.job.end(journal)
            self.summary(clock.monotonic() - started, finished)

    def count(self, outcome: Outcome, observer: Observer | None) -> None:
        self.states[outcome.state] += 1
        if observer is not None:
            observer.row(self.job.name, outcome.state.value)

    def summary(self, seconds: float, finished: bool) -> None:
        """The job's one summary line on ``ctct_partner_async.bulk``, its figures in ``extra``: INFO, or
        WARNING when a row failed, is unsettled or invalid, or the job stopped or was left early."""
        states = {state.value: self.states[state] for state in OutcomeState if self.states[state]}
        rows = sum(states.values())
        done = "done" if finished else "ended early"
        counts = ", ".join(f"{n} {state}" for state, n in states.items()) or "no rows"
        stopped_by = type(self.stopped).__name__ if self.stopped is not None else None
        bad = not finished or stopped_by is not None or any(s in _BAD for s in self.states)
        logger.log(
            logging.WARNING if bad else logging.INFO,
            "%s job %s: %d rows in %.1fs (%s)%s",
            self.job.name, done, rows, seconds, counts, f"; stopped by {stopped_by}" if stopped_by else "",
            extra={"job": self.job.name, "rows": rows, "seconds": round(seconds, 3), "states": states,
                   "finished": finished, "stopped_by": stopped_by},
        )  # fmt: skip

    async def _one(self, index: int, item: Any) -> Outcome | None:
        """The row's outcome, or ``None`` for a pending create held back until it is resolved."""
        try:
            parsed = self._parse(index, item)
        except ValidationError as exc:
            key = _fallback_key(
                item, index, "login_name" if self.job.name == "provision" else "encoded_account_id"
            )
            return self._invalid(index, key, str(exc), exc)
        entry = self.journal.get(self.job.journal_key(parsed.key))
        if entry is not None and entry.finished:
            return Outcome(
                index=index,
                key=parsed.key,
                state=OutcomeState.SKIPPED,
                encoded_account_id=entry.account_id,
                attempts=entry.attempts,
            )
        if self.stopped is not None:
            return self._not_done(index, parsed.key, entry)
        if entry is not None and entry.state == "pending":
            # The API stored this row's request (503) in an earlier run: look for it, never send it again.
            stored = self.job.stored(parsed.payload)
            if stored is not None:
                self.pending.append((index, attrs.evolve(stored, attempts=entry.attempts), parsed.payload))
                return None
        return await self._attempt(index, parsed, entry)

    @staticmethod
    def _paused(error: CtctError) -> bool:
        """Whether ``error`` is the token endpoint being down (and nothing that stops the job)."""
        return _in_causes(error, PAUSES_THE_JOB) is not None and stopping_error(error) is None

    def _paused_too_long(self, error: CtctError) -> CtctError | None:
        """Note that rows wait for a token; past ``max_pause`` seconds of it, the error that stops the job."""
        now = self.job.accounts.clock.monotonic()
        if self.paused_since is None:
            self.paused_since = now
        if self.max_pause is None or now - self.paused_since < self.max_pause:
            return None
        self.stopped = _PausedTooLongError(
            f"the token endpoint gave no token for {self.max_pause:g} s ({error}); the job stopped: run it "
            "again later"
        )
        return self.stopped

    def _not_done(self, index: int, key: str, entry: Entry | None) -> Outcome:
        """A row the job stopped before: failed if it was never sent, else still to be settled."""
        assert self.stopped is not None
        if entry is not None and entry.may_have_been_received:
            state = OutcomeState.PENDING if entry.state == "pending" else OutcomeState.UNSETTLED
            error = f"not settled: the job stopped on an earlier row ({self.stopped}); run it again"
            return Outcome(
                index=index,
                key=key,
                state=state,
                error=error,
                attempts=entry.attempts,
                exception=self.stopped,
            )
        error = f"not sent: the job stopped on an earlier row ({self.stopped})"
        return Outcome(index=index, key=key, state=OutcomeState.FAILED, error=error, exception=self.stopped)

    def _parse(self, index: int, item: Any) -> _Parsed[P]:
        if isinstance(item, BadRow):
            raise ValidationError([_row_error(item.reason)])
        try:
            parsed = self.job.parse(item)
        except ValidationError:
            raise
        except Exception as exc:  # a row of the wrong shape (None, a number, a model with a bad field)
            raise ValidationError([_row_error(f"cannot be read as a row ({type(exc).__name__})")]) from exc
        first = self.seen.setdefault(parsed.key.lower(), index)
        if first != index:
            raise ValidationError([_duplicate(parsed.key, first)])
        return parsed

    def _invalid(self, index: int, key: str, message: str, exc: BaseException) -> Outcome:
        # Not journaled: nothing was sent, the next run checks the row again, and an invalid duplicate
        # must not overwrite the journal entry of the good row it duplicates.
        return Outcome(index=index, key=key, state=OutcomeState.INVALID, error=message, exception=exc)

    async def _attempt(self, index: int, parsed: _Parsed[P], entry: Entry | None) -> Outcome | None:
        journal, key = self.journal, self.job.journal_key(parsed.key)
        previously = entry is not None and entry.may_have_been_received
        attempts = entry.attempts if entry else 0
        sent = False

        def on_sent() -> None:  # just before the request is handed to the transport
            nonlocal sent
            journal.record(key, index, "sent", attempt=True)
            sent = True

        journal.record(key, index, "queued")
        try:
            while True:
                try:
                    state, account_id, result = await self.job.run(parsed.payload, previously, on_sent)
                    break
                except CtctError as exc:
                    if self.stopped is not None or not self._paused(exc):
                        raise
                    stop = self._paused_too_long(exc)
                    if stop is not None:
                        raise stop from exc
                    previously = previously or sent  # done again as a rerun would: never a second account
                    await self.job.pause(PAUSE)
                    if self.stopped is not None:  # another row stopped the job meanwhile
                        raise
            self.paused_since = None
        except ValidationError as exc:
            return self._invalid(index, parsed.key, str(exc), exc)
        except JournalError:
            raise  # not this row's failure: the job cannot go on safely
        except CtctError as exc:
            stops = stopping_error(exc)
            if stops is not None and self.stopped is None:
                self.stopped = stops
            # An unconfirmed create may exist: the journal keeps it unsettled so the next run settles it.
            unsettled = isinstance(exc, UnconfirmedCreateError) or (
                self.job.name == "provision"
                and (sent or previously)
                and _in_causes(exc, PAUSES_THE_JOB) is not None
            )
            return self._failed(index, parsed, attempts + sent, str(exc), exc, unsettled=unsettled)
        except Exception as exc:  # a surprise doing this one row: the row fails, the job goes on
            message = f"unexpected {type(exc).__name__} while doing this row: {exc}"
            # once the request may have been received, the account may exist: settle it on a rerun
            unsettled = self.job.name == "provision" and (sent or previously)
            return self._failed(index, parsed, attempts + sent, message, exc, unsettled=unsettled)
        state_name = "pending" if state is OutcomeState.PENDING else state.value
        journal.record(key, index, state_name, account_id=account_id)
        if state is OutcomeState.PENDING:
            self.pending.append((index, result, parsed.payload))
            return None
        return Outcome(
            index=index, key=parsed.key, state=state, encoded_account_id=account_id, attempts=attempts + sent
        )

    def _failed(
        self,
        index: int,
        parsed: _Parsed[P],
        attempts: int,
        message: str,
        exc: BaseException,
        *,
        unsettled: bool,
    ) -> Outcome:
        error = self.job.scrub(message, parsed.payload)
        state = OutcomeState.UNSETTLED if unsettled else OutcomeState.FAILED
        self.journal.record(self.job.journal_key(parsed.key), index, state.value, error=error)
        return Outcome(
            index=index, key=parsed.key, state=state, error=error, attempts=attempts, exception=exc
        )

    async def _resolve_pending(self) -> AsyncIterator[Outcome]:
        """Report the held-back pending creates once the list shows them (or the wait runs out).

        A row still not listed, or whose lookup failed (quota spent, the list unreadable), stays
        ``pending`` in the journal, with the reason: a rerun looks again and never sends it.
        """
        if not self.pending:
            return
        assert isinstance(self.job, _CreateJob)
        accounts, wait = self.job.accounts, self.job.pending_wait
        resolutions = await asyncio.gather(
            *(accounts.resolve(r, wait=wait) for _, r, _ in self.pending), return_exceptions=True
        )
        for (index, pending, payload), resolved in zip(self.pending, resolutions, strict=True):
            yield self._resolved(index, pending, payload, resolved)
        self.pending.clear()

    def _resolved(
        self, index: int, pending: CreateResult, payload: P, resolved: CreateResult | BaseException
    ) -> Outcome:
        key = pending.login_name
        journal_key = self.job.journal_key(key)
        if isinstance(resolved, ConflictError):
            error = self.job.scrub(f"stored by the API (503) but never created: {resolved}", payload)
            self.journal.record(journal_key, index, "failed", error=error)
            return Outcome(
                index=index, key=key, state=OutcomeState.FAILED, error=error, attempts=pending.attempts,
                deferred=True, exception=resolved,
            )  # fmt: skip
        if isinstance(resolved, CtctError) or (
            isinstance(resolved, CreateResult) and resolved.status is CreateStatus.PENDING
        ):
            why = f": {resolved}" if isinstance(resolved, CtctError) else ""
            error = self.job.scrub(f"stored by the API (503) but not in the account list yet{why}", payload)
            self.journal.record(journal_key, index, "pending", error=error)
            exception = resolved if isinstance(resolved, CtctError) else None
            return Outcome(
                index=index, key=key, state=OutcomeState.PENDING, error=error, attempts=pending.attempts,
                deferred=True, exception=exception,
            )  # fmt: skip
        if isinstance(resolved, BaseException):
            raise resolved
        self.journal.record(journal_key, index, "created", account_id=resolved.encoded_account_id)
        return Outcome(
            index=index,
            key=key,
            state=OutcomeState.CREATED,
            encoded_account_id=resolved.encoded_account_id,
            attempts=pending.attempts,
            deferred=True,
        )


def _results(done: Iterable[asyncio.Task[Outcome | None]]) -> list[Outcome | None]:
    """The finished tasks' outcomes; the first error raised, after every task's error was retrieved."""
    errors = [exc for task in done if not task.cancelled() and (exc := task.exception()) is not None]
    if errors:
        raise errors[0]
    return [task.result() for task in done]


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
