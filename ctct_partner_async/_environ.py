"""Client settings from the environment: a ``CTCT_*`` variable for each setting a client is not passed.

One table (``Setting`` values) names every setting three ways: the keyword argument, the command line's
flag and the environment variable, so ``PartnerClient``, ``LegacyBillingClient`` and the CLI never spell
one differently. The rules, as openai, boto3 and stripe users expect them:

- an argument that is passed (anything but ``None``) wins, and the variable is not read at all;
- an empty variable counts as unset;
- a required setting that is neither passed nor set is a ``ValidationError`` naming both the argument
  and the variable (``api_key: is required (pass api_key= or set CTCT_API_KEY)``), every missing one
  at once; an argument passed empty is one too (``api_key: must not be empty``);
- a bad value read from a variable is a ``ValidationError`` whose field is the variable;
- no value ever appears in an error (most of these settings are secrets).

The v2 client reads ``CTCT_LEGACY_API_KEY`` and never falls back to ``CTCT_API_KEY``: the two keys come
from different developer portals, and the v2 key travels in the query string (proxy and server logs
keep URLs), so a fallback would put the v3 key where it was never meant to go, and turn a missing
setting into a 401 that names nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import attrs

from . import _errors as errors
from ._tokens import DEFAULT_TOKEN_URL

__all__ = [
    "CREDENTIALS",
    "DEFAULT_BASE_URL",
    "DEFAULT_DAILY_QUOTA",
    "DEFAULT_LEGACY_URL",
    "DEFAULT_RATE_LIMIT",
    "ENDPOINTS",
    "LEGACY_SETTINGS",
    "PARTNER_SETTINGS",
    "VARIABLES",
    "Environment",
    "Setting",
    "parse_daily_quota",
    "parse_rate_limit",
]

DEFAULT_BASE_URL = "https://api.cc.email/v3"
DEFAULT_LEGACY_URL = "https://api.constantcontact.com/v2"
DEFAULT_RATE_LIMIT = 4.0
DEFAULT_DAILY_QUOTA = 10_000
"""Requests a day an API key may make unless Constant Contact raised it (250,000)."""


@attrs.frozen
class Setting:
    """One client setting: its keyword ``argument``, environment ``variable``, the CLI's ``flag`` (empty
    where the CLI has none) and the ``default`` that applies when neither is given, as text."""

    argument: str
    variable: str
    flag: str = ""
    default: str = ""
    required: bool = False


API_KEY = Setting("api_key", "CTCT_API_KEY", "--api-key", required=True)
CLIENT_ID = Setting("client_id", "CTCT_CLIENT_ID", "--client-id", required=True)
CLIENT_SECRET = Setting("client_secret", "CTCT_CLIENT_SECRET", "--client-secret", required=True)
BASE_URL = Setting("base_url", "CTCT_BASE_URL", "--base-url", DEFAULT_BASE_URL)
TOKEN_URL = Setting("token_url", "CTCT_TOKEN_URL", "--token-url", DEFAULT_TOKEN_URL)
AUTHORIZATION_PREFIX = Setting("authorization_prefix", "CTCT_AUTHORIZATION_PREFIX", "--authorization-prefix")
RATE_LIMIT = Setting("rate_limit", "CTCT_RATE_LIMIT", "--rate-limit", f"{DEFAULT_RATE_LIMIT:g}")
DAILY_QUOTA = Setting("daily_quota", "CTCT_DAILY_QUOTA", "--daily-quota", f"{DEFAULT_DAILY_QUOTA}")
REDIS_URL = Setting("redis_url", "CTCT_REDIS_URL", "--redis-url")
REDIS_PREFIX = Setting("redis_prefix", "CTCT_REDIS_PREFIX", "--redis-prefix", "ctct")
LEGACY_USERNAME = Setting("username", "CTCT_LEGACY_USERNAME", required=True)
LEGACY_PASSWORD = Setting("password", "CTCT_LEGACY_PASSWORD", required=True)
LEGACY_API_KEY = Setting("api_key", "CTCT_LEGACY_API_KEY", required=True)
LEGACY_BASE_URL = Setting("base_url", "CTCT_LEGACY_BASE_URL", default=DEFAULT_LEGACY_URL)

PARTNER_SETTINGS = (
    API_KEY, CLIENT_ID, CLIENT_SECRET, BASE_URL, TOKEN_URL, AUTHORIZATION_PREFIX, RATE_LIMIT, DAILY_QUOTA,
    REDIS_URL, REDIS_PREFIX,
)  # fmt: skip
LEGACY_SETTINGS = (LEGACY_USERNAME, LEGACY_PASSWORD, LEGACY_API_KEY, LEGACY_BASE_URL, RATE_LIMIT)
VARIABLES = tuple(dict.fromkeys(s.variable for s in PARTNER_SETTINGS + LEGACY_SETTINGS))
"""Every variable a client reads, each once."""

# The CLI's tables (``cli.options``): setting -> (flag, variable), setting -> (flag, variable, default).
CREDENTIALS = {s.argument: (s.flag, s.variable) for s in (API_KEY, CLIENT_ID, CLIENT_SECRET)}
ENDPOINTS = {s.argument: (s.flag, s.variable, s.default) for s in (BASE_URL, TOKEN_URL)}

_RATE_RULE = "must be a positive number of requests per second, or 0 or none for no limit"


def parse_rate_limit(text: str, *, variable: str = RATE_LIMIT.variable) -> float | None:
    """Requests per second from ``text``: ``None`` (no limit) for ``0`` or ``none``; ``ValidationError``
    naming ``variable`` for anything else that isn't a positive, finite number."""
    text = text.strip()
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value == 0:
        return None
    if not 0 < value < math.inf:  # also refuses NaN
        raise errors.ValidationError([errors.FieldError(variable, _RATE_RULE)])
    return value


