"""Progress of a bulk command on stderr: one updating line on a terminal, plain lines otherwise.

The formatting is pure (numbers in, a line out); :class:`Progress` only decides when to write. The
label is :func:`printable`: the line can't carry an escape sequence other than its own redraw.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from ._text import printable

__all__ = ["Progress", "format_duration", "format_line", "format_progress", "rate"]

BAR_WIDTH = 24
TTY_INTERVAL = 0.1
PLAIN_INTERVAL = 5.0


def rate(done: int, elapsed: float) -> float:
    """Rows per second so far (0 before any time has passed)."""
    return done / elapsed if elapsed > 0 else 0.0


def format_duration(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``); ``--:--`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--"
    minutes, secs = divmod(round(max(seconds, 0.0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _eta(done: int, total: int, per_second: float) -> float | None:
    if done >= total:
        return 0.0
    return (total - done) / per_second if per_second > 0 else None


def format_progress(label: str, done: int, total: int, elapsed: float) -> str:
    """The terminal line: ``provision [#####.....]  412/1000  41%  38.2 rows/s  ETA 0:15``."""
    fraction = min(done / total, 1.0) if total else 1.0
    filled = int(fraction * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    per_second = rate(done, elapsed)
    eta = format_duration(_eta(done, total, per_second))
    width = len(str(total))
    label = printable(label)
    return f"{label} [{bar}] {done:>{width}}/{total}  {fraction:4.0%}  {per_second:6.1f} rows/s  ETA {eta}"


def format_line(label: str, done: int, total: int, elapsed: float) -> str:
    """The plain line for logs: ``provision: 412/1000 rows (41%), 38.2 rows/s, ETA 0:15``."""
    fraction = min(done / total, 1.0) if total else 1.0
    per_second = rate(done, elapsed)
    eta = format_duration(_eta(done, total, per_second))
    return f"{printable(label)}: {done}/{total} rows ({fraction:.0%}), {per_second:.1f} rows/s, ETA {eta}"


class Progress:
    """Writes the progress of ``total`` rows to ``stream`` (stderr by default).

    On a terminal the line is redrawn at most every 0.1 s; otherwise a plain line is written every
    ``every`` rows (a tenth of the total by default) or every 5 seconds, whichever comes first.
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        enabled: bool = True,
        every: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._enabled = enabled and total > 0
        self._every = every or max(1, total // 10)
        self._clock = clock
        self._started = clock()
        self._last_time = -float("inf") if self._tty else self._started
        self._last_done = 0

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def advance(self, rows: int = 1) -> None:
        """Count finished rows and redraw if it is time to."""
        self.done += rows
        if not self._enabled:
            return
        now = self._clock()
        if self._tty:
            if now - self._last_time >= TTY_INTERVAL or self.done >= self.total:
                self._draw(now)
        elif self.done - self._last_done >= self._every or now - self._last_time >= PLAIN_INTERVAL:
            self._write_plain(now)

    def finish(self) -> None:
        """Leave the final state on screen (a terminal line ends with a newline)."""
        if not self._enabled:
            return
        now = self._clock()
        if self._tty:
            self._draw(now)
            self._stream.write("\n")
        elif self.done != self._last_done:
            self._write_plain(now)
        self._stream.flush()

    def _draw(self, now: float) -> None:
        line = format_progress(self.label, self.done, self.total, now - self._started)
        self._stream.write("\r" + line + "\x1b[K")
        self._stream.flush()
        self._last_time = now

    def _write_plain(self, now: float) -> None:
        self._stream.write(format_line(self.label, self.done, self.total, now - self._started) + "\n")
        self._stream.flush()
        self._last_time, self._last_done = now, self.done
