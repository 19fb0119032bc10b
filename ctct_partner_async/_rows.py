"""Turning loose rows (a CSV record, a JSON object) into checked models, for bulk jobs. No I/O.

Columns are the API's field names. Text from a CSV is converted (``"true"`` to ``True``, ``"20"`` to
``20``); an empty cell means "not given". Every problem becomes a ``ValidationError`` naming the column
and the rule, so a bad row is reported and the job goes on; it lists every rule the row breaks, those of
reading it and those of the model it describes, at once. Bulk rows are checked a little more
strictly than single calls: a ``plan_type`` must be a known plan (or one the caller allows) and a cancel
reason one of the nine documented codes, because in a file these are far more likely typos than new
server values.

A column that names no field of the row's kind is never used; :func:`unknown_fields` finds such columns
and the field each was probably meant to be (``organisation_name``: ``organization_name``), so a caller
can refuse the file rather than drop the column without a word.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import attrs

from . import _validation as validation
from ._errors import FieldError, ValidationError
from ._models import Cancellation, CancelReason, NewAccount, PlanChange, PlanType

__all__ = [
    "CANCELLATION_FIELDS",
    "NEW_ACCOUNT_FIELDS",
    "PLAN_CHANGE_FIELDS",
    "BadRow",
    "cancellation_from_row",
    "new_account_from_row",
    "plan_change_from_row",
    "unknown_fields",
]

_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n"})
NEW_ACCOUNT_FIELDS = frozenset(a.name for a in attrs.fields(NewAccount))
BOOL_FIELDS = frozenset({"managed_site_owner", "enable_single_billing", "gdpr_opt_out"})
PLAN_CHANGE_FIELDS = frozenset({"encoded_account_id", "plan_type", "billing_day_of_month", "plan_group_id"})
CANCELLATION_FIELDS = frozenset({"encoded_account_id", "reason_id", "effective_date"})


def unknown_fields(columns: Iterable[str], known: Collection[str]) -> dict[str, str | None]:
    """Each of ``columns`` that is not in ``known`` (in order, once), with the known field closest to it
    (``difflib``), or ``None`` when none is close."""
    choices = sorted(known)
    unknown: dict[str, str | None] = {}
    for column in columns:
        if column not in known and column not in unknown:
            close = difflib.get_close_matches(column.strip().lower(), choices, n=1)
            unknown[column] = close[0] if close else None
    return unknown


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(row: Mapping[str, Any], name: str, problems: list[FieldError]) -> str | None:
    """The field as text: a string, or a whole number written as one (a JSON row's ``5551234``)."""
    value = row.get(name)
    if _blank(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    problems.append(FieldError(name, f"must be text, not {_json_type(value)}"))
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, float):
        return "a decimal number"
    return (
        "a list" if isinstance(value, list | tuple) else "an object" if isinstance(value, Mapping) else "that"
    )


def _bool(row: Mapping[str, Any], name: str, problems: list[FieldError]) -> bool | None:
    value = row.get(name)
    if _blank(value) or isinstance(value, bool):
        return value if isinstance(value, bool) else None
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    problems.append(FieldError(name, "must be true or false"))
    return None


def _int(row: Mapping[str, Any], name: str, problems: list[FieldError]) -> int | None:
    value = row.get(name)
    if _blank(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        problems.append(FieldError(name, "must be a whole number"))
        return None


def _raise(problems: list[FieldError]) -> None:
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)))  # once each, in order


def new_account_from_row(row: Mapping[str, Any]) -> NewAccount:
    """The ``NewAccount`` a row describes, checked by every create rule."""
    problems: list[FieldError] = []
    values: dict[str, Any] = {}
    for name in NEW_ACCOUNT_FIELDS:
        values[name] = _bool(row, name, problems) if name in BOOL_FIELDS else _text(row, name, problems)
    named = {p.field for p in problems}
    for name in ("contact_email", "login_name", "country_code"):
        if values[name] is None:
            if name not in named:
                problems.append(FieldError(name, "is required"))
            values[name] = ""
    values["state_code"] = values["state_code"] or ""
    account = NewAccount(**values)
    problems.extend(validation.new_account_problems(account))
    _raise(problems)
    return account


def _account_id(row: Mapping[str, Any], problems: list[FieldError]) -> str:
    account_id = _text(row, "encoded_account_id", problems)
    if account_id is None:
        if "encoded_account_id" not in {p.field for p in problems}:
            problems.append(FieldError("encoded_account_id", "is required"))
        return ""
    try:
        validation.check_account_id(account_id)
    except ValidationError as exc:
        problems.extend(exc.errors)
    return account_id


def plan_change_from_row(
    row: Mapping[str, Any], *, allowed_plan_types: Collection[str] = PlanType.PAID
) -> tuple[str, PlanChange]:
    """The account id and plan change a row describes; ``plan_type`` must be one of ``allowed_plan_types``.

    ``TRIAL`` is never allowed (no account goes back to it), nor listed among the allowed types.
    """
    problems: list[FieldError] = []
    account_id = _account_id(row, problems)
    plan_type = (_text(row, "plan_type", problems) or "").upper()
    targets = {p.upper() for p in allowed_plan_types} - {PlanType.TRIAL}
    if not plan_type:
        problems.append(FieldError("plan_type", "is required"))
    elif plan_type != PlanType.TRIAL and plan_type not in targets:  # TRIAL: the model rule says why
        known = ", ".join(sorted(targets))
        problems.append(FieldError("plan_type", f"must be a known plan type ({known})"))
    change = PlanChange(
        plan_type=plan_type or "GOLD",
        billing_day_of_month=_int(row, "billing_day_of_month", problems),
        plan_group_id=_int(row, "plan_group_id", problems),
    )
    problems.extend(validation.plan_change_problems(change))
    _raise(problems)
    return account_id, change


def _effective_date(row: Mapping[str, Any], problems: list[FieldError]) -> dt.datetime | None:
    text = _text(row, "effective_date", problems)
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        problems.append(FieldError("effective_date", "must be an ISO-8601 date-time"))
        return None
    if when.tzinfo is None:
        problems.append(FieldError("effective_date", "must include a timezone (for example Z or +00:00)"))
        return None
    return when


def cancellation_from_row(row: Mapping[str, Any]) -> tuple[str, Cancellation]:
    """The account id and cancellation a row describes; ``reason_id`` must be a documented code."""
    problems: list[FieldError] = []
    account_id = _account_id(row, problems)
    reason = _int(row, "reason_id", problems)
    documented = {int(code) for code in CancelReason}
    if reason is not None and reason not in documented:
        codes = ", ".join(str(code) for code in sorted(documented))
        problems.append(FieldError("reason_id", f"must be a documented reason code ({codes})"))
    cancellation = Cancellation(
        reason_id=CancelReason(reason) if reason in documented and reason is not None else None,
        effective_date=_effective_date(row, problems),
    )
    problems.extend(validation.cancellation_problems(cancellation))  # a date with no UTC time
    _raise(problems)
    return account_id, cancellation


@attrs.frozen
class BadRow:
    """An input record that could not even be read as a row (malformed CSV, a line that isn't JSON)."""

    reason: str
