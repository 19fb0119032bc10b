"""The bulk commands, ``provision``, ``plans`` and ``cancel``: a file of rows through ``client.bulk``.

The file is read twice, streaming: once to count its records (the progress total) and check its
columns (see ``inputs``), once to feed the job. A file without a single record is exit status 1 ("no
rows"). Each outcome goes to the tally, the progress line and the results file as it arrives. When a
row fails with an error every later row would meet too (the daily quota is spent, the credentials are
refused), no more rows are sent: the rest are reported failed with that error at once.

Before the first request, the job's requests are estimated (the rows it will send times
``REQUESTS_PER_ROW``) and compared with what the API key has left today by the SDK's count
(``client.refresh_quota()``: every process's with ``--redis-url``, else this one's, so the daily quota
itself). An estimate beyond it is a warning on stderr, and the job runs anyway: the server's count is the
one that decides. When a ``quota_exceeded`` has stopped the key (shared in Redis), that is said, and the
job ends as it would: its rows fail with the quota error and nothing is sent. The rows counted are those
the job will send: valid, the first of their key in the file, and not finished in the ``--journal`` by
an earlier run. Counting them reads the file once more, so that pass is made only when the plain record
count (an upper bound) already exceeds what is left.

``--dry-run`` checks every row as the job would (each rule, duplicates in the file) and reports each
``valid`` or ``invalid``, with the same exit status, without a client: nothing is sent, no credential is
needed, the journal is neither read nor written. It prints the estimate of the valid rows against the
configured daily quota (today's use is not read).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from .._budget import QuotaStatus
from .._bulk import Bulk, Outcome, stopping_error
from .._client import PartnerClient
from .._environ import Environment
from .._errors import CtctError, FieldError, ValidationError
from .._models import PlanType
from .._rows import BadRow, cancellation_from_row, new_account_from_row, plan_change_from_row
from ..journal import Journal, JournalError
from ._text import printable
from .inputs import Source, check_columns, check_outputs, open_source, survey
from .options import UsageError, make_client
from .progress import Progress
from .report import (
    Estimate,
    ResultsFile,
    RowResult,
    Tally,
    dry_quota_warning,
    format_check_summary,
    format_dry_estimate,
    format_problems,
    format_summary,
    quota_stop_notice,
    quota_warning,
)

__all__ = ["REQUESTS_PER_ROW", "bulk_command", "check_quota", "check_rows", "rows_to_send", "run_rows"]

Sink = Callable[[Outcome], None]

REQUESTS_PER_ROW = {"provision": 1, "plans": 1, "cancel": 1}
"""The API requests one row of each job is expected to send. ``provision``: one create (``POST
partner/accounts``; a create row sets no plan, the account starts on ``TRIAL`` and a plan change is a
``plans`` row). ``plans``: one ``PUT .../plan``. ``cancel``: one ``PUT .../canceled``. Not expected, so
not counted: retries, the account-list pages a create reads after an ambiguous failure, a 503 or (with
``--adopt-existing``) a 409, and token requests (the token endpoint's, outside the key's daily quota)."""


def allowed_plan_types(extra: Iterable[str] | None) -> frozenset[str]:
    """The plan types a ``plans`` row may name: those an account can move to, and ``--allow-plan-type``."""
    return PlanType.PAID | {name.upper() for name in extra or ()}


def start_job(
    name: str, bulk: Bulk, rows: Iterator[Any], journal: Journal | None, options: dict[str, Any]
) -> AsyncGenerator[Outcome, None]:
    """The outcome stream of the bulk job ``name``."""
    concurrency = options["concurrency"]
    if name == "provision":
        return bulk.create_accounts(
            rows,
            concurrency=concurrency,
            journal=journal,
            pending_wait=options.get("pending_wait", 60.0),
            reconcile_timeout=options.get("reconcile_timeout", 30.0),
            adopt_existing=options.get("adopt_existing", False),
        )
    if name == "plans":
        allowed = allowed_plan_types(options.get("allow_plan_type"))
        return bulk.change_plans(rows, concurrency=concurrency, journal=journal, allowed_plan_types=allowed)
    return bulk.cancel_accounts(rows, concurrency=concurrency, journal=journal)


async def run_rows(
    name: str, bulk: Bulk, rows: Iterator[Any], sink: Sink, *, journal: Journal | None, **options: Any
) -> CtctError | None:
    """Run the job, handing every row's outcome to ``sink``; return the error that stopped it, if any."""
    stopped: CtctError | None = None
    async with contextlib.aclosing(start_job(name, bulk, rows, journal, options)) as stream:
        async for outcome in stream:
            if stopped is None:
                stopped = stopping_error(outcome.exception)
            sink(outcome)
    return stopped


