"""What happened: counters and a bounded request log. Nothing secret ever goes in.

A log entry holds the time (epoch seconds by the sandbox clock), method, path (with any ``api_key``
query parameter removed), status (``None`` when the connection was dropped), operation name, the first
``error_key`` of an error answer, the injected fault if any, and for creates the ``login_name``. Headers,
passwords, client secrets and API keys are never recorded.
"""

from __future__ import annotations

from collections import Counter, deque
from urllib.parse import parse_qsl, urlencode

LogEntry = dict[str, object]
TOKEN_OPERATION = "token"  # noqa: S105 - an operation name, not a secret


def redact_path(path: str, query_string: str) -> str:
    """``path?query`` with any ``api_key`` parameter left out."""
    if not query_string:
        return path
    if "api_key" not in query_string:
        return f"{path}?{query_string}"
    kept = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if k != "api_key"]
    return f"{path}?{urlencode(kept)}" if kept else path


class Ledger:
    """Counters and the request log of one sandbox."""

    def __init__(self, log_size: int) -> None:
        self._log: deque[LogEntry] = deque(maxlen=log_size)
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.token_statuses: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def record(self, entry: LogEntry) -> None:
        """Log one answered (or dropped) request and count it."""
        self._log.append(entry)
        status = entry["status"]
        operation = str(entry["operation"])
        statuses = self.token_statuses if operation == TOKEN_OPERATION else self.statuses
        statuses["dropped" if status is None else str(status)] += 1
        self.operations[operation] += 1
        fault = entry["fault"]
        if fault is not None:
            self.faults[str(fault)] += 1

    def count(self, name: str, amount: int = 1) -> None:
        """Bump a named counter."""
        self.counts[name] += amount

    def entries(self) -> list[LogEntry]:
        """A copy of the request log, oldest first."""
        return [dict(entry) for entry in self._log]

    def clear(self) -> None:
        """Forget everything."""
        self._log.clear()
        for counter in (self.counts, self.statuses, self.token_statuses, self.operations, self.faults):
            counter.clear()
