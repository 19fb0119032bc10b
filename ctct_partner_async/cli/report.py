"""What a bulk command reports: one JSON line per row (``--out``), a tally, and the summary table.

A result line is ``{"index", "key", "state", "encoded_account_id", "error"}``: never a password, a token
or an API key (the SDK's error messages carry none, and nothing else from the row is written). What goes
to the terminal (the table, the summary, the problem lines) passes through :func:`printable`: a row key
or a server message can't send the terminal an escape sequence. The results file is JSON, with the same
characters as ``\\u`` escapes.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import attrs

from .._bulk import Outcome, OutcomeState
from ._text import json_line, printable

__all__ = ["ResultsFile", "Tally", "format_problems", "format_summary", "format_table", "result_record"]

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


def result_record(outcome: Outcome) -> dict[str, object]:
    """The JSON object written for one row."""
    return {
        "index": outcome.index,
        "key": outcome.key,
        "state": outcome.state.value,
        "encoded_account_id": outcome.encoded_account_id,
        "error": describe_error(outcome),
    }


class ResultsFile:
    """``--out``: JSON Lines, one per row in the order rows finish, flushed line by line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("w", encoding="utf-8")

    def write(self, outcome: Outcome) -> None:
        # json_line: a lone surrogate in a row key (a "\ud800" in a JSONL file) is written as its escape
        # rather than failing the write, and the file is safe to cat.
        self._handle.write(json_line(result_record(outcome)) + "\n")
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
    """Counts per state, how many creates were deferred, and the first few rows that did not succeed."""

    counts: Counter[str] = attrs.Factory(Counter)
    deferred: int = 0
    problems: list[Outcome] = attrs.Factory(list)
    problem_count: int = 0

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.state.value] += 1
        self.deferred += outcome.deferred
        if not outcome.ok:
            self.problem_count += 1
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(outcome)

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


def format_summary(label: str, tally: Tally, *, retries: int, elapsed: float) -> str:
    """The end-of-run table: rows per state (in the order of ``OutcomeState``), retries, time, rate."""
    per_second = tally.rows / elapsed if elapsed > 0 else 0.0
    rows: list[tuple[str, object]] = []
    for state in OutcomeState:
        if tally.counts[state.value]:
            rows.append((state.value, tally.counts[state.value]))
            if state is OutcomeState.CREATED and tally.deferred:
                rows.append(("  of which after a 503", tally.deferred))
    rows += [("retries", retries), ("elapsed", f"{elapsed:.1f} s"), ("rows/s", f"{per_second:.1f}")]
    done = "all succeeded" if tally.ok else f"{tally.problem_count} not done"
    header = f"{printable(label)}: {tally.rows} rows, {done}"
    return "\n".join([header, *("  " + line for line in format_table(("state", "rows"), rows, numeric=1))])


def format_problems(tally: Tally, out: Path | None) -> str:
    """The first rows that did not succeed, one line each, and where to find the rest."""
    lines = [
        printable(f"row {o.index} ({o.key}): {o.state.value}: {describe_error(o) or 'no detail'}")
        for o in tally.problems
    ]
    hidden = tally.problem_count - len(tally.problems)
    where = f"every row is in {printable(out)}" if out is not None else "pass --out PATH to get every row"
    if hidden > 0:
        lines.append(f"... and {hidden} more ({where})")
    return "\n".join(lines)
