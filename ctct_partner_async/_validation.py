"""The documented input rules, checked before anything is sent.

Each ``check_*`` function raises :class:`~ctct_partner_async._errors.ValidationError` listing every rule
the value breaks, each naming the field and the rule. Messages never quote the value, so a password
can't leak through them.

Where the vendor's sources disagree we keep the stricter rule and say so: passwords are 8..80 characters
(the spec; the older guide said 6) and may not contain spaces (the guide; the spec allows them).

Every text field is also checked for characters that have no place in it: a lone surrogate (it can't be
sent as UTF-8) and control characters (C0 U+0000..U+001F, DEL U+007F, C1 U+0080..U+009F), which end up
in a terminal, a log line or an HTTP header of a proxied call. Names, ids, codes, emails, URLs and
passwords allow none of them; the free-text fields (``opt_out_reason``, an operation's ``payload``) allow
tab, line feed and carriage return. A rule names the first such code point, except for a password.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import TypeGuard
from urllib.parse import urlsplit

from ._errors import FieldError, ValidationError
from ._models import (
    AccountOperation,
    Cancellation,
    NewAccount,
    PlanChange,
    PlanType,
    SsoUser,
    UnsubscribeRequest,
)

__all__ = [
    "cancellation_problems",
    "check_account_id",
    "check_cancellation",
    "check_hook_uri",
    "check_legacy_plan",
    "check_list_query",
    "check_new_account",
    "check_operation",
    "check_plan_change",
    "check_sso_user",
    "check_text",
    "check_topic_id",
    "check_unsubscribe",
    "is_loopback_host",
    "new_account_problems",
    "plan_change_problems",
]

Problems = Iterator[FieldError]

LOGIN_NAME = re.compile(r"[A-Za-z0-9\-_.+@]{6,50}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
COUNTRY = re.compile(r"[A-Za-z]{2,3}")
US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC "
    "ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR VI UM AA AE AP".split()
)
ALPHA3 = {"USA": "US", "CAN": "CA"}
CA_PROVINCES = frozenset("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())
BILLING_LOCALES = frozenset({"en_us", "en_gb"})
UPDATE_SOURCES = frozenset({"Account", "Contact", "System"})
ACCOUNT_TYPES = frozenset({"all", "managed", "unmanaged"})
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_\-]+")
PATH_PARAM = re.compile(r"\{([^{}]+)\}")
MAX_UNSUBSCRIBE = 500
MAX_HOOK_URI = 512
INT32_MAX = 2**31 - 1  # the spec's "format: int32" for plan_group_id, billing_day_of_month, reason_id
INT32_MIN = -(2**31)

# One precompiled pattern per rule.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, LF and CR allowed
SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_RULE = "must be valid Unicode text (it holds a lone surrogate)"
SECRET_FIELDS = frozenset({"password"})  # a rule about these never names a code point


def _raise_if(problems: Problems) -> None:
    found = list(problems)
    if found:
        raise ValidationError(found)


def _length(field: str, value: str | None, low: int, high: int) -> Problems:
    if value is not None and not low <= len(value) <= high:
        if low:
            yield FieldError(field, f"must be {low} to {high} characters")
        else:
            yield FieldError(field, f"must be at most {high} characters")


def _required(field: str, value: str | None) -> Problems:
    if value is None or not value.strip():
        yield FieldError(field, "is required")


def _chars(field: str, value: object, *, free_text: bool = False) -> list[FieldError]:
    """The character rules ``value`` breaks: control characters (tab and line breaks allowed in
    ``free_text``) and lone surrogates. Names at most the code point, never the value."""
    if not isinstance(value, str):
        return []
    problems = []
    found = (CONTROL_IN_TEXT if free_text else CONTROL).search(value)
    if found is not None:
        which = "" if field in SECRET_FIELDS else f" ({_code_point(found.group())})"
        kind = "control characters other than tab and line breaks" if free_text else "control characters"
        problems.append(FieldError(field, f"must not contain {kind}{which}"))
    if SURROGATE.search(value):
        problems.append(FieldError(field, SURROGATE_RULE))
    return problems


def _code_point(char: str) -> str:
    return f"U+{ord(char):04X}"


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int32(field: str, value: object) -> list[FieldError]:
    if value is None:
        return []
    if not _whole(value):
        return [FieldError(field, "must be a whole number")]
    if not INT32_MIN <= value <= INT32_MAX:
        return [FieldError(field, f"must be {INT32_MIN} to {INT32_MAX} (int32)")]
    return []


ACCOUNT_LENGTHS = (
    ("contact_email", 0, 80),
    ("contact_phone", 5, 25),
    ("organization_phone", 5, 25),
    ("organization_name", 1, 50),
    ("first_name", 2, 80),
    ("last_name", 2, 80),
    ("partner_account_id", 0, 80),
    ("external_id", 0, 255),
    ("external_provider", 0, 80),
)
WHITESPACE = re.compile(r"\s")
ACCOUNT_TEXT = (
    "contact_email", "login_name", "country_code", "state_code", "password", "contact_phone",
    "organization_name", "organization_phone", "time_zone_id", "website", "first_name", "last_name",
    "partner_account_id", "billing_locale", "external_id", "external_provider",
)  # fmt: skip  # every text field of NewAccount, in the order of the class


def new_account_problems(acct: NewAccount) -> list[FieldError]:
    """Every rule of account creation ``acct`` breaks (empty: it can be sent)."""
    # Straight-line appends rather than generators: this runs once per create, on the hot path.
    problems: list[FieldError] = []
    email, login, country = acct.contact_email, acct.login_name, acct.country_code
    if not email or not email.strip():
        problems.append(FieldError("contact_email", "is required"))
    elif not EMAIL.fullmatch(email):
        problems.append(FieldError("contact_email", "must be an email address"))
    if not login or not login.strip():
        problems.append(FieldError("login_name", "is required"))
    elif not LOGIN_NAME.fullmatch(login):
        problems.append(FieldError("login_name", "must be 6 to 50 characters of A-Z a-z 0-9 - _ . + @"))
    if not country or not country.strip():
        problems.append(FieldError("country_code", "is required"))
    elif not COUNTRY.fullmatch(country):
        problems.append(FieldError("country_code", "must be an ISO 3166-1 code (2 or 3 letters)"))
    country = (country or "").upper()
    problems.extend(_state_problems(ALPHA3.get(country, country), acct.state_code or ""))
    problems.extend(_password_problems(acct))
    if acct.website is not None and not acct.website.startswith(("http://", "https://")):
        problems.append(FieldError("website", "must start with http:// or https://"))
    if acct.billing_locale is not None and acct.billing_locale.lower() not in BILLING_LOCALES:
        problems.append(FieldError("billing_locale", "must be en_US or en_GB"))
    for name, low, high in ACCOUNT_LENGTHS:
        value = getattr(acct, name)
        if value is not None and not low <= len(value) <= high:
            problems.extend(_length(name, value, low, high))
    # One screen over every text field at once (None shows as "None"): isprintable() is False for every
    # character the rules refuse (and for a few harmless ones, such as a no-break space), and costs half a
    # regex search. Only then are the fields looked at one by one, each rule with its own pattern.
    if not (
        f"{email}{login}{acct.country_code}{acct.state_code}{acct.password}{acct.contact_phone}"
        f"{acct.organization_name}{acct.organization_phone}{acct.time_zone_id}{acct.website}"
        f"{acct.first_name}{acct.last_name}{acct.partner_account_id}{acct.billing_locale}"
        f"{acct.external_id}{acct.external_provider}"
    ).isprintable():
        for name in ACCOUNT_TEXT:
            problems.extend(_chars(name, getattr(acct, name)))
    return problems


def text_problems(value: object, path: str = "") -> Problems:
    """Text anywhere in ``value`` (a JSON-ready body or a row) that can't be sent as UTF-8: a lone
    surrogate, as a ``"\\ud800"`` escape in a JSON source gives. Not on the per-create path: a body
    that fails to encode is checked with it then, to name the field."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield FieldError(path or "body", "must be valid Unicode text (it holds a lone surrogate)")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from text_problems(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from text_problems(item, f"{path}[{i}]")


