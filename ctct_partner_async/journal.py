"""The bulk journal: one SQLite row per input row, so a killed job can resume without a blind resend.

Each row is written before its request is sent (state ``in_flight``) and again when it ends. A job
started again with the same journal skips rows that finished, reconciles the ones that were in flight
or pending (never a blind resend), retries the ones that failed and re-checks the invalid ones.

Only the row's key, state, account id, error message and attempt count are stored: never a password, a
token or an API key. WAL mode without per-commit fsync keeps every commit safe against SIGKILL (the
data is in the OS before ``commit`` returns) at a fraction of the cost of a synchronous commit.
"""

from __future__ import annotations

import os
import sqlite3
import time

import attrs

__all__ = ["Entry", "Journal", "NullJournal"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    job TEXT NOT NULL,
    key TEXT NOT NULL,
    row_index INTEGER NOT NULL,
    state TEXT NOT NULL,
    account_id TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (job, key)
)
"""
COLUMNS = "key, row_index, state, account_id, error, attempts"
FINISHED = frozenset({"created", "reconciled", "updated", "canceled"})
UNSETTLED = frozenset({"in_flight", "pending"})


@attrs.frozen
class Entry:
    """What the journal holds for one row."""

    key: str
    row_index: int
    state: str
    account_id: str | None
    error: str | None
    attempts: int

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def unsettled(self) -> bool:
        """The row's request may have been received: it must be reconciled, never blindly resent."""
        return self.state in UNSETTLED


class Journal:
    """A job's journal in SQLite (``path`` ``":memory:"`` keeps it for this process only)."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, job: str = "job") -> None:
        self.path = str(path)
        self.job = job
        self._db = sqlite3.connect(self.path, isolation_level=None)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, key: str) -> Entry | None:
        row = self._db.execute(
            f"SELECT {COLUMNS} FROM rows WHERE job = ? AND key = ?",  # noqa: S608 (a constant)
            (self.job, key),
        ).fetchone()
        return Entry(*row) if row else None

    def record(
        self,
        key: str,
        row_index: int,
        state: str,
        *,
        account_id: str | None = None,
        error: str | None = None,
        attempt: bool = False,
    ) -> None:
        """Write the row's state now (one autocommitted statement); ``attempt`` counts a request sent."""
        self._db.execute(
            """INSERT INTO rows (job, key, row_index, state, account_id, error, attempts, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (job, key) DO UPDATE SET
                 row_index = excluded.row_index, state = excluded.state,
                 account_id = COALESCE(excluded.account_id, rows.account_id), error = excluded.error,
                 attempts = rows.attempts + excluded.attempts, updated_at = excluded.updated_at""",
            (self.job, key, row_index, state, account_id, error, int(attempt), time.time()),
        )

    def entries(self) -> list[Entry]:
        """Every row of this job, in input order."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM rows WHERE job = ? ORDER BY row_index",  # noqa: S608 (a constant)
            (self.job,),
        ).fetchall()
        return [Entry(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many rows of this job are in each state."""
        rows = self._db.execute("SELECT state, COUNT(*) FROM rows WHERE job = ? GROUP BY state", (self.job,))
        return dict(rows.fetchall())


class NullJournal:
    """No journal: nothing remembered, so memory stays flat however many rows stream through."""

    def get(self, key: str) -> Entry | None:
        return None

    def record(
        self,
        key: str,
        row_index: int,
        state: str,
        *,
        account_id: str | None = None,
        error: str | None = None,
        attempt: bool = False,
    ) -> None:
        pass
