"""The one cattrs converter: models to wire JSON and back.

Rules it holds: ``None`` fields are left out of request bodies (``state_code`` is always sent, the spec
requires it); unknown response fields are ignored; datetimes are timezone-aware on our side and ISO-8601
on the wire; cancel reasons and webhook topics become their ``IntEnum`` when known and stay ``int``
otherwise; the account-operation request takes the API's key/value arrays and string payload.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs

from ._errors import MalformedResponseError
from ._models import AccountOperation, AccountPage, AccountSummary, CreatedAccount, NewAccount

__all__ = ["structure", "unstructure"]

T = TypeVar("T")

_converter = cattrs.Converter(omit_if_default=True)


def _format_datetime(value: dt.datetime, _: type | None = None) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes sent to the API must be timezone-aware")
    text = value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _parse_datetime(value: Any, _: type) -> dt.datetime:
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _open_enum_of(tp: Any) -> type[enum.IntEnum] | None:
    """The IntEnum of an ``SomeIntEnum | int [| None]`` annotation, if ``tp`` is one."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    enums = [a for a in typing.get_args(tp) if isinstance(a, type) and issubclass(a, enum.IntEnum)]
    return enums[0] if len(enums) == 1 and int in typing.get_args(tp) else None


def _structure_open_enum(tp: Any) -> Callable[[Any, Any], Any]:
    enum_cls = _open_enum_of(tp)
    assert enum_cls is not None

    def structure(value: Any, _: Any) -> Any:
        if value is None:
            return None
        number = int(value)
        try:
            return enum_cls(number)
        except ValueError:
            return number

    return structure


def _unstructure_operation(op: AccountOperation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account_operation_url": op.url,
        "account_operation_method": op.method,
    }
    if op.payload is not None:
        body["account_operation_payload"] = op.payload
    if op.query_params:
        body["account_operation_query_parameters"] = [
            {"query_param_key": k, "query_param_value": v} for k, v in op.query_params.items()
        ]
    if op.path_params:
        body["account_operation_path_parameters"] = [
            {"path_param_key": k, "path_param_value": v} for k, v in op.path_params.items()
        ]
    if op.headers:
        body["account_operation_headers"] = [
            {"header_key": k, "header_value": v} for k, v in op.headers.items()
        ]
    return body


def _structure_page(data: Mapping[str, Any], _: type) -> AccountPage:
    entries = data.get("site_owner_list") or []
    links = data.get("_links") or {}
    next_link = links.get("next") or {}
    return AccountPage(
        accounts=[_converter.structure(e, AccountSummary) for e in entries],
        next_href=next_link.get("href") or None,
    )


_converter.register_unstructure_hook(dt.datetime, _format_datetime)
_converter.register_structure_hook(dt.datetime, _parse_datetime)
_converter.register_structure_hook_factory(lambda t: _open_enum_of(t) is not None, _structure_open_enum)
_converter.register_unstructure_hook(AccountOperation, _unstructure_operation)
_converter.register_structure_hook(AccountPage, _structure_page)
_NEW_ACCOUNT_FIELDS = tuple(a.name for a in attrs.fields(NewAccount))


def _unstructure_new_account(account: NewAccount) -> dict[str, Any]:
    # Every field is a plain str/bool or None; this runs once per create, on the hot path.
    body = {name: value for name in _NEW_ACCOUNT_FIELDS if (value := getattr(account, name)) is not None}
    body["state_code"] = account.state_code  # required by the spec, blank outside US/CA
    return body


_converter.register_unstructure_hook(NewAccount, _unstructure_new_account)


def _structure_created(data: Any, _: type) -> CreatedAccount:
    # The create answer, on the hot path: read by hand, and strictly (an id is a non-empty string).
    account_id = data["encoded_account_id"]
    uuid = data.get("provision_uuid")
    if not isinstance(account_id, str) or not account_id or not isinstance(uuid, str | None):
        raise TypeError("encoded_account_id must be a non-empty string, provision_uuid a string")
    return CreatedAccount(encoded_account_id=account_id, provision_uuid=uuid)


_converter.register_structure_hook(CreatedAccount, _structure_created)


def unstructure(value: object) -> Any:
    """A model as the JSON-ready value the API expects."""
    return _converter.unstructure(value)


def structure(data: Any, cls: type[T]) -> T:
    """A JSON value from the API as ``cls``; unknown fields are ignored.

    ``MalformedResponseError`` if the value doesn't have the shape of ``cls``.
    """
    try:
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise MalformedResponseError(f"the answer is not a valid {getattr(cls, '__name__', cls)}") from exc