def check_text(value: object) -> None:
    """Raise ``ValidationError`` naming every field of ``value`` that holds a lone surrogate."""
    _raise_if(text_problems(value))


def _state_problems(country: str, state: str) -> list[FieldError]:
    known = US_STATES if country == "US" else CA_PROVINCES if country == "CA" else None
    if known is None:
        return []
    if not state:
        return [FieldError("state_code", f"is required when country_code is {country}")]
    if state.upper() not in known:
        return [FieldError("state_code", f"must be a {country} state or province code")]
    return []


def _password_problems(acct: NewAccount) -> list[FieldError]:
    problems: list[FieldError] = []
    external = acct.external_id is not None or acct.external_provider is not None
    if external and not (acct.external_id and acct.external_provider):
        problems.append(FieldError("external_id", "external_id and external_provider go together"))
    password = acct.password
    if password is None:
        if not external:
            problems.append(
                FieldError("password", "is required unless external_id and external_provider are given")
            )
        return problems
    if external:
        problems.append(FieldError("password", "must not be given with external_id and external_provider"))
    if not 8 <= len(password) <= 80:
        problems.append(FieldError("password", "must be 8 to 80 characters"))
    if WHITESPACE.search(password):
        problems.append(FieldError("password", "must not contain spaces"))
    return problems


