"""The input of a bulk command, checked before anything is sent or written.

``FILE`` is a path, or ``-`` for stdin. The format is ``--format``, else the file's suffix; stdin's is
sniffed from its first bytes (``[``: a JSON array, ``{``: JSON Lines, else CSV). Stdin, and a path
that is not a regular file (``<(...)``, a FIFO), is copied once to a temporary file, since a job reads
its input twice: once to count and check it, once to run it.

Before a job starts, each of these is a :class:`UsageError` (exit status 2) and nothing is written:
``--out`` or ``--journal`` naming the input (the same file, through a symlink or a hard link too),
``--out`` and ``--journal`` naming one file, an input that can't be read, and a column that names no
field of the job (listed, each with the field it probably meant), unless ``--ignore-unknown-columns``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import attrs

from .._rows import CANCELLATION_FIELDS, NEW_ACCOUNT_FIELDS, PLAN_CHANGE_FIELDS, unknown_fields
from ..sources import Rows, format_for, read_rows, sniff_format
from .options import UsageError

__all__ = ["FIELDS", "Source", "Survey", "check_columns", "check_outputs", "open_source", "survey"]

FIELDS = {"provision": NEW_ACCOUNT_FIELDS, "plans": PLAN_CHANGE_FIELDS, "cancel": CANCELLATION_FIELDS}
SNIFF_BYTES = 4096
Identity = tuple[int, int]


@attrs.frozen
class Source:
    """The rows of a bulk command: the file read, its format, its name in messages, and the identity
    (device, inode) of what the user named, if it is a regular file."""

    path: Path
    file_format: str
    label: str
    identity: Identity | None

    def rows(self) -> Rows:
        return read_rows(self.path, file_format=self.file_format)


@attrs.frozen
class Survey:
    """What a first pass over the input found: how many records, and every column name (in order)."""

    count: int
    columns: tuple[str, ...]


def _identity(status: os.stat_result) -> Identity:
    return status.st_dev, status.st_ino


def _spool(stream: BinaryIO, stack: contextlib.ExitStack) -> Path:
    """A copy of ``stream`` in a temporary file that lives as long as ``stack``."""
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ctct-partner-")))
    path = directory / "rows"
    with path.open("wb") as handle:
        shutil.copyfileobj(stream, handle)
    return path


def _sniffed(path: Path) -> str:
    with path.open("rb") as handle:
        return sniff_format(handle.read(SNIFF_BYTES))


def _stdin_source(file_format: str | None, stack: contextlib.ExitStack) -> Source:
    identity = None
    with contextlib.suppress(OSError, ValueError):  # no descriptor (a test's stream), or a closed one
        status = os.fstat(sys.stdin.fileno())
        identity = _identity(status) if stat.S_ISREG(status.st_mode) else None
    if sys.stdin.isatty():
        print("reading rows from stdin (end with Ctrl-D)", file=sys.stderr, flush=True)
    try:
        path = _spool(sys.stdin.buffer, stack)
    except OSError as exc:
        raise UsageError(f"stdin: {exc.strerror or exc}") from None
    return Source(path, file_format or _sniffed(path), "stdin", identity)


def open_source(name: str, file_format: str | None, stack: contextlib.ExitStack) -> Source:
    """The input ``name`` (``-``: stdin) in ``file_format``, else by its suffix; ``UsageError`` if it is
    missing, a directory, or of an unknown type."""
    if name == "-":
        return _stdin_source(file_format, stack)
    path = Path(name)
    try:
        kind = file_format or format_for(path)
    except ValueError as exc:
        raise UsageError(f"{exc}, or pass --format") from None
    try:
        status = path.stat()
        if stat.S_ISDIR(status.st_mode):
            raise UsageError(f"{path}: is a directory")
        if not stat.S_ISREG(status.st_mode):  # a pipe can be read once: keep a copy
            with path.open("rb") as stream:
                return Source(_spool(stream, stack), kind, name, None)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    return Source(path, kind, name, _identity(status))


def _existing(path: str) -> Identity | None:
    try:
        return _identity(os.stat(path))
    except (OSError, ValueError):  # not there (yet), or not a path at all
        return None


def _same_output(out: str, journal: str) -> bool:
    identities = _existing(out), _existing(journal)
    if None not in identities:
        return identities[0] == identities[1]
    return os.path.realpath(out) == os.path.realpath(journal)


def check_outputs(source: Source, outputs: dict[str, str | None]) -> None:
    """``UsageError`` if an output (``{"--out": path, ...}``) is the input file, or two are one file."""
    named = {flag: path for flag, path in outputs.items() if path is not None}
    for flag, path in named.items():
        if source.identity is not None and _existing(path) == source.identity:
            raise UsageError(
                f"{flag} {path} is the input file {source.label}: it would be overwritten; "
                "write to another file"
            )
    flags = sorted(named)
    for i, first in enumerate(flags):
        for second in flags[i + 1 :]:
            if _same_output(named[first], named[second]):
                raise UsageError(f"{first} and {second} name the same file ({named[first]})")


def survey(source: Source) -> Survey:
    """Count the input's records and gather its column names; ``UsageError`` if it can't be read."""
    count = 0
    columns: dict[str, None] = {}
    try:
        for item in source.rows():
            count += 1
            if isinstance(item, dict):
                for name in item:
                    columns.setdefault(name)
    except UnicodeDecodeError:
        raise UsageError(f"{source.label}: not UTF-8 text") from None
    except ValueError as exc:
        raise UsageError(str(exc).replace(str(source.path), source.label)) from None
    except OSError as exc:
        raise UsageError(f"{source.label}: {exc.strerror or exc}") from None
    return Survey(count, tuple(columns))


def _shown(column: str) -> str:
    return column if column and column.strip() == column and "," not in column else repr(column)


def check_columns(job: str, source: Source, columns: Iterable[str], *, ignore: bool) -> list[str]:
    """The columns that name no field of ``job`` (they are not read); ``UsageError`` listing them, each
    with the field it probably meant, unless ``ignore``."""
    known = FIELDS[job]
    unknown = unknown_fields(columns, known)
    if unknown and not ignore:
        listed = ", ".join(
            _shown(name) + (f" (did you mean {guess}?)" if guess else "") for name, guess in unknown.items()
        )
        noun = "column" if len(unknown) == 1 else "columns"
        raise UsageError(
            f"{source.label}: unknown {noun} {listed}; {job} reads {', '.join(sorted(known))} "
            "(--ignore-unknown-columns reads the file without them)"
        )
    return list(unknown)
