"""What a bulk command reports: a result per row (``--out``), a tally, and the summary table.

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

from .._bulk import Outcome, OutcomeState
from ._text import json_line, printable

__all__ = [
    "ResultsFile",
    "RowResult",
    "Tally",
    "format_check_summary",
    "format_problems",
    "format_summary",
    "format_table",
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


def format_summary(label: str, tally: Tally, *, retries: int, elapsed: float) -> str:
    """The end-of-run table: rows per state (in the order of ``OutcomeState``), retries, time, rate."""
    per_second = tally.rows / elapsed if elapsed > 0 else 0.0
    rows = state_rows(tally)
    rows += [("retries", retries), ("elapsed", f"{elapsed:.1f} s"), ("rows/s", f"{per_second:.1f}")]
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
