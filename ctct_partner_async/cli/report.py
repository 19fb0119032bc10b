"""What a bulk command reports: a result per row (``--out``), a tally, and the summary table.

Before a job starts, :func:`quota_warning` says when its estimate (:class:`Estimate`) exceeds what the
API key has left today, and the summary ends with the day's count as the SDK knows it.

A result is ``index, key, state, encoded_account_id, error``: never a password, a token or an API key
(the SDK's error messages carry none, and nothing else from the row is written). What goes to the
terminal (the table, the summary, the problem lines) passes through :func:`printable`: a row key or a
server message can't send the terminal an escape sequence. The results file is JSON Lines, with the same
characters as ``\\u`` escapes, or CSV when its name ends in ``.csv``: a header line, then text cells
through :func:`printable` (one line per row) and a cell that a spreadsheet would run as a formula (one
that begins with ``=``, ``+``, ``-`` or ``@``) behind a ``'``.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import attrs

from .._budget import QuotaStatus
from .._bulk import Outcome, OutcomeState
from ._text import json_line, printable

__all__ = [
    "Estimate",
    "ResultsFile",
    "RowResult",
    "Tally",
    "dry_quota_warning",
    "format_check_summary",
    "format_dry_estimate",
    "format_problems",
    "format_summary",
    "format_table",
    "format_until",
    "quota_stop_notice",
    "quota_warning",
    "result_record",
]

MAX_PROBLEMS = 10
PENDING_NOTE = (
    "the API stored the request (503) and the account has not appeared yet; "
    "run the same command again with the same --journal to resolve it"
)


def describe_error(outcome: Outcome) -> str | None:
    """The row's error message, or why a pending row is not done."""
    if outcome.error:
        return outcome.error
    return PENDING_NOTE if outcome.state is OutcomeState.PENDING else None


@attrs.frozen(kw_only=True)
class RowResult:
    """What is reported of one row: a bulk job's ``Outcome``, or a ``--dry-run`` check (``valid``)."""

    index: int
    key: str
    state: str
    ok: bool
    encoded_account_id: str | None = None
    error: str | None = None

    @classmethod
    def of(cls, outcome: Outcome) -> RowResult:
        return cls(
            index=outcome.index,
            key=outcome.key,
            state=outcome.state.value,
            ok=outcome.ok,
            encoded_account_id=outcome.encoded_account_id,
            error=describe_error(outcome),
        )


RESULT_COLUMNS = ("index", "key", "state", "encoded_account_id", "error")
FORMULA_START = ("=", "+", "-", "@")


def result_record(row: Outcome | RowResult) -> dict[str, object]:
    """The record written for one row (a JSON object, or a CSV line in ``RESULT_COLUMNS`` order)."""
    result = RowResult.of(row) if isinstance(row, Outcome) else row
    return {name: getattr(result, name) for name in RESULT_COLUMNS}


