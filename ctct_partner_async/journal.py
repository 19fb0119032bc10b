"""The bulk journal: one SQLite row per input row, so a killed job can be run again without a resend.

States, and what a rerun with the same journal does with each:

``queued``
    The runner took the row; its request has not been handed to the transport. Done afresh: a 409 for
    it is a real conflict.
``sent``
    A create whose request was handed to the transport (written *before* the bytes leave), so the API
    may have received it. It is sent again as "previously attempted": a 409 is then reconciled against
    the account list. (Plan changes and cancellations are simply done again, so they skip this state.)
``pending``
    The API answered 503: it stored the request and creates the account later. Never sent again: a
    rerun looks for the account in the list.
``unsettled``
    The outcome could not be known yet (the list lags, a sweep failed or was cut off); ``error`` says
    why. A rerun settles it as ``sent``. Never reported as ``failed``: the account may well exist.
``created``, ``reconciled``, ``adopted``, ``updated``, ``canceled``
    Finished: skipped by a rerun, and never overwritten by a later failure.
``failed``
    The API refused the row for sure; a rerun tries it again.

A state that says the request may have been received (``sent``, ``pending``, ``unsettled``) is never
downgraded to ``queued``. Only the row's key, state, account id, error message and attempt count are
stored: never a password, a token or an API key. WAL mode without per-commit fsync keeps every commit
safe against SIGKILL (the data is in the OS before ``commit`` returns) at a fraction of the cost of a
synchronous commit.

Rows are keyed by login name (lower-cased, as the API compares them) or by account id.

The journal also keeps the reconciler's index of the account list (each account's id, user name and
organization, and the href of the list's tail; no secret), so a rerun or a later job with the same
journal starts warm: it reads the list's tail, not the whole list. ``ctct-partner accounts sync`` builds
or refreshes it, ``accounts list --from-journal`` reads it.

One journal, one writer: a file journal is locked for as long as it is open (an OS lock on
``<real path>.lock``, which names the holder's pid and host). A second ``Journal`` on the same file raises
``JournalLockedError`` naming the holder; the operating system frees the lock when its holder dies,
even by ``kill -9``, so the next run simply takes it over.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import sys
import time
from typing import IO

import attrs

from ._models import AccountSummary

__all__ = ["Entry", "Journal", "JournalError", "JournalLockedError", "NullJournal"]

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
INDEX_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS accounts (encoded_account_id TEXT PRIMARY KEY, site_owner_name TEXT, "
    "organization_name TEXT)",
    "CREATE TABLE IF NOT EXISTS list_state (name TEXT PRIMARY KEY, value TEXT)",
)
COLUMNS = "key, row_index, state, account_id, error, attempts"
FINISHED = frozenset({"created", "reconciled", "adopted", "updated", "canceled"})
MAY_HAVE_BEEN_RECEIVED = frozenset(
    {"sent", "pending", "unsettled", "in_flight"}
)  # in_flight: journals of 0.1
_QUOTED_FINISHED = ", ".join(f"'{s}'" for s in sorted(FINISHED))
_QUOTED_RECEIVED = ", ".join(f"'{s}'" for s in sorted(MAY_HAVE_BEEN_RECEIVED))
UPSERT = f"""
INSERT INTO rows (job, key, row_index, state, account_id, error, attempts, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job, key) DO UPDATE SET
  row_index = excluded.row_index, state = excluded.state,
  account_id = COALESCE(excluded.account_id, rows.account_id), error = excluded.error,
  attempts = rows.attempts + excluded.attempts, updated_at = excluded.updated_at
WHERE rows.state NOT IN ({_QUOTED_FINISHED})
  AND NOT (excluded.state = 'queued' AND rows.state IN ({_QUOTED_RECEIVED}))
"""  # noqa: S608 (constants only)


class JournalError(Exception):
    """The journal could not be read or written (a full disk, a broken file): the job cannot go on safely.

    Not a ``CtctError``: it is never one row's failure. The rows recorded so far stay recorded.
    """


class JournalLockedError(JournalError):
    """Another run holds the journal (``holder`` says which process, as far as it wrote it)."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(
            f"{path} is in use by another run ({holder}); wait for it to end or use another journal"
        )
        self.path = path
        self.holder = holder


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
    def may_have_been_received(self) -> bool:
        """The row's request may have reached the API: it must be reconciled, never blindly resent."""
        return self.state in MAY_HAVE_BEEN_RECEIVED


