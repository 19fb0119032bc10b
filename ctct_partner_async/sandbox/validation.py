"""Request-body checks mirroring the vendor spec. Each returns the list of problems (empty: valid).

Hand-written on purpose (no jsonschema at run time): they are cheap and their messages name the field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import TypeGuard
from urllib.parse import urlsplit

from .clock import parse_iso
from .plans import PAID_PLANS, TRIAL

Body = Mapping[str, object]
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
LOGIN_NAME = re.compile(r"[A-Za-z0-9\-_.+@]{6,50}")
_PROVISION_TEXT = {
    "contact_email": (1, 80), "country_code": (2, 3), "login_name": (6, 50), "password": (8, 80),
    "contact_phone": (5, 25), "organization_name": (1, 50), "organization_phone": (5, 25),
    "first_name": (2, 80), "last_name": (2, 80), "partner_account_id": (0, 80), "external_id": (0, 255),
    "external_provider": (0, 80), "time_zone_id": (0, 100), "state_code": (0, 50), "website": (0, 2048),
    "billing_locale": (0, 10),
}  # fmt: skip
_PROVISION_REQUIRED = ("contact_email", "country_code", "login_name", "state_code")  # the spec's: blank
# state_code is allowed outside US and CA, a missing one is not
_PROVISION_FLAGS = frozenset({"managed_site_owner", "enable_single_billing", "gdpr_opt_out"})
_SSO_FIELDS = {"first_name": 80, "last_name": 80, "role_name": 80, "contact_email": 80, "login_name": 50,
               "external_id": 255, "external_provider": 80}  # fmt: skip
SSO_ROLES = ("account_manager", "campaign_creator")
UPDATE_SOURCES = ("Account", "Contact", "System")
SYNC_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_SYNC_LISTS = {
    "account_operation_query_parameters": ("query_param_key", "query_param_value"),
    "account_operation_path_parameters": ("path_param_key", "path_param_value"),
    "account_operation_headers": ("header_key", "header_value"),
}


def _string(body: Body, name: str, problems: list[str], *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            problems.append(f"{name} is required")
        return None
    if not isinstance(value, str):
        problems.append(f"{name} must be a string")
        return None
    return value


def _length(name: str, value: str | None, low: int, high: int, problems: list[str]) -> None:
    if value is not None and not low <= len(value) <= high:
        problems.append(f"{name} must be {low} to {high} characters long")


def _flag(body: Body, name: str, problems: list[str]) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        problems.append(f"{name} must be a boolean")
        return False
    return value


def check_provision(body: Body) -> list[str]:
    """The ``Provision`` body of a create (one pass over the fields present: this runs per create)."""
    problems: list[str] = []
    texts: dict[str, str] = {}
    for name, value in body.items():
        if value is None:
            continue
        bounds = _PROVISION_TEXT.get(name)
        if bounds is not None:
            if not isinstance(value, str):
                problems.append(f"{name} must be a string")
            elif bounds[0] <= len(value) <= bounds[1]:
                texts[name] = value
            else:
                problems.append(f"{name} must be {bounds[0]} to {bounds[1]} characters long")
        elif name in _PROVISION_FLAGS and not isinstance(value, bool):
            problems.append(f"{name} must be a boolean")
    problems.extend([f"{name} is required" for name in _PROVISION_REQUIRED if body.get(name) is None])
    if (
        body.get("password") is None
        and body.get("external_id") is None
        and body.get("external_provider") is None
    ):
        problems.append("password is required unless external_id and external_provider are used")
    _check_provision_formats(texts, problems)
    return problems


def _check_provision_formats(texts: dict[str, str], problems: list[str]) -> None:
    """Formats and cross-field rules, over the string fields whose length is right."""
    email = texts.get("contact_email")
    if email is not None and not EMAIL.fullmatch(email):
        problems.append("contact_email must be a valid email address")
    login = texts.get("login_name")
    if login is not None and not LOGIN_NAME.fullmatch(login):
        problems.append("login_name must be 6 to 50 of the characters A-Z a-z 0-9 - _ . + @")
    country = texts.get("country_code", "").upper()
    if country in ("US", "CA") and "state_code" in texts and not texts["state_code"].strip():
        problems.append("state_code is required when country_code is US or CA")
    website = texts.get("website")
    if website is not None and not website.startswith(("http://", "https://")):
        problems.append("website must start with http:// or https://")
    locale = texts.get("billing_locale")
    if locale is not None and locale.lower() not in ("en_us", "en_gb"):
        problems.append("billing_locale must be en_US or en_GB")


def check_plan_change(body: Body) -> list[str]:
    """The ``PlanInfo`` body of a plan change (``plan_type`` required here; ``TRIAL`` never allowed)."""
    problems: list[str] = []
    plan = _string(body, "plan_type", problems, required=True)
    if plan == TRIAL:
        problems.append("plan_type cannot be set to TRIAL: an account never returns to trial")
    elif plan is not None and plan not in PAID_PLANS:
        problems.append(f"plan_type {plan!r} is not in the partner plan group ({', '.join(PAID_PLANS)})")
    day = body.get("billing_day_of_month")
    if day is not None and not (_is_int(day) and 1 <= day <= 31):
        problems.append("billing_day_of_month must be an integer from 1 to 31")
    group = body.get("plan_group_id")
    if group is not None and not _is_int(group):
        problems.append("plan_group_id must be an integer")
    return problems


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_cancellation(body: Body) -> list[str]:
    """The ``AccountCancellation`` body (both fields optional)."""
    problems: list[str] = []
    reason = body.get("reason_id")
    if reason is not None and not _is_int(reason):
        problems.append("reason_id must be an integer")
    check_date(body, "effective_date", problems)
    return problems


def check_date(body: Body, name: str, problems: list[str], *, required: bool = False) -> None:
    """``name`` must be an ISO-8601 date-time if present (or if ``required``)."""
    text = _string(body, name, problems, required=required)
    if text is None:
        return
    try:
        parse_iso(text)
    except ValueError:
        problems.append(f"{name} must be an ISO-8601 date-time")


def check_unsubscribe(body: Body) -> list[str]:
    """The unsubscribe-contacts body."""
    problems: list[str] = []
    source = _string(body, "update_source", problems, required=True)
    if source is not None and source not in UPDATE_SOURCES:
        problems.append(f"update_source must be one of {', '.join(UPDATE_SOURCES)}")
    addresses = body.get("email_addresses", [])
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        problems.append("email_addresses must be an array of strings")
        addresses = []
    if len(addresses) > 500:
        problems.append("email_addresses can hold at most 500 addresses")
    _length("opt_out_reason", _string(body, "opt_out_reason", problems), 0, 255, problems)
    _flag(body, "delete_contacts", problems)
    if _flag(body, "global_unsubscribe", problems) and len(addresses) != 1:
        problems.append("global_unsubscribe needs exactly one address in email_addresses")
    return problems


def check_sso_user(body: Body) -> list[str]:
    """The ``SSOUser`` body: all seven fields required."""
    problems: list[str] = []
    for name, high in _SSO_FIELDS.items():
        value = _string(body, name, problems, required=True)
        _length(name, value, 1, high, problems)
    email = body.get("contact_email")
    if isinstance(email, str) and not EMAIL.fullmatch(email):
        problems.append("contact_email must be a valid email address")
    role = body.get("role_name")
    if isinstance(role, str) and role not in SSO_ROLES:
        problems.append(f"role_name must be one of {', '.join(SSO_ROLES)}")
    return problems


def is_loopback_uri(uri: str) -> bool:
    """Whether ``uri``'s host is a loopback one (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    try:
        host = (urlsplit(uri).hostname or "").lower()
    except ValueError:  # a malformed IPv6 host
        return False
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_hook(body: Body) -> list[str]:
    """The webhook subscription body: an https ``hook_uri`` (or http on a loopback host, for a local
    receiver) of at most 512 characters."""
    problems: list[str] = []
    uri = _string(body, "hook_uri", problems, required=True)
    if uri is not None and not (
        uri.startswith("https://") or (uri.startswith("http://") and is_loopback_uri(uri))
    ):
        problems.append("hook_uri must be an https:// URI (http:// only on a loopback host)")
    _length("hook_uri", uri, 9, 512, problems)
    return problems


def check_sync(body: Body) -> list[str]:
    """The ``PartnerAccountOperationsRequest`` body."""
    problems: list[str] = []
    url = _string(body, "account_operation_url", problems, required=True)
    if url is not None and not url.startswith("/"):
        problems.append("account_operation_url must be a v3 path starting with /")
    method = _string(body, "account_operation_method", problems, required=True)
    if method is not None and method.upper() not in SYNC_METHODS:
        problems.append(f"account_operation_method must be one of {', '.join(SYNC_METHODS)}")
    _string(body, "account_operation_payload", problems)
    for name, keys in _SYNC_LISTS.items():
        items = body.get(name, [])
        if not isinstance(items, list) or not all(_pair(item, keys) for item in items):
            problems.append(f"{name} must be an array of objects with string {keys[0]} and {keys[1]}")
    return problems


def _pair(item: object, keys: tuple[str, str]) -> bool:
    return isinstance(item, dict) and all(isinstance(item.get(key), str) for key in keys)