def check_new_account(acct: NewAccount) -> None:
    """Raise ``ValidationError`` if ``acct`` breaks a documented rule of account creation."""
    problems = new_account_problems(acct)
    if problems:
        raise ValidationError(problems)


def plan_change_problems(change: PlanChange) -> list[FieldError]:
    """Every rule ``change`` breaks (empty: it can be sent)."""
    problems = []
    plan = change.plan_type
    if not isinstance(plan, str) or not plan.strip():
        problems.append(FieldError("plan_type", "is required"))
    elif plan.upper() == PlanType.TRIAL:
        problems.append(FieldError("plan_type", "an account can't be moved to TRIAL"))
    problems.extend(_chars("plan_type", plan))
    day = change.billing_day_of_month
    if day is not None and not (_whole(day) and 1 <= day <= 31):
        problems.append(FieldError("billing_day_of_month", "must be 1 to 31"))
    problems.extend(_int32("plan_group_id", change.plan_group_id))
    return problems


def check_plan_change(change: PlanChange) -> None:
    """Raise ``ValidationError`` for a plan change the API would refuse."""
    _raise_if(iter(plan_change_problems(change)))


def check_legacy_plan(plan_type: int, billing_day_of_month: int | None) -> None:
    """Raise ``ValidationError`` for a v2 plan change the API would refuse."""
    problems = []
    if plan_type < 1:
        problems.append(FieldError("plan_type", "must be a positive plan number"))
    if billing_day_of_month is not None and not 1 <= billing_day_of_month <= 31:
        problems.append(FieldError("billing_day_of_month", "must be 1 to 31"))
    _raise_if(iter(problems))


def _aware(field: str, value: dt.datetime | None) -> Problems:
    if value is None:
        return
    if value.tzinfo is None:
        yield FieldError(field, "must be timezone-aware")
        return
    try:
        value.astimezone(dt.UTC)  # the API takes UTC: 9999-12-31T23:59:59-14:00 has no UTC time
    except (OverflowError, ValueError):
        yield FieldError(field, "must be a time that exists in UTC (year 9999 at the latest)")


def cancellation_problems(cancel: Cancellation, *, date_field: str = "effective_date") -> list[FieldError]:
    """Every rule ``cancel`` breaks (empty: it can be sent)."""
    problems = list(_aware(date_field, cancel.effective_date))
    reason = cancel.reason_id
    if reason is not None and (isinstance(reason, bool) or not isinstance(reason, int) or reason < 1):
        problems.append(FieldError("reason_id", "must be a positive reason code (an int, see CancelReason)"))
    elif reason is not None and reason > INT32_MAX:
        problems.append(FieldError("reason_id", f"must be 1 to {INT32_MAX} (int32)"))
    return problems


def check_cancellation(cancel: Cancellation, *, date_field: str = "effective_date") -> None:
    """Raise ``ValidationError`` for a cancellation with a bad reason or a naive date."""
    _raise_if(iter(cancellation_problems(cancel, date_field=date_field)))


def check_account_id(account_id: str) -> None:
    """Raise ``ValidationError`` unless ``account_id`` looks like an encoded account id."""
    if not isinstance(account_id, str) or not ACCOUNT_ID.fullmatch(account_id):
        raise ValidationError([FieldError("encoded_account_id", "must be letters, digits, - or _")])


def check_list_query(account_type: str, page_size: int) -> None:
    """Raise ``ValidationError`` for an account-list query outside the documented values."""
    problems = []
    if account_type not in ACCOUNT_TYPES:
        problems.append(FieldError("account_type", "must be all, managed or unmanaged"))
    if not 10 <= page_size <= 50:
        problems.append(FieldError("page_size", "must be 10 to 50"))
    _raise_if(iter(problems))