_QUOTA_RULE = "must be a whole number of requests a day, at least 1, or 0 or none when not known"


def parse_daily_quota(text: str, *, variable: str = DAILY_QUOTA.variable) -> int | None:
    """The API key's requests a day from ``text``: ``None`` (not known) for ``0`` or ``none``;
    ``ValidationError`` naming ``variable`` for anything else that isn't a positive whole number."""
    text = text.strip().replace("_", "").replace(",", "")
    if text.lower() == "none":
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise errors.ValidationError([errors.FieldError(variable, _QUOTA_RULE)])
    return int(text) or None


class Environment:
    """Reads the settings a client was not passed from ``environ`` (``os.environ`` when ``None``).

    ``value`` collects what is missing; ``check`` raises it all at once, so a caller reads every
    required setting first and then checks.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._problems: list[errors.FieldError] = []

    def variable(self, setting: Setting) -> str | None:
        """The setting's variable, or ``None`` if it is unset or empty."""
        return self.environ.get(setting.variable) or None

    def value(self, setting: Setting, given: str | None) -> str:
        """``given`` if passed, else the variable if set, else the default (noted as missing if required)."""
        if given is not None:
            if setting.required and not given:
                self._problems.append(errors.FieldError(setting.argument, "must not be empty"))
            return given
        found = self.variable(setting)
        if found is not None:
            return found
        if setting.required:
            rule = f"is required (pass {setting.argument}= or set {setting.variable})"
            self._problems.append(errors.FieldError(setting.argument, rule))
        return setting.default

    def check(self) -> None:
        """``ValidationError`` listing every required setting found missing so far."""
        if self._problems:
            raise errors.ValidationError(self._problems)

    def url(self, setting: Setting, given: str | None) -> tuple[str, str]:
        """The URL setting's value and the name to blame for a bad one: the variable if it came from there."""
        if given is None and self.variable(setting) is not None:
            return self.value(setting, None), setting.variable
        return self.value(setting, given), setting.argument

    def prefix(self, given: str | None) -> str:
        """The authorization prefix; one read from the variable gets one space after it (``Bearer ``)."""
        if given is not None:
            return given
        found = self.variable(AUTHORIZATION_PREFIX)
        return found.strip() + " " if found is not None and found.strip() else AUTHORIZATION_PREFIX.default

    def optional(self, setting: Setting, given: str | None) -> str | None:
        """``given`` if passed, else the variable if set, else ``None`` (an optional setting, no default)."""
        return given if given is not None else self.variable(setting)

    def rate_limit(self) -> float | None:
        """``CTCT_RATE_LIMIT`` (for a client not passed ``rate_limit``), else the default of 4 a second."""
        found = self.variable(RATE_LIMIT)
        return DEFAULT_RATE_LIMIT if found is None else parse_rate_limit(found)

    def daily_quota(self) -> int | None:
        """``CTCT_DAILY_QUOTA`` (for a client not passed ``daily_quota``), else the default of 10,000."""
        found = self.variable(DAILY_QUOTA)
        return DEFAULT_DAILY_QUOTA if found is None else parse_daily_quota(found)