class Journal:
    """A job's journal in SQLite (``path`` ``":memory:"`` keeps it for this process only, unlocked).

    ``JournalLockedError`` if another run holds the file; ``JournalError`` if it can't be opened.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, job: str = "job") -> None:
        self.path = str(path)
        self.job = job
        self._lock: IO[str] | None = None
        if self.path != ":memory:":  # the lock follows the file, however it is named (a symlink too)
            self._lock = _take_lock(os.path.realpath(self.path) + ".lock", self.path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            for statement in INDEX_SCHEMA:
                self._db.execute(statement)
        except sqlite3.Error as exc:
            self._release()
            raise JournalError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor frees the flock
            self._lock = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get(self, key: str) -> Entry | None:
        try:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM rows WHERE job = ? AND key = ?",  # noqa: S608 (a constant)
                (self.job, key),
            ).fetchone()
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: reading the journal failed: {exc}") from None
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
        """Write the row's state now (one autocommitted statement); ``attempt`` counts a request sent.

        A finished state is kept; ``queued`` never replaces a state whose request may have been received.
        """
        try:
            self._db.execute(
                UPSERT, (self.job, key, row_index, state, account_id, error, int(attempt), time.time())
            )
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: writing the journal failed: {exc}") from None

    def entries(self) -> list[Entry]:
        """Every row of this job, in input order."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM rows WHERE job = ? ORDER BY row_index",  # noqa: S608 (a constant)
            (self.job,),
        ).fetchall()
        return [Entry(*row) for row in rows]

    def account_index(self, owner: str | None) -> tuple[list[AccountSummary], str | None]:
        """The account list as stored by the last job or sync for ``owner`` (a fingerprint of the API
        key and base URL whose list it is; ``None``: whoever's is stored): its accounts, and its tail's
        href. Nothing (and ``None``: the next lookup reads the whole list) if none is stored, or another
        key's is."""
        try:
            stored = self._db.execute("SELECT value FROM list_state WHERE name = 'owner'").fetchone()
            if owner is not None and (stored is None or stored[0] != owner):
                return [], None
            rows = self._db.execute(
                "SELECT encoded_account_id, site_owner_name, organization_name FROM accounts ORDER BY rowid"
            ).fetchall()
            tail = self._db.execute("SELECT value FROM list_state WHERE name = 'tail'").fetchone()
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: reading the account index failed: {exc}") from None
        accounts = [
            AccountSummary(encoded_account_id=i, site_owner_name=o, organization_name=g) for i, o, g in rows
        ]
        return accounts, tail[0] if tail else None

    def save_account_index(self, accounts: list[AccountSummary], tail: str | None, owner: str) -> None:
        """Store the index (``accounts`` added to those stored, by id) and its ``tail``, in one go."""
        rows = [(a.encoded_account_id, a.site_owner_name, a.organization_name) for a in accounts]
        db = self._db
        try:
            db.execute("BEGIN")  # one transaction: a crash keeps the old index or the new one
            try:
                stored = db.execute("SELECT value FROM list_state WHERE name = 'owner'").fetchone()
                if stored is None or stored[0] != owner:  # another key's list: replaced, never mixed
                    db.execute("DELETE FROM accounts")
                    db.execute("DELETE FROM list_state")
                    db.execute("INSERT INTO list_state VALUES ('owner', ?)", (owner,))
                db.executemany("INSERT OR REPLACE INTO accounts VALUES (?, ?, ?)", rows)
                if tail is not None:
                    db.execute("INSERT OR REPLACE INTO list_state VALUES ('tail', ?)", (tail,))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: writing the account index failed: {exc}") from None

    def counts(self) -> dict[str, int]:
        """How many rows of this job are in each state."""
        rows = self._db.execute("SELECT state, COUNT(*) FROM rows WHERE job = ? GROUP BY state", (self.job,))
        return dict(rows.fetchall())


def _take_lock(lock_path: str, path: str) -> IO[str]:
    """The open lock file, locked exclusively, with this process named in it."""
    try:
        handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 (held open while the journal is)
    except OSError as exc:
        raise JournalError(f"{path}: cannot create its lock file: {exc.strerror or exc}") from None
    try:
        _lock_exclusively(handle)
    except OSError:
        handle.seek(0)
        holder = handle.read(200).strip() or "a process that has not written its name yet"
        handle.close()
        raise JournalLockedError(path, holder) from None
    with contextlib.suppress(OSError):  # naming the holder is a courtesy; the OS lock is the lock
        handle.seek(0)
        handle.truncate()
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {since}")
        handle.flush()
    return handle


def _lock_exclusively(handle: IO[str]) -> None:
    """An exclusive, non-blocking OS lock on ``handle`` (``OSError`` if another process holds it)."""
    if sys.platform == "win32":  # pragma: no cover - POSIX CI
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


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