def row_key(name: str, item: Any, allowed: Collection[str]) -> str:
    """The key of the row ``item`` for the job ``name``; ``ValidationError`` naming every broken rule."""
    if isinstance(item, BadRow):
        raise ValidationError([FieldError("row", item.reason)])
    try:
        if name == "provision":
            return new_account_from_row(item).login_name
        if name == "plans":
            return plan_change_from_row(item, allowed_plan_types=allowed)[0]
        return cancellation_from_row(item)[0]
    except ValidationError:
        raise
    except Exception as exc:  # a row of the wrong shape, as the job reports it
        raise ValidationError([FieldError("row", f"cannot be read as a row ({type(exc).__name__})")]) from exc


def _fallback_key(name: str, item: Any, index: int) -> str:
    field = "login_name" if name == "provision" else "encoded_account_id"
    value = item.get(field) if isinstance(item, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else f"#row-{index}"


def check_rows(name: str, rows: Iterable[Any], allowed: Collection[str]) -> Iterator[RowResult]:
    """Each row checked as the job ``name`` would check it: ``valid``, or ``invalid`` with the reason
    (a broken rule, a key the file already had)."""
    seen: dict[str, int] = {}
    for index, item in enumerate(rows, 1):
        try:
            key = row_key(name, item, allowed)
        except ValidationError as exc:
            yield _invalid(index, _fallback_key(name, item, index), exc)
            continue
        first = seen.setdefault(key.lower(), index)
        if first != index:
            duplicate = FieldError("key", f"duplicate of row {first} ({key}) in this input")
            yield _invalid(index, key, ValidationError([duplicate]))
        else:
            yield RowResult(index=index, key=key, state="valid", ok=True)


def _invalid(index: int, key: str, error: ValidationError) -> RowResult:
    return RowResult(index=index, key=key, state="invalid", ok=False, error=str(error))


def _journal_key(name: str, key: str) -> str:
    """The row's key in the journal: login names lower-cased, as the bulk job keeps them."""
    return key.lower() if name == "provision" else key


def rows_to_send(name: str, rows: Iterable[Any], allowed: Collection[str], journal: Journal | None) -> int:
    """How many of ``rows`` the job ``name`` will send: the valid ones (the first of each key) that
    ``journal`` does not hold as finished by an earlier run."""
    count = 0
    for result in check_rows(name, rows, allowed):
        if result.ok:
            entry = None if journal is None else journal.get(_journal_key(name, result.key))
            count += entry is None or not entry.finished
    return count


def configured_quota(args: argparse.Namespace) -> int | None:
    """The API key's requests a day: ``--daily-quota``, else ``$CTCT_DAILY_QUOTA``, else 10,000 (what the
    client would count against)."""
    if hasattr(args, "daily_quota"):
        value: int | None = args.daily_quota
        return value
    try:
        return Environment().daily_quota()
    except ValidationError as exc:
        raise UsageError(str(exc)) from None


async def check_quota(
    name: str,
    client: PartnerClient,
    source: Source,
    count: int,
    journal: Journal | None,
    args: argparse.Namespace,
) -> None:
    """Before the first request: warn on stderr when the job's estimate exceeds what the key has left
    today, or say that the key is stopped (``count`` records in the file bound the rows to send)."""
    quota = await client.refresh_quota()
    now = time.time()
    if quota.stopped:
        print(quota_stop_notice(name, quota, now=now), file=sys.stderr)
        return
    per_row = REQUESTS_PER_ROW[name]
    if quota_warning(name, Estimate(count, per_row), quota, now=now) is None:
        return  # even every record of the file fits: no need to read it again
    allowed = allowed_plan_types(getattr(args, "allow_plan_type", None))
    estimate = Estimate(rows_to_send(name, source.rows(), allowed, journal), per_row)
    warning = quota_warning(name, estimate, quota, now=now)
    if warning is not None:
        print(warning, file=sys.stderr)


def dry_run(name: str, source: Source, args: argparse.Namespace) -> int:
    """``--dry-run``: every row checked and reported; 0 if all are valid, 1 if some are not."""
    tally = Tally()
    with contextlib.ExitStack() as stack:
        results = open_results(args.out)
        if results is not None:
            stack.callback(results.close)
        allowed = allowed_plan_types(getattr(args, "allow_plan_type", None))
        for result in check_rows(name, source.rows(), allowed):
            tally.add(result)
            if results is not None:
                write_result(results, result, args.out)
    print(format_check_summary(name, tally))
    estimate, limit = Estimate(tally.counts["valid"], REQUESTS_PER_ROW[name]), configured_quota(args)
    print(format_dry_estimate(name, estimate, limit))
    warning = dry_quota_warning(name, estimate, limit)
    if warning is not None:
        print(warning, file=sys.stderr)
    if not tally.ok:
        print(format_problems(tally, Path(args.out) if args.out else None), file=sys.stderr)
    return 0 if tally.ok else 1


def write_result(results: ResultsFile, row: Outcome | RowResult, out: str) -> None:
    """Write one row's result; ``UsageError`` if the file can't be written."""
    try:
        results.write(row)
    except OSError as exc:
        raise UsageError(
            f"--out {out}: {exc.strerror or exc}; the job stopped (with a --journal, "
            "run it again once the file can be written)"
        ) from None


def open_journal(path: str | None, job: str) -> Journal | None:
    """The ``--journal``, if given; ``UsageError`` if SQLite can't open it."""
    if path is None:
        return None
    try:
        return Journal(path, job=job)
    except JournalError as exc:
        raise UsageError(f"--journal {exc}") from None


def open_results(path: str | None) -> ResultsFile | None:
    """The ``--out`` file, if given (rewritten on every run); ``UsageError`` if it can't be written."""
    if path is None:
        return None
    try:
        return ResultsFile(Path(path))
    except OSError as exc:
        raise UsageError(f"--out {path}: {exc.strerror or exc}") from None


def job_options(args: argparse.Namespace) -> dict[str, Any]:
    """The bulk job's settings from the command's flags."""
    return {
        "concurrency": args.concurrency,
        "pending_wait": getattr(args, "pending_wait", 60.0),
        "adopt_existing": getattr(args, "adopt_existing", False),
        "reconcile_timeout": getattr(args, "reconcile_timeout", 30.0),
        "allow_plan_type": getattr(args, "allow_plan_type", None),
    }


async def run_job(
    name: str,
    client: PartnerClient,
    source: Source,
    count: int,
    sink: Sink,
    journal: Journal | None,
    args: argparse.Namespace,
) -> tuple[CtctError | None, QuotaStatus]:
    """Check the quota, run every row through the job, and read the quota again: the error that stopped
    the job, if any, and the day's count after it."""
    async with client:
        await check_quota(name, client, source, count, journal, args)
        stopped = await run_rows(name, client.bulk, source.rows(), sink, journal=journal, **job_options(args))
        return stopped, await client.refresh_quota()


def report_end(
    name: str,
    tally: Tally,
    *,
    retries: int,
    elapsed: float,
    stopped: CtctError | None,
    out: str | None,
    quota: QuotaStatus | None = None,
) -> int:
    """Print the summary (stdout) and the rows that did not succeed (stderr); the exit status."""
    print(format_summary(name, tally, retries=retries, elapsed=elapsed, quota=quota))
    if stopped is not None:
        print(f"{name}: stopped early: {printable(str(stopped))}", file=sys.stderr)
    if not tally.ok:
        print(format_problems(tally, Path(out) if out else None), file=sys.stderr)
    return 0 if tally.ok else 1


def checked_source(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[Source, int]:
    """The command's input and its record count, once every check of ``inputs`` passed."""
    source = open_source(args.file, args.format, stack)
    check_outputs(source, {"--out": args.out, "--journal": args.journal})
    found = survey(source)
    ignored = check_columns(args.command, source, found.columns, ignore=args.ignore_unknown_columns)
    if ignored:
        names = ", ".join(map(repr, ignored))
        print(printable(f"{args.command}: ignoring unknown columns {names}"), file=sys.stderr)
    return source, found.count


async def bulk_command(args: argparse.Namespace) -> int:
    """``provision|plans|cancel FILE``: 0 if every row succeeded, 1 if some did not (or there were
    none), 2 (``UsageError``) if the input or an output can't be used."""
    name = args.command
    with contextlib.ExitStack() as stack:
        source, count = checked_source(args, stack)
        if count == 0:
            print(printable(f"{name}: no rows in {source.label}: nothing to do"), file=sys.stderr)
            return 1
        if args.dry_run:
            return dry_run(name, source, args)
        client = make_client(args, max_concurrency=args.concurrency)
        progress, tally = Progress(name, count, enabled=not args.quiet), Tally()
        journal = open_journal(args.journal, name)
        if journal is not None:
            stack.callback(journal.close)
        results = open_results(args.out)
        if results is not None:
            stack.callback(results.close)

        def record(outcome: Outcome) -> None:
            tally.add(outcome)
            progress.advance()
            if results is not None:
                write_result(results, outcome, args.out)

        started = time.monotonic()
        try:
            stopped, quota = await run_job(name, client, source, count, record, journal, args)
        except JournalError as exc:
            progress.finish()
            raise UsageError(
                f"--journal {exc}; the job stopped (rows recorded so far stay recorded: run it again once "
                "the journal can be written)"
            ) from None
        progress.finish()
    elapsed = time.monotonic() - started
    return report_end(
        name, tally, retries=client.retries, elapsed=elapsed, stopped=stopped, out=args.out, quota=quota
    )
