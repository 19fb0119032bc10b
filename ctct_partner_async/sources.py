"""Reading bulk input files as a stream of rows: CSV (with a header) or JSON Lines, by extension.

Each record comes out as a ``dict`` or, when it can't be read, a ``BadRow`` saying why; nothing is held
in memory beyond the record being read, so a file of any size streams.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._rows import BadRow

__all__ = ["read_rows"]


def read_rows(path: str | Path) -> Iterator[dict[str, Any] | BadRow]:
    """Stream the rows of a ``.csv`` or ``.jsonl``/``.ndjson``/``.json`` file."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _csv_rows(path)
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        return _jsonl_rows(path)
    raise ValueError(f"{path}: unknown file type; use .csv or .jsonl")


def _csv_rows(path: Path) -> Iterator[dict[str, Any] | BadRow]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
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


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any] | BadRow]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                yield BadRow(f"line {number}: not valid JSON")
                continue
            yield value if isinstance(value, dict) else BadRow(f"line {number}: not a JSON object")
