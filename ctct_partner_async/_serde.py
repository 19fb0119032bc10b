"""The one cattrs converter: models to wire JSON and back.

Rules it holds: ``None`` fields are left out of request bodies (``state_code`` is always sent, the spec
requires it); unknown response fields are ignored; datetimes are timezone-aware on our side and ISO-8601
on the wire; cancel reasons and webhook topics become their ``IntEnum`` when known and stay ``int``
otherwise; the account-operation request takes the API's key/value arrays and string payload.

Parsing is strict, JSON type by JSON type, and never coerces:

- a ``str`` field takes only a string;
- an ``int`` field (and an open int enum) takes only an integer: not a bool, and not a float even when
  it is integral (``15.0``), since the spec says ``integer`` and a float there is a server bug;
- a ``float`` field takes an integer or a finite number (read as ``float``), never a bool;
- a ``bool`` field takes only ``true``/``false``;
- a datetime takes only an ISO-8601 string (a naive one is read as UTC);
- a model takes only an object, a list only an array, a mapping only an object.

``None`` (or a missing key) is accepted only where the field is optional. Every failure leaves
``structure`` as ``MalformedResponseError`` naming the model and the path of each bad field, never a
value from the answer (it may hold a secret).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.cols import is_mapping, list_structure_factory, mapping_structure_factory
from cattrs.errors import AttributeValidationNote
from cattrs.v import transform_error

from ._errors import MalformedResponseError
from ._models import AccountOperation, AccountPage, AccountSummary, CreatedAccount, NewAccount

__all__ = ["structure", "unstructure"]

T = TypeVar("T")

_converter = cattrs.Converter(omit_if_default=True)
_MAX_REPORTED = 5  # bad fields named in one error message


class _WireError(ValueError):
    """A wire value of the wrong JSON type or form. The message names JSON types, never the value."""

    def __init__(self, expected: str, value: Any = None, *, got: str | None = None) -> None:
        super().__init__(f"expected {expected}, got {got or _json_type(value)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object" if isinstance(value, dict) else "a value"


# --- scalars ----------------------------------------------------------------------------------------
# ``cl`` differs from the builtin for a StrEnum/IntEnum, which singledispatch sends here by its MRO.


def _structure_str(value: Any, cl: type) -> Any:
    if not isinstance(value, str):
        raise _WireError("a string", value)
    return value if cl is str else _member(cl, value)


def _structure_int(value: Any, cl: type) -> Any:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _WireError("an integer", value)
    return value if cl is int else _member(cl, value)


def _member(cl: type, value: Any) -> Any:
    try:
        return cl(value)
    except ValueError:  # its message quotes the value
        raise _WireError(f"a {cl.__name__}", got="another value") from None


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise _WireError("a number in the float range", got="a larger integer") from None
    got = "NaN or Infinity" if isinstance(value, float) else None  # json.loads reads them; JSON hasn't
    raise _WireError("a finite number", value, got=got)


def _structure_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise _WireError("a boolean", value)
    return value


def _format_datetime(value: dt.datetime, _: type | None = None) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes sent to the API must be timezone-aware")
    text = value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _parse_datetime(value: Any, _: type) -> dt.datetime:
    if not isinstance(value, str):
        raise _WireError("an ISO-8601 date-time string", value)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:  # its message quotes the value
        raise _WireError("an ISO-8601 date-time", got="another string") from None
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
    optional = type(None) in typing.get_args(tp)

    def structure(value: Any, _: Any) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise _WireError("an integer", value)
        try:
            return enum_cls(value)
        except ValueError:
            return value

    return structure


# --- containers: a model from an object, a list from an array, a mapping from an object -------------


def _guarded(
    make: Callable[[Any, cattrs.Converter], Callable[[Any, Any], Any]], json_type: type, expected: str
) -> Callable[[Any, cattrs.Converter], Callable[[Any, Any], Any]]:
    """A hook factory: ``make``'s hook, run only on a value of ``json_type``."""

    def factory(tp: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
        hook = make(tp, converter)

        def structure(value: Any, cl: Any) -> Any:
            if not isinstance(value, json_type):
                raise _WireError(expected, value)
            return hook(value, cl)

        return structure

    return factory


def _is_list(tp: Any) -> bool:
    return tp is list or typing.get_origin(tp) is list


def _mapping_hook(tp: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    return mapping_structure_factory(tp, converter, dict, detailed_validation=converter.detailed_validation)


def _attrs_hook(tp: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    return converter.gen_structure_attrs_fromdict(tp)


# --- the account list: a private wire shape, so a bad entry is named by its path --------------------


@attrs.frozen
class _Link:
    href: str | None = None


@attrs.frozen
class _Links:
    next: _Link | None = None


@attrs.frozen
class _PageWire:
    site_owner_list: list[AccountSummary] | None = None
    _links: _Links | None = None  # the wire name, so an error's path is the answer's


def _structure_page(data: Any, _: type) -> AccountPage:
    wire = _structure_page_wire(data, _PageWire)
    link = wire._links.next if wire._links else None
    return AccountPage(accounts=wire.site_owner_list or [], next_href=(link and link.href) or None)


# --- requests ---------------------------------------------------------------------------------------


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


_NEW_ACCOUNT_FIELDS = tuple(a.name for a in attrs.fields(NewAccount))


def _unstructure_new_account(account: NewAccount) -> dict[str, Any]:
    # Every field is a plain str/bool or None; this runs once per create, on the hot path.
    body = {name: value for name in _NEW_ACCOUNT_FIELDS if (value := getattr(account, name)) is not None}
    body["state_code"] = account.state_code  # required by the spec, blank outside US/CA
    return body


# --- the create answer ------------------------------------------------------------------------------


def _structure_created(data: Any, _: type) -> CreatedAccount:
    # On the hot path: read by hand, strictly (an id is a non-empty string); the error is built only
    # when the answer is bad.
    if isinstance(data, dict):
        account_id = data.get("encoded_account_id")
        uuid = data.get("provision_uuid")
        if isinstance(account_id, str) and account_id and (uuid is None or isinstance(uuid, str)):
            return CreatedAccount(encoded_account_id=account_id, provision_uuid=uuid)
    raise _created_error(data)


def _created_error(data: Any) -> Exception:
    if not isinstance(data, dict):
        return _WireError("an object", data)
    errors: list[Exception] = []
    account_id = data.get("encoded_account_id")
    if "encoded_account_id" not in data:
        errors.append(_noted(KeyError("encoded_account_id"), "encoded_account_id", str))
    elif not isinstance(account_id, str) or not account_id:
        got = "an empty string" if account_id == "" else None
        errors.append(
            _noted(_WireError("a non-empty string", account_id, got=got), "encoded_account_id", str)
        )
    uuid = data.get("provision_uuid")
    if uuid is not None and not isinstance(uuid, str):
        errors.append(_noted(_WireError("a string", uuid), "provision_uuid", str | None))
    return cattrs.ClassValidationError("While structuring CreatedAccount", errors, CreatedAccount)


def _noted(exc: Exception, name: str, tp: Any) -> Exception:
    exc.add_note(AttributeValidationNote(f"Structuring class CreatedAccount @ attribute {name}", name, tp))
    return exc


# --- registration (a later hook wins over an earlier one for the same type) --------------------------

_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(int, _structure_int)
_converter.register_structure_hook(float, _structure_float)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(dt.datetime, _parse_datetime)
_converter.register_unstructure_hook(dt.datetime, _format_datetime)
_converter.register_structure_hook_factory(attrs.has, _guarded(_attrs_hook, dict, "an object"))
_converter.register_structure_hook_factory(_is_list, _guarded(list_structure_factory, list, "an array"))
_converter.register_structure_hook_factory(is_mapping, _guarded(_mapping_hook, dict, "an object"))
_converter.register_structure_hook_factory(lambda t: _open_enum_of(t) is not None, _structure_open_enum)
_structure_page_wire = _converter.get_structure_hook(_PageWire)
_converter.register_structure_hook(AccountPage, _structure_page)
_converter.register_structure_hook(CreatedAccount, _structure_created)
_converter.register_unstructure_hook(AccountOperation, _unstructure_operation)
_converter.register_unstructure_hook(NewAccount, _unstructure_new_account)


# --- the API of this module -------------------------------------------------------------------------


def unstructure(value: object) -> Any:
    """A model as the JSON-ready value the API expects."""
    return _converter.unstructure(value)


def structure(data: Any, cls: type[T]) -> T:
    """A JSON value from the API as ``cls``; unknown fields are ignored.

    ``MalformedResponseError`` if the value doesn't have the shape of ``cls``: the message names the
    model and each bad field's path (``$.current_tiers[0].price``), never a value.
    """
    try:
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise MalformedResponseError(f"the answer is not a valid {_type_name(cls)}: {_explain(exc)}") from exc


def _explain(exc: BaseException) -> str:
    problems = transform_error(exc, "$", _describe)
    more = len(problems) - _MAX_REPORTED
    return "; ".join(problems[:_MAX_REPORTED]) + (f"; and {more} more" if more > 0 else "")


def _describe(exc: BaseException, _: Any) -> str:
    """One failure in words; an exception's own text is used only when it is ours (never holds a value)."""
    if isinstance(exc, _WireError):
        return str(exc)
    return "required field missing" if isinstance(exc, KeyError) else "invalid value"


def _type_name(tp: Any) -> str:
    args = typing.get_args(tp)
    name = getattr(typing.get_origin(tp) or tp, "__name__", "value")
    return f"{name}[{', '.join(_type_name(a) for a in args)}]" if args else str(name)