def csv_cell(value: object) -> object:
    """A CSV results cell: text on one line, never run as a spreadsheet formula; ``None`` empty."""
    if value is None or isinstance(value, int):
        return "" if value is None else value
    text = printable(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class ResultsFile:
    """``--out``: a line per row in the order rows finish, flushed line by line; CSV for a ``.csv`` name,
    JSON Lines otherwise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.csv = path.suffix.lower() == ".csv"
        self._handle = path.open("w", encoding="utf-8", newline="" if self.csv else None)
        self._writer = csv.writer(self._handle, lineterminator="\n") if self.csv else None
        if self._writer is not None:
            self._writer.writerow(RESULT_COLUMNS)
            self._handle.flush()

    def write(self, row: Outcome | RowResult) -> None:
        record = result_record(row)
        if self._writer is not None:
            self._writer.writerow([csv_cell(value) for value in record.values()])
        else:
            # json_line: a lone surrogate in a row key (a "\ud800" in a JSONL file) is written as its
            # escape rather than failing the write, and the file is safe to cat.
            self._handle.write(json_line(record) + "\n")
        self._handle.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # every line was flushed: a failed write was reported already
            self._handle.close()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@attrs.define
class Tally:
    """Counts per state, how many rows were created after a 503, and the first few rows (in file order)
    that did not succeed."""

    counts: Counter[str] = attrs.Factory(Counter)
    deferred: int = 0
    problems: list[RowResult] = attrs.Factory(list)
    problem_count: int = 0

    def add(self, row: Outcome | RowResult) -> None:
        """Count a row; an ``Outcome`` created after its create was deferred (503) counts as such."""
        if isinstance(row, Outcome):
            self.deferred += row.deferred and row.state is OutcomeState.CREATED
            row = RowResult.of(row)
        self.counts[row.state] += 1
        if not row.ok:
            self.problem_count += 1
            bisect.insort(self.problems, row, key=lambda r: r.index)  # rows finish out of file order
            del self.problems[MAX_PROBLEMS:]

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """Every row succeeded (or was finished by an earlier run)."""
        return self.problem_count == 0


def format_table(
    headers: Sequence[str] | None, rows: Sequence[Sequence[object]], *, numeric: int = 0
) -> list[str]:
    """Aligned columns, under ``headers`` if given; the last ``numeric`` columns are right-aligned.
    ``None`` shows as empty; every cell is :func:`printable`."""
    cells = [["" if v is None else printable(v) for v in row] for row in rows]
    if headers is not None:
        cells.insert(0, [printable(h) for h in headers])
    if not cells:
        return []
    columns = len(cells[0])
    widths = [max(len(row[i]) for row in cells) for i in range(columns)]
    first_numeric = columns - numeric
    lines = []
    for row in cells:
        parts = [
            cell.rjust(width) if i >= first_numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


STATE_ORDER = ("valid", *(state.value for state in OutcomeState))


def state_rows(tally: Tally) -> list[tuple[str, object]]:
    """Rows per state, in the order of ``STATE_ORDER``; the creates after a 503 under ``created``."""
    rows: list[tuple[str, object]] = []
    others = sorted(set(tally.counts) - set(STATE_ORDER))
    for state in (*STATE_ORDER, *others):
        if tally.counts[state]:
            rows.append((state, tally.counts[state]))
            if state == OutcomeState.CREATED and tally.deferred:
                rows.append(("  of which after a 503", tally.deferred))
    return rows


def _summary(header: str, rows: list[tuple[str, object]]) -> str:
    return "\n".join([header, *("  " + line for line in format_table(("state", "rows"), rows, numeric=1))])


def quota_rows(quota: QuotaStatus) -> list[tuple[str, object]]:
    """The summary's last rows: requests counted today (by every process on the key when shared) and
    what is left of the daily quota, if it is known."""
    label = "quota used today" + (" (shared)" if quota.shared else "")
    rows: list[tuple[str, object]] = [(label, f"{quota.used:,}")]
    remaining = quota.remaining
    if remaining is not None:
        rows.append(("quota left today", f"{remaining:,}" + (" (stopped)" if quota.stopped else "")))
    return rows


def format_summary(
    label: str, tally: Tally, *, retries: int, elapsed: float, quota: QuotaStatus | None = None
) -> str:
    """The end-of-run table: rows per state (in the order of ``OutcomeState``), retries, time, rate, and
    the day's quota as counted after the job (``quota``, if given)."""
    per_second = tally.rows / elapsed if elapsed > 0 else 0.0
    rows = state_rows(tally)
    rows += [("retries", retries), ("elapsed", f"{elapsed:.1f} s"), ("rows/s", f"{per_second:.1f}")]
    if quota is not None:
        rows += quota_rows(quota)
    done = "all succeeded" if tally.ok else f"{tally.problem_count} not done"
    return _summary(f"{printable(label)}: {tally.rows} rows, {done}", rows)


def format_check_summary(label: str, tally: Tally) -> str:
    """The ``--dry-run`` table: rows checked, how many are valid and invalid; nothing was sent."""
    done = "all valid" if tally.ok else f"{tally.problem_count} invalid"
    header = f"{printable(label)} --dry-run: {tally.rows} rows, {done}, nothing sent"
    return _summary(header, state_rows(tally))


def format_problems(tally: Tally, out: Path | None) -> str:
    """The first rows (in file order) that did not succeed, one line each, and where to find the rest."""
    lines = [
        printable(f"row {r.index} ({r.key}): {r.state}: {r.error or 'no detail'}") for r in tally.problems
    ]
    hidden = tally.problem_count - len(tally.problems)
    where = f"every row is in {printable(out)}" if out is not None else "pass --out PATH to get every row"
    if hidden > 0:
        lines.append(f"... and {hidden} more ({where})")
    return "\n".join(lines)


@attrs.frozen
class Estimate:
    """What a job is expected to send before it starts: ``rows`` to send, ``per_row`` requests each."""

    rows: int
    per_row: int

    @property
    def requests(self) -> int:
        return self.rows * self.per_row

    def __str__(self) -> str:
        each = "request" if self.per_row == 1 else "requests"
        return f"about {self.requests:,} requests ({self.rows:,} rows x {self.per_row} {each})"


def format_until(seconds: float) -> str:
    """A wait to the minute, rounded down: ``5h12m``, ``12m``, ``0m``."""
    hours, minutes = divmod(max(0, int(seconds // 60)), 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _resets(quota: QuotaStatus, now: float) -> str:
    return f"{quota.reset_at:%H:%M} UTC, in {format_until(quota.reset_at.timestamp() - now)}"


def quota_warning(label: str, estimate: Estimate, quota: QuotaStatus, *, now: float) -> str | None:
    """The warning line when ``estimate`` exceeds what ``quota`` has left today (``now``: epoch seconds);
    ``None`` when it fits or the daily quota is not known."""
    remaining = quota.remaining
    if remaining is None or quota.limit is None or estimate.requests <= remaining:
        return None
    resets = f"resets {_resets(quota, now)}"
    if quota.shared:
        used = f"{quota.used:,} of {quota.limit:,} used, by the count shared in Redis"
        left = f"about {remaining:,} left today ({used}; {resets})"
    else:
        spent = f", less {quota.used:,} sent by this process" if quota.used else ""
        others = "what other processes sent today is counted only with --redis-url"
        quota_text = f"the daily quota of {quota.limit:,}{spent}"
        left = f"at most {remaining:,} left today ({quota_text}; {others}; {resets})"
    return printable(
        f"{label}: warning: this job needs {estimate}; the API key has {left}: rows beyond that will stop "
        "with quota_exceeded"
    )


def quota_stop_notice(label: str, quota: QuotaStatus, *, now: float) -> str:
    """The line when the key's quota is stopped before the job starts: its rows fail, none is sent."""
    return printable(
        f"{label}: the API key's daily quota is spent: a quota_exceeded answer stopped every process on "
        f"the key until {_resets(quota, now)}; no request will be sent"
    )


def format_dry_estimate(label: str, estimate: Estimate, limit: int | None) -> str:
    """The ``--dry-run`` estimate: the valid rows times the requests per row, and the configured quota."""
    quota = "not set" if limit is None else f"{limit:,} (today's use is not read in a dry run)"
    return printable(
        f"{label} --dry-run: the job would need {estimate}; the API key's daily quota is {quota}"
    )


def dry_quota_warning(label: str, estimate: Estimate, limit: int | None) -> str | None:
    """The ``--dry-run`` warning when the estimate alone exceeds the daily quota ``limit``."""
    if limit is None or estimate.requests <= limit:
        return None
    return printable(
        f"{label} --dry-run: warning: the job would need {estimate}, more than the API key's daily quota of "
        f"{limit:,}: rows beyond that would stop with quota_exceeded"
    )
