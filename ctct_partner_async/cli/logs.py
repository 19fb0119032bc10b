"""``-v`` and ``-vv``: the SDK's log records on stderr, INFO or DEBUG and up.

The SDK logs through these loggers (``LOGGERS``), all under ``ctct_partner_async``, which is the one
the command attaches its handler to (the README's Observability section has the fields each line
carries in ``extra``):

- ``ctct_partner_async``: every retry (INFO), with the method, URL, what failed and the wait;
- ``ctct_partner_async.auth``: token requests and renewals (INFO), failed ones and a failing token
  cache (WARNING), a token taken from the cache (DEBUG);
- ``ctct_partner_async.bulk``: each job's summary (INFO, WARNING when rows failed or it stopped), an
  account index the journal could not store (WARNING);
- ``ctct_partner_async.shared``: Redis not answering and answering again (WARNING, INFO);
- ``ctct_partner_async.cli``: every response the command's client got (DEBUG): method, URL without
  its query, status, time and attempt;
- ``ctct_partner_async.notifications``: refused webhook deliveries (INFO), a state that could not be
  read and a JWKS that could not be refreshed (WARNING), a failing handler (ERROR);
- ``ctct_partner_async.telemetry``: OpenTelemetry failing under ``instrument`` (WARNING, once per kind).

No record holds a secret (the hooks' details never carry one). Each line passes through
:func:`printable`, so a server message in a record can't drive the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from .._hooks import ResponseDetails
from ._text import printable

__all__ = ["LOGGERS", "log_response", "logging_to_stderr", "verbosity", "verbosity_options"]

ROOT = "ctct_partner_async"
LOGGERS = (
    "ctct_partner_async",
    "ctct_partner_async.auth",
    "ctct_partner_async.bulk",
    "ctct_partner_async.shared",
    "ctct_partner_async.cli",
    "ctct_partner_async.notifications",
    "ctct_partner_async.telemetry",
)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
VERBOSE_HELP = (
    "log to stderr: -v the SDK's retries, token renewals and job summaries (INFO), -vv also every request "
    "(DEBUG); "
    f"loggers {', '.join(LOGGERS)}"
)

logger = logging.getLogger("ctct_partner_async.cli")


def verbosity_options(dest: str = "verbose") -> argparse.ArgumentParser:
    """A parent parser with ``-v``/``--verbose`` (repeatable), counted into ``dest``."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-v", "--verbose", action="count", default=0, dest=dest, help=VERBOSE_HELP)
    return parser


def verbosity(args: argparse.Namespace) -> int:
    """How many ``-v`` were given, before the command's name and after it."""
    return int(getattr(args, "verbose", 0) or 0) + int(getattr(args, "command_verbose", 0) or 0)


def log_response(details: ResponseDetails) -> None:
    """An ``on_response`` hook: one DEBUG line per response (or transport error)."""
    outcome = details.status if details.status is not None else type(details.exception).__name__
    logger.debug(
        "%s %s -> %s in %.3fs (attempt %d)",
        details.method,
        details.url,
        outcome,
        details.elapsed,
        details.attempt,
    )


class PrintableFormatter(logging.Formatter):
    """The standard formatter, with whatever a terminal would act on escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


@contextlib.contextmanager
def logging_to_stderr(count: int) -> Iterator[None]:
    """While in the block, the SDK's records at INFO (``count`` 1) or DEBUG (2 or more) go to stderr."""
    if count <= 0:
        yield
        return
    root = logging.getLogger(ROOT)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter(FORMAT))
    level = root.level
    root.setLevel(logging.INFO if count == 1 else logging.DEBUG)  # setLevel: the loggers' caches too
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
