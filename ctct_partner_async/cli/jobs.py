"""The bulk commands, ``provision``, ``plans`` and ``cancel``: a file of rows through ``client.bulk``.

The file is read twice, streaming: once to count its records (the progress total) and check its
columns (see ``inputs``), once to feed the job. A file without a single record is exit status 1 ("no
rows"). Each outcome goes to the tally, the progress line and the results file as it arrives. When a
row fails with an error every later row would meet too (the daily quota is spent, the credentials are
refused), no more rows are sent: the rest are reported failed with that error at once.

``--dry-run`` checks every row as the job would (each rule, duplicates in the file) and reports each
``valid`` or ``invalid``, with the same exit status, without a client: nothing is sent, no credential is
needed, the journal is neither read nor written.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from .._bulk import Bulk, Outcome, stopping_error
from .._errors import CtctError, FieldError, ValidationError
from .._models import PlanType
from .._rows import BadRow, cancellation_from_row, new_account_from_row, plan_change_from_row
from ..journal import Journal, JournalError
from ._text import printable
from .inputs import Source, check_columns, check_outputs, open_source, survey
from .options import UsageError, make_client
from .progress import Progress
from .report import ResultsFile, RowResult, Tally, format_check_summary, format_problems, format_summary

__all__ = ["bulk_command", "check_rows", "run_rows"]

Sink = Callable[[Outcome], None]


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


def report_end(
    name: str, tally: Tally, *, retries: int, elapsed: float, stopped: CtctError | None, out: str | None
) -> int:
    """Print the summary (stdout) and the rows that did not succeed (stderr); the exit status."""
    print(format_summary(name, tally, retries=retries, elapsed=elapsed))
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
            async with client:
                stopped = await run_rows(
                    name, client.bulk, source.rows(), record, journal=journal, **job_options(args)
                )
        except JournalError as exc:
            progress.finish()
            raise UsageError(
                f"--journal {exc}; the job stopped (rows recorded so far stay recorded: run it again once "
                "the journal can be written)"
            ) from None
        progress.finish()
    elapsed = time.monotonic() - started
    return report_end(name, tally, retries=client.retries, elapsed=elapsed, stopped=stopped, out=args.out)
