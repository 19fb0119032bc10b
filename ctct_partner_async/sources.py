"""Reading bulk input files as a stream of rows: CSV (with a header), JSON Lines, or a JSON array.

The format is the file's suffix (``.csv``; ``.jsonl`` or ``.ndjson``; ``.json``) unless one is given.
Each record comes out as a ``dict`` or, when it can't be read, a ``BadRow`` saying why. CSV and JSON
Lines stream: nothing is held in memory beyond the record being read, so a file of any size works. A
``.json`` file is one document, read whole: an array of row objects, or one object (one row); a
``.json`` file holding one object per line is read as JSON Lines, as it always was.

A file that can't be read as its format at all raises ``ValueError`` naming the file: a JSON document
that isn't valid JSON or holds neither an array nor an object, a CSV header naming a column twice.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._rows import BadRow

__all__ = ["FORMATS", "format_for", "read_rows", "sniff_format"]

Rows = Iterator[dict[str, Any] | BadRow]
FORMATS = ("csv", "jsonl", "json")
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}


def format_for(path: str | Path) -> str:
    """The format a file's suffix names: ``csv``, ``jsonl`` or ``json``; ``ValueError`` for another."""
    try:
        return SUFFIXES[Path(path).suffix.lower()]
    except KeyError:
        raise ValueError(f"{path}: unknown file type; use .csv, .jsonl or .json") from None


def sniff_format(head: bytes) -> str:
    """The format of rows that begin with ``head``: ``json`` for ``[``, ``jsonl`` for ``{``, else ``csv``."""
    start = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if start.startswith(b"["):
        return "json"
    return "jsonl" if start.startswith(b"{") else "csv"


def read_rows(path: str | Path, *, file_format: str | None = None) -> Rows:
    """Stream the rows of a file: ``file_format`` (``csv``, ``jsonl``, ``json``), else by its suffix."""
    path = Path(path)
    kind = format_for(path) if file_format is None else file_format
    readers: dict[str, Callable[[Path], Rows]] = {"csv": _csv_rows, "jsonl": _jsonl_rows, "json": _json_rows}
    if kind not in readers:
        raise ValueError(f"unknown format {kind!r}; use one of {', '.join(FORMATS)}")
    return readers[kind](path)


def _header(path: Path, reader: Any) -> list[str] | None:
    """The first record with a non-blank cell, stripped; ``None`` for a file without one."""
    for record in reader:
        if any(cell.strip() for cell in record):
            header = [name.strip() for name in record]
            twice = sorted({name for name in header if header.count(name) > 1})
            if twice:
                raise ValueError(f"{path}: the header names {', '.join(map(repr, twice))} more than once")
            return header
    return None


def _csv_rows(path: Path) -> Rows:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = _header(path, reader)
        except csv.Error as exc:
            raise ValueError(f"{path}: malformed CSV header: {exc}") from None
        if header is None:
            return
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield BadRow(f"malformed CSV near line {reader.line_num}: {exc}")
                continue  # the reader resumes at the next line
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                yield BadRow(f"line {reader.line_num}: {len(record)} fields, the header has {len(header)}")
                continue
            yield dict(zip(header, record, strict=True))


def _object_lines(lines: Iterator[str]) -> Rows:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield BadRow(f"line {number}: not valid JSON")
            continue
        yield value if isinstance(value, dict) else BadRow(f"line {number}: not a JSON object")


def _jsonl_rows(path: Path) -> Rows:
    with path.open(encoding="utf-8-sig") as handle:
        yield from _object_lines(handle)


def _json_kind(value: object) -> str:
    if isinstance(value, str):
        return "a string"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return "a number"


def _json_rows(path: Path) -> Rows:
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):  # one object per line
            yield from _object_lines(iter(text.split("\n")))
            return
        where = f"line {exc.lineno} column {exc.colno}"
        raise ValueError(
            f"{path}: not valid JSON ({exc.msg}, {where}); a .json file holds an array of row objects "
            "(for one object per line, use .jsonl)"
        ) from None
    if isinstance(document, dict):
        yield document
    elif isinstance(document, list):
        for number, item in enumerate(document, 1):
            yield item if isinstance(item, dict) else BadRow(f"item {number} of the array: not a JSON object")
    else:
        kind = _json_kind(document)
        message = f"{path}: a .json file holds an array of row objects (or one object), not {kind}"
        raise ValueError(message)  # noqa: TRY004 - the file's content is wrong, not an argument's type
