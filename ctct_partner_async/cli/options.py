"""Command-line options shared by the commands: credentials and endpoints (flag or environment), limits.

A missing credential or a bad setting is a :class:`UsageError` (exit status 2) naming the flag and the
environment variable. Secret values are never echoed back in a message.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from typing import Any

from .._auth import TokenSettings
from .._client import PartnerClient
from .._environ import CREDENTIALS, ENDPOINTS, parse_daily_quota
from .._errors import ValidationError
from .._models import PlanType, WebhookTopic
from ..sources import FORMATS
from .logs import log_response, verbosity_options

__all__ = [
    "ENVIRONMENT",
    "UsageError",
    "bulk_options",
    "connection_options",
    "daily_quota",
    "make_client",
    "plan_type_name",
    "positive_int",
    "rate_limit",
    "topic",
]

# the Python API's table of settings (``_environ``): setting -> (flag, variable[, default])
ENVIRONMENT = [var for _, var in CREDENTIALS.values()] + [var for _, var, _ in ENDPOINTS.values()]


class UsageError(Exception):
    """The command was called wrongly: a missing credential, a bad setting, an unreadable file."""


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, 0 or more, got {text!r}")
    return value


def rate_limit(text: str) -> float | None:
    """An argparse type: requests per second, ``0`` for no client-side limit (``None``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of requests per second, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or a positive number, got {text!r}")
    return value or None


def daily_quota(text: str) -> int | None:
    """An argparse type: requests a day, ``0`` when not known (``None``)."""
    try:
        return parse_daily_quota(text, variable="--daily-quota")
    except ValidationError:
        raise argparse.ArgumentTypeError(f"expected a whole number of requests a day, got {text!r}") from None


def topic(text: str) -> int:
    """An argparse type: a webhook topic by number (1-4) or name (``billing-tier-upgrade``)."""
    try:
        if text.strip().isdigit():
            return int(WebhookTopic(int(text)))
        return int(WebhookTopic[text.strip().upper().replace("-", "_")])
    except (KeyError, ValueError):
        names = ", ".join(t.name.lower().replace("_", "-") for t in WebhookTopic)
        numbers = f"{min(WebhookTopic)}-{max(WebhookTopic)}"
        raise argparse.ArgumentTypeError(f"unknown topic {text!r}; use {numbers} or one of {names}") from None


def plan_type_name(text: str) -> str:
    """An argparse type: a plan type to allow besides the known ones (upper-cased); never ``TRIAL``."""
    name = text.strip().upper()
    if not name:
        raise argparse.ArgumentTypeError("expected a plan type name")
    if name == PlanType.TRIAL:
        raise argparse.ArgumentTypeError("TRIAL can't be allowed: no account can be moved (back) to TRIAL")
    return name


def connection_options() -> argparse.ArgumentParser:
    """A parent parser: credentials, endpoints, the client-side rate limit, and ``-v``."""
    parser = argparse.ArgumentParser(
        add_help=False, allow_abbrev=False, parents=[verbosity_options("command_verbose")]
    )
    group = parser.add_argument_group("credentials and endpoints (flags override the environment)")
    for name, (flag, var) in CREDENTIALS.items():
        group.add_argument(flag, dest=name, metavar=name.upper(), help=f"default: ${var}")
    for name, (flag, var, default) in ENDPOINTS.items():
        group.add_argument(flag, dest=name, metavar="URL", help=f"default: ${var}, else {default}")
    group.add_argument(
        "--authorization-prefix",
        default=argparse.SUPPRESS,
        metavar="TEXT",
        help='put before the JWT (default: $CTCT_AUTHORIZATION_PREFIX, else none; "Bearer " for the newer '
        "token URL)",
    )
    group.add_argument(
        "--rate-limit",
        type=rate_limit,
        default=argparse.SUPPRESS,
        metavar="N",
        help="requests per second sent by this command (default: $CTCT_RATE_LIMIT, else 4; 0: no limit)",
    )
    group.add_argument(
        "--daily-quota",
        type=daily_quota,
        default=argparse.SUPPRESS,
        metavar="N",
        help="the API key's requests a day, counted before a job starts and stopped at when spent "
        "(default: $CTCT_DAILY_QUOTA, else 10000; 250000 if Constant Contact raised it; 0: not known)",
    )
    group.add_argument(
        "--redis-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="share the API key's rate, daily quota and token with every process on it through this "
        "Redis (default: $CTCT_REDIS_URL, else none; needs the [redis] extra)",
    )
    group.add_argument(
        "--redis-prefix",
        default=argparse.SUPPRESS,
        metavar="TEXT",
        help="where the shared state lives in Redis (default: $CTCT_REDIS_PREFIX, else ctct)",
    )
    group.add_argument(
        "--token-jitter",
        type=seconds,
        default=TokenSettings().first_request_jitter,
        metavar="SECONDS",
        help="wait a random 0 to SECONDS before the first token request, so workers started together on "
        "one client id don't all ask at once (default %(default)s; 0 for a single worker)",
    )
    return parser


def bulk_options() -> argparse.ArgumentParser:
    """A parent parser: the input file, journal, results, concurrency and progress of a bulk command."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(
        "file",
        metavar="FILE",
        help="rows as .csv (with a header), .jsonl (an object per line) or .json (an array of objects); "
        "- reads stdin; columns are the API's field names",
    )
    group = parser.add_argument_group("bulk job")
    group.add_argument(
        "--format",
        choices=FORMATS,
        help="how FILE is written (default: its suffix; for stdin, sniffed: [ json, { jsonl, else csv)",
    )
    group.add_argument(
        "--ignore-unknown-columns",
        action="store_true",
        help="read a file with columns that name no field (default: a usage error that lists them)",
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="check every row and print the summary (valid, invalid); send nothing, need no credentials",
    )
    group.add_argument(
        "--journal",
        metavar="PATH",
        help="SQLite journal: run again with the same journal to resume without duplicates "
        "(default: none, kept in memory)",
    )
    group.add_argument(
        "--out",
        metavar="PATH",
        help="write a line per row (index, key, state, encoded_account_id, error): CSV when PATH ends "
        "in .csv, else JSON Lines",
    )
    group.add_argument(
        "--concurrency",
        type=positive_int,
        default=16,
        metavar="N",
        help="rows in flight at once (default 16)",
    )
    group.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    return parser


def client_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """``PartnerClient`` settings from the flags, else the environment; ``UsageError`` if one is missing."""
    settings: dict[str, Any] = {}
    missing = []
    for name, (flag, var) in CREDENTIALS.items():
        settings[name] = getattr(args, name) or environ.get(var)
        if not settings[name]:
            missing.append(f"{flag} (or ${var})")
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")
    for name, (_, var, default) in ENDPOINTS.items():
        settings[name] = getattr(args, name) or environ.get(var) or default
    # when not given, the client reads CTCT_* itself
    for name in ("authorization_prefix", "rate_limit", "daily_quota", "redis_url", "redis_prefix"):
        if hasattr(args, name):
            settings[name] = getattr(args, name)
    settings["environ"] = environ
    settings["token_settings"] = TokenSettings(first_request_jitter=args.token_jitter)
    return settings


def make_client(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None, **extra: Any
) -> PartnerClient:
    """A ``PartnerClient`` for the command; ``UsageError`` on a missing or bad setting."""
    settings = client_settings(args, os.environ if environ is None else environ)
    try:
        return PartnerClient(**{"on_response": log_response, **settings, **extra})
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
