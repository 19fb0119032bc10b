"""The bulk commands, ``provision``, ``plans`` and ``cancel``: a file of rows through ``client.bulk``.

The file is read twice, streaming: once to count its records (the progress total), once to feed the
job. Each outcome goes to the tally, the progress line and the results file as it arrives. When a row
fails with an error every later row would meet too (the daily quota is spent, the credentials are
refused), no more rows are sent: the rest are reported failed with that error at once.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any

from .._bulk import Bulk, Outcome, stopping_error
from .._errors import CtctError
from .._models import PlanType
from ..journal import Journal, JournalError
from ..sources import read_rows
from ._text import printable
from .options import UsageError, make_client
from .progress import Progress
from .report import ResultsFile, Tally, format_problems, format_summary

__all__ = ["bulk_command", "count_rows", "run_rows"]

Sink = Callable[[Outcome], None]


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
        allowed = PlanType.KNOWN | {name.upper() for name in options.get("allow_plan_type") or ()}
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


def count_rows(path: Path) -> int:
    """How many records the file holds (a streaming pass); ``UsageError`` if it can't be read."""
    try:
        return sum(1 for _ in read_rows(path))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except (OSError, ValueError) as exc:
        raise UsageError(
            str(exc) if isinstance(exc, ValueError) else f"{path}: {exc.strerror or exc}"
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


async def bulk_command(args: argparse.Namespace) -> int:
    """``provision|plans|cancel FILE``: 0 if every row succeeded, 1 if some did not."""
    name = args.command
    client = make_client(args, max_concurrency=args.concurrency)
    path = Path(args.file)
    progress, tally = Progress(name, count_rows(path), enabled=not args.quiet), Tally()
    with contextlib.ExitStack() as stack:
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
                try:
                    results.write(outcome)
                except OSError as exc:
                    raise UsageError(
                        f"--out {args.out}: {exc.strerror or exc}; the job stopped (with a --journal, "
                        "run it again once the file can be written)"
                    ) from None

        started = time.monotonic()
        try:
            async with client:
                rows = read_rows(path)
                stopped = await run_rows(
                    name, client.bulk, rows, record, journal=journal, **job_options(args)
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