def _operation_problems(op: AccountOperation) -> Problems:
    if op.method.upper() not in HTTP_METHODS:
        yield FieldError("method", "must be GET, POST, PUT, PATCH or DELETE")
    if not op.url.startswith("/") or op.url.startswith("/v3/") or "://" in op.url:
        yield FieldError("url", "must be a v3 path without the base URL, like /contacts/{contact_id}")
    missing = [name for name in PATH_PARAM.findall(op.url) if name not in op.path_params]
    if missing:
        yield FieldError("path_params", f"missing a value for {', '.join(missing)}")
    yield from _chars("method", op.method)
    yield from _chars("url", op.url)
    yield from _chars("payload", op.payload, free_text=True)
    for group, params in (("query_params", op.query_params), ("path_params", op.path_params),
                          ("headers", op.headers)):  # fmt: skip
        yield from _param_chars(group, params)


def _param_chars(group: str, params: Mapping[str, str]) -> Problems:
    """A CR or LF in a header or parameter would reach the proxied call: none in names or values."""
    for name, value in params.items():
        name_problems = _chars(group, name)
        if name_problems:
            yield from (FieldError(e.field, f"names {e.rule}") for e in name_problems)
        else:
            yield from _chars(f"{group}.{name}", value)


def check_operation(op: AccountOperation) -> None:
    """Raise ``ValidationError`` for an account operation that can't be sent."""
    _raise_if(_operation_problems(op))


def _sso_problems(user: SsoUser) -> Problems:
    limits = {"first_name": 80, "last_name": 80, "contact_email": 80, "login_name": 50,
              "external_id": 255, "external_provider": 80, "role_name": 80}  # fmt: skip
    for name, high in limits.items():
        value = getattr(user, name)
        yield from _required(name, value)
        yield from _length(name, value, 0, high)
        yield from _chars(name, value)
    if user.contact_email and not EMAIL.fullmatch(user.contact_email):
        yield FieldError("contact_email", "must be an email address")


def check_sso_user(user: SsoUser) -> None:
    """Raise ``ValidationError`` unless every SSO user field is present and within its length."""
    _raise_if(_sso_problems(user))


def _unsubscribe_problems(req: UnsubscribeRequest) -> Problems:
    count = len(req.email_addresses)
    if not 1 <= count <= MAX_UNSUBSCRIBE:
        yield FieldError("email_addresses", f"must hold 1 to {MAX_UNSUBSCRIBE} addresses")
    for i, address in enumerate(req.email_addresses):
        if not EMAIL.fullmatch(address):
            yield FieldError(f"email_addresses[{i}]", "must be an email address")
        yield from _chars(f"email_addresses[{i}]", address)
    if req.update_source not in UPDATE_SOURCES:
        yield FieldError("update_source", "must be Account, Contact or System")
    if req.global_unsubscribe and count != 1:
        yield FieldError("global_unsubscribe", "allows exactly one address")
    yield from _length("opt_out_reason", req.opt_out_reason, 0, 255)
    yield from _chars("opt_out_reason", req.opt_out_reason, free_text=True)


def check_unsubscribe(req: UnsubscribeRequest) -> None:
    """Raise ``ValidationError`` for an unsubscribe request the API would refuse."""
    _raise_if(_unsubscribe_problems(req))


def check_topic_id(topic_id: int) -> None:
    """Raise ``ValidationError`` unless ``topic_id`` is a positive int."""
    if isinstance(topic_id, bool) or not isinstance(topic_id, int) or topic_id < 1:
        raise ValidationError([FieldError("topic_id", "must be a positive integer")])


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_hook_uri(hook_uri: str) -> None:
    """Raise ``ValidationError`` unless ``hook_uri`` is an https URL (or http on a loopback host, for a
    local receiver such as the sandbox's) of at most 512 characters."""
    problems: list[FieldError] = []
    try:
        parts = urlsplit(hook_uri) if isinstance(hook_uri, str) else None
    except ValueError:  # a malformed IPv6 host
        parts = None
    https = parts is not None and parts.scheme == "https" and bool(parts.hostname)
    local = parts is not None and parts.scheme == "http" and is_loopback_host(parts.hostname or "")
    if not (https or local):
        problems = [FieldError("hook_uri", "must be an https:// URL (http:// only on a loopback host)")]
    elif len(hook_uri) > MAX_HOOK_URI:
        problems = [FieldError("hook_uri", f"must be at most {MAX_HOOK_URI} characters")]
    problems.extend(_chars("hook_uri", hook_uri))
    _raise_if(iter(problems))
