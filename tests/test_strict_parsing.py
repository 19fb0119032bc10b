"""Strict parsing (#11): an answer field of the wrong JSON type is a ``MalformedResponseError`` that names
the model and the field (never the value); every spec-valid answer parses with its types kept."""

from __future__ import annotations

import copy
import datetime as dt
import enum
import json
import traceback
import types
import typing
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from ctct_partner_async import MalformedResponseError
from ctct_partner_async import _operations as ops
from ctct_partner_async._models import (
    AccountOperation,
    AccountPage,
    AccountSummary,
    Cancellation,
    CancelReason,
    CreatedAccount,
    LegacyPlan,
    NewAccount,
    Plan,
    PlanChange,
    SsoUser,
    Tier,
    UnsubscribeRequest,
    UnsubscribeResult,
    WebhookSubscription,
    WebhookTopic,
)
from ctct_partner_async._protocol import Response
from ctct_partner_async._serde import structure

from . import spec

SECRET = "s3cr3t-value"
ID = "a07e1lxqqqo0"
ACCOUNT = {"encoded_account_id": ID}
SSO = dict.fromkeys(("first_name", "last_name", "role_name", "contact_email", "login_name", "external_id",
                     "external_provider"), "x")  # fmt: skip
NEW = {"contact_email": "a@b.example", "login_name": "abcdef", "country_code": "GB"}


def page(**entry: Any) -> dict[str, Any]:
    return {"site_owner_list": [{**ACCOUNT, **entry}]}


# --- (a) vendor edge cases, model by model ----------------------------------------------------------

REJECTED: list[tuple[Any, Any, str]] = [
    # (model, answer, the path the error names)
    (CreatedAccount, {"encoded_account_id": None}, "$.encoded_account_id"),
    (CreatedAccount, {}, "$.encoded_account_id"),
    (CreatedAccount, {"provision_uuid": "u"}, "$.encoded_account_id"),
    (CreatedAccount, {"encoded_account_id": ""}, "$.encoded_account_id"),
    (CreatedAccount, {"encoded_account_id": 12345}, "$.encoded_account_id"),
    (CreatedAccount, {"encoded_account_id": True}, "$.encoded_account_id"),
    (CreatedAccount, {"encoded_account_id": ["a07e"]}, "$.encoded_account_id"),
    (CreatedAccount, {**ACCOUNT, "provision_uuid": 7}, "$.provision_uuid"),
    (CreatedAccount, None, "$"),
    (CreatedAccount, "a07e1lxqqqo0", "$"),
    (CreatedAccount, [ACCOUNT], "$"),
    (AccountPage, page(encoded_account_id=None), "$.site_owner_list[0].encoded_account_id"),
    (AccountPage, page(encoded_account_id=1), "$.site_owner_list[0].encoded_account_id"),
    (AccountPage, page(subscriber_count=15.7), "$.site_owner_list[0].subscriber_count"),
    (AccountPage, page(subscriber_count=15.0), "$.site_owner_list[0].subscriber_count"),
    (AccountPage, page(subscriber_count=True), "$.site_owner_list[0].subscriber_count"),
    (AccountPage, page(subscriber_count="3"), "$.site_owner_list[0].subscriber_count"),
    (AccountPage, page(organization_name=1), "$.site_owner_list[0].organization_name"),
    (AccountPage, page(billing_status=False), "$.site_owner_list[0].billing_status"),
    (AccountPage, page(last_login_date=1556190480), "$.site_owner_list[0].last_login_date"),
    (AccountPage, page(last_login_date="yesterday"), "$.site_owner_list[0].last_login_date"),
    (AccountPage, {"site_owner_list": [None]}, "$.site_owner_list[0]"),
    (AccountPage, {"site_owner_list": ["a07e1lxqqqo0"]}, "$.site_owner_list[0]"),
    (AccountPage, {"site_owner_list": "encoded_account_id"}, "$.site_owner_list"),
    (AccountPage, {"site_owner_list": ACCOUNT}, "$.site_owner_list"),
    (AccountPage, {"site_owner_list": [], "_links": {"next": {"href": 2}}}, "$._links.next.href"),
    (AccountPage, {"site_owner_list": [], "_links": {"next": "/v3/x"}}, "$._links.next"),
    (AccountPage, {"site_owner_list": [], "_links": []}, "$._links"),
    (AccountPage, [ACCOUNT], "$"),
    (Plan, {"billing_day_of_month": 15.7}, "$.billing_day_of_month"),
    (Plan, {"billing_day_of_month": 15.0}, "$.billing_day_of_month"),
    (Plan, {"billing_day_of_month": True}, "$.billing_day_of_month"),
    (Plan, {"billing_day_of_month": "15"}, "$.billing_day_of_month"),
    (Plan, {"plan_type": 1}, "$.plan_type"),
    (Plan, {"billing_status": True}, "$.billing_status"),
    (Plan, {"current_tiers": None}, "$.current_tiers"),
    (Plan, {"current_tiers": "abc"}, "$.current_tiers"),
    (Plan, {"current_tiers": {"tier": 1}}, "$.current_tiers"),
    (Plan, {"current_tiers": [None]}, "$.current_tiers[0]"),
    (Plan, {"current_tiers": [{}, "tier"]}, "$.current_tiers[1]"),
    (Plan, {"current_tiers": [{"price": True}]}, "$.current_tiers[0].price"),
    (Plan, {"current_tiers": [{"price": "20.0"}]}, "$.current_tiers[0].price"),
    (Plan, {"current_tiers": [{"price": float("nan")}]}, "$.current_tiers[0].price"),
    (Plan, {"current_tiers": [{"tier_max": float("inf")}]}, "$.current_tiers[0].tier_max"),
    (Plan, {"current_tiers": [{"current_usage": 10**400}]}, "$.current_tiers[0].current_usage"),
    (Plan, {"current_tiers": [{"tier": 1.5}]}, "$.current_tiers[0].tier"),
    (Plan, {"current_tiers": [{"currency_code": 840}]}, "$.current_tiers[0].currency_code"),
    (Plan, {"current_tiers": [{"usage_type": ["CONTACTS"]}]}, "$.current_tiers[0].usage_type"),
    (Plan, "GOLD", "$"),
    (Cancellation, {"reason_id": True}, "$.reason_id"),
    (Cancellation, {"reason_id": "3"}, "$.reason_id"),
    (Cancellation, {"reason_id": 1.0}, "$.reason_id"),
    (Cancellation, {"effective_date": 1580000000}, "$.effective_date"),
    (Cancellation, {"effective_date": 1580000000.5}, "$.effective_date"),
    (Cancellation, {"effective_date": True}, "$.effective_date"),
    (Cancellation, {"effective_date": "not a date"}, "$.effective_date"),
    (Cancellation, {"effective_date": {"date": "2020-02-06"}}, "$.effective_date"),
    (UnsubscribeResult, {}, "$.unsubscribed_count"),
    (UnsubscribeResult, {"unsubscribed_count": None}, "$.unsubscribed_count"),
    (UnsubscribeResult, {"unsubscribed_count": "5"}, "$.unsubscribed_count"),
    (UnsubscribeResult, {"unsubscribed_count": 5.0}, "$.unsubscribed_count"),
    (UnsubscribeResult, {"unsubscribed_count": True}, "$.unsubscribed_count"),
    (WebhookSubscription, {}, "$.topic_id"),
    (WebhookSubscription, {"topic_id": None}, "$.topic_id"),
    (WebhookSubscription, {"topic_id": True}, "$.topic_id"),
    (WebhookSubscription, {"topic_id": "1"}, "$.topic_id"),
    (WebhookSubscription, {"topic_id": 1.5}, "$.topic_id"),
    (WebhookSubscription, {"topic_id": 1, "hook_uri": 5}, "$.hook_uri"),
    (WebhookSubscription, {"topic_id": 1, "topic_name": ["x"]}, "$.topic_name"),
    (list[WebhookSubscription], {"topic_id": 1}, "$"),
    (list[WebhookSubscription], "topic_id", "$"),
    (list[WebhookSubscription], [{"topic_id": 1}, 1], "$[1]"),
    (list[WebhookSubscription], [{"topic_id": 1}, {"topic_id": 2.0}], "$[1].topic_id"),
    (LegacyPlan, {"plan_type": "1"}, "$.plan_type"),
    (LegacyPlan, {"plan_type": True}, "$.plan_type"),
    (LegacyPlan, {"plan_type": 1.0}, "$.plan_type"),
    (LegacyPlan, {"status": 1}, "$.status"),
    (LegacyPlan, {"current_tiers": [{"tier_min": False}]}, "$.current_tiers[0].tier_min"),
    # request models, structure side: the same rules
    (NewAccount, {**NEW, "managed_site_owner": 1}, "$.managed_site_owner"),
    (NewAccount, {**NEW, "gdpr_opt_out": "true"}, "$.gdpr_opt_out"),
    (NewAccount, {**NEW, "contact_email": 5}, "$.contact_email"),
    (NewAccount, {**NEW, "contact_email": None}, "$.contact_email"),
    (PlanChange, {"plan_type": "GOLD", "plan_group_id": True}, "$.plan_group_id"),
    (PlanChange, {"plan_type": 3}, "$.plan_type"),
    (SsoUser, {**SSO, "first_name": 1}, "$.first_name"),
    (UnsubscribeRequest, {"email_addresses": "a@b.example", "update_source": "System"}, "$.email_addresses"),
    (UnsubscribeRequest, {"email_addresses": [1], "update_source": "System"}, "$.email_addresses[0]"),
    (UnsubscribeRequest, {"email_addresses": [], "update_source": "S", "delete_contacts": 0},
     "$.delete_contacts"),  # fmt: skip
    (AccountOperation, {"method": "GET", "url": "/x", "headers": []}, "$.headers"),
    (AccountOperation, {"method": "GET", "url": 1}, "$.url"),
]  # fmt: skip


def _name(tp: Any) -> str:
    args = typing.get_args(tp)
    return f"list[{_name(args[0])}]" if args else str(tp.__name__)


@pytest.mark.parametrize(
    ("cls", "answer", "path"), REJECTED, ids=[f"{_name(c)}:{a!r}" for c, a, _ in REJECTED]
)
def test_wrong_type_is_malformed_response_naming_model_and_field(cls: Any, answer: Any, path: str) -> None:
    """A value of the wrong JSON type is the SDK's error, naming the model and the bad field's path."""
    with pytest.raises(MalformedResponseError) as info:
        structure(answer, cls)
    message = str(info.value)
    assert message.startswith(f"the answer is not a valid {_name(cls)}: ")
    assert message.endswith(f" @ {path}")


SECRET_ANSWERS: list[tuple[Any, Any]] = [
    (CreatedAccount, {"encoded_account_id": [SECRET]}),
    (CreatedAccount, {"encoded_account_id": "", "provision_uuid": {SECRET: 1}}),
    (Cancellation, {"effective_date": SECRET}),
    (Cancellation, {"reason_id": SECRET}),
    (AccountPage, page(subscriber_count=SECRET, last_login_date=SECRET)),
    (Plan, {"current_tiers": SECRET}),
    (Plan, {"billing_day_of_month": SECRET, "current_tiers": [SECRET]}),
    (WebhookSubscription, {"topic_id": SECRET}),
    (UnsubscribeResult, SECRET),
]


@pytest.mark.parametrize(("cls", "answer"), SECRET_ANSWERS)
def test_error_never_holds_a_value_from_the_answer(cls: Any, answer: Any) -> None:
    """Neither the message nor the whole chained traceback repeats a value of the answer."""
    with pytest.raises(MalformedResponseError) as info:
        structure(answer, cls)
    assert SECRET not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize("body", [b'{"encoded_account_id": null}', b"{}", b"", b"null", b'"a07e"',
                                  b'{"encoded_account_id": 42}', b'{"encoded_account_id": ""}'])  # fmt: skip
def test_a_2xx_create_without_a_string_id_is_malformed(body: bytes) -> None:
    """parse_created_account of a 201 without a non-empty string id raises MalformedResponseError."""
    with pytest.raises(MalformedResponseError, match="CreatedAccount"):
        ops.parse_created_account(Response(201, body=body))


def test_what_stays_accepted() -> None:
    """Optional nulls, missing optionals, ints for floats, unknown fields and open enums still parse."""
    tier = structure({"current_usage": 10, "tier": 1, "tier_min": 0, "tier_max": 500.5, "price": 20.0}, Tier)
    assert (tier.current_usage, tier.tier_min, tier.tier_max, tier.price) == (10.0, 0.0, 500.5, 20.0)
    assert type(tier.current_usage) is float and type(tier.tier_min) is float and type(tier.tier) is int
    nulls = structure(dict.fromkeys(a.name for a in attrs.fields(Tier)), Tier)
    assert nulls == Tier()
    assert structure({"topic_id": 1, "hook_uri": None, "extra": [1, {"x": True}]}, WebhookSubscription) == (
        WebhookSubscription(topic_id=WebhookTopic.BILLING_TIER_UPGRADE)
    )
    assert structure({"reason_id": 99, "effective_date": None}, Cancellation).reason_id == 99
    assert structure({"reason_id": 1}, Cancellation).reason_id is CancelReason.COST_TOO_HIGH
    summary = structure({**ACCOUNT, "last_login_date": None, "subscriber_count": None}, AccountSummary)
    assert summary == AccountSummary(encoded_account_id=ID)
    parsed = structure({"effective_date": "2020-02-06T22:09:15.000+02:00"}, Cancellation).effective_date
    assert parsed is not None and parsed.utcoffset() == dt.timedelta(hours=2)
    naive = structure({"effective_date": "2020-02-06T22:09:15"}, Cancellation).effective_date
    assert naive == dt.datetime(2020, 2, 6, 22, 9, 15, tzinfo=dt.UTC)
    assert structure({"site_owner_list": None, "_links": None}, AccountPage) == AccountPage(accounts=[])
    assert structure({"site_owner_list": [], "_links": {"next": {"href": ""}}}, AccountPage).next_href is None
    flags = structure({**NEW, "managed_site_owner": True, "gdpr_opt_out": False}, NewAccount)
    assert (flags.managed_site_owner, flags.gdpr_opt_out) == (True, False)
    assert (
        structure({"encoded_account_id": "a", "provision_uuid": None}, CreatedAccount).provision_uuid is None
    )


# --- (b) properties over answers generated from the vendor spec's response schemas -------------------


@attrs.frozen
class Scalar:
    kind: str  # string, integer, number, boolean, date-time
    enum: type[enum.IntEnum] | None = None


@attrs.frozen
class Array:
    item: Shape


@attrs.frozen
class Object:
    fields: dict[str, Field]


@attrs.frozen
class Field:
    shape: Shape
    required: bool
    nullable: bool


Shape = Scalar | Array | Object
SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", dt.datetime: "date-time"}


def shape_of(tp: Any) -> Shape:
    """The wire shape a model type declares (its fields, their JSON kinds, which are required)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        enums = [a for a in rest if isinstance(a, type) and issubclass(a, enum.IntEnum)]
        if enums:
            return Scalar("integer", enums[0])
        (only,) = rest
        return shape_of(only)
    if typing.get_origin(tp) is list:
        return Array(shape_of(args[0]))
    if attrs.has(tp):
        hints = typing.get_type_hints(tp)
        return Object({
            a.name: Field(shape_of(hints[a.name]), a.default is attrs.NOTHING,
                          type(None) in typing.get_args(hints[a.name]))
            for a in attrs.fields(tp)
        })  # fmt: skip
    return Scalar(SCALARS[tp])


# AccountPage is not its wire shape: the API's names, as the SDK reads them (a missing or null list is
# an empty page).
PAGE_WIRE = Object({
    "site_owner_list": Field(Array(shape_of(AccountSummary)), required=False, nullable=True),
    "_links": Field(Object({
        "next": Field(Object({"href": Field(Scalar("string"), required=False, nullable=True)}),
                      required=False, nullable=True),
    }), required=False, nullable=True),
})  # fmt: skip

PARSED_AS: dict[str, Any] = {
    "getPartnerSiteOwners": AccountPage,
    "provision": CreatedAccount,
    "getPlan": Plan,
    "setPlan": Plan,
    "cancelAccount": Cancellation,
    "partnerUnsubscribeContacts": UnsubscribeResult,
    "getWebhooksCollection": list[WebhookSubscription],
    "getWebhooksTopic": WebhookSubscription,
    "putWebhooksTopic": WebhookSubscription,
    "testSendWebhooksTopic": WebhookSubscription,
}
UNKNOWN_FIELD = {"type": ["null", "boolean", "integer", "number", "string"], "maxLength": 4}
PROPERTY = settings(max_examples=50, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])  # fmt: skip


def _types_only(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _types_only(v) for k, v in schema.items() if k not in ("description", "example")}
    return [_types_only(s) for s in schema] if isinstance(schema, list) else schema


def distinct(responses: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One of each set of answers that the same model parses from the same schema (``getPlan`` and
    ``setPlan`` answer alike), to spend the examples where they differ."""
    seen: dict[str, tuple[str, str]] = {}
    for operation_id, status in responses:
        schema = _types_only(spec.inline(spec.response_schema(operation_id, status)))
        seen.setdefault(
            json.dumps([repr(PARSED_AS[operation_id]), schema], sort_keys=True), (operation_id, status)
        )
    return list(seen.values())


RESPONSES = distinct(spec.success_responses())


def wire_shape(cls: Any) -> Shape:
    return PAGE_WIRE if cls is AccountPage else shape_of(cls)


def sdk_schema(schema: dict[str, Any], shape: Shape, *, every_field: bool) -> dict[str, Any]:
    """The spec's schema, also requiring what the SDK requires (the spec marks almost nothing required);
    with ``every_field``, requiring every field the model declares and one array item or more, so there
    is always something to mutate (and no unknown field). To keep the tests fast, arrays are short and
    unknown fields scalars (``test_what_stays_accepted`` has a nested one): every answer is spec-valid."""
    schema = dict(schema)
    if isinstance(shape, Object) and "properties" in schema:
        props = schema["properties"]
        wanted = {n for n, f in shape.fields.items() if n in props and (f.required or every_field)}
        schema["required"] = sorted(set(schema.get("required", [])) | wanted)
        schema["properties"] = {
            n: sdk_schema(s, shape.fields[n].shape, every_field=every_field) if n in shape.fields else s
            for n, s in props.items()
        }
        schema.setdefault("additionalProperties", False if every_field else UNKNOWN_FIELD)
    elif isinstance(shape, Array) and "items" in schema:
        schema["items"] = sdk_schema(schema["items"], shape.item, every_field=every_field)
        schema.update(maxItems=3, minItems=1 if every_field else 0)
    return schema


def answers(operation_id: str, status: str, *, every_field: bool = False) -> st.SearchStrategy[Any]:
    cls = PARSED_AS[operation_id]
    schema = sdk_schema(spec.inline(spec.response_schema(operation_id, status)), wire_shape(cls),
                        every_field=every_field)  # fmt: skip
    if cls is CreatedAccount:  # the SDK also wants the new account's id non-empty
        schema["properties"]["encoded_account_id"]["minLength"] = 1
    return from_schema(schema)


def check_same(shape: Shape, sent: Any, got: Any) -> None:
    """``got`` holds ``sent``'s value with the type its field declares (str stays str, int stays int)."""
    if isinstance(shape, Object):
        for name, field in shape.fields.items():
            if name in sent:
                check_same(field.shape, sent[name], getattr(got, name))
    elif isinstance(shape, Array):
        assert type(got) is list and len(got) == len(sent)
        for s, g in zip(sent, got, strict=True):
            check_same(shape.item, s, g)
    elif shape.kind == "date-time":
        expected = dt.datetime.fromisoformat(sent)
        expected = expected if expected.tzinfo else expected.replace(tzinfo=dt.UTC)
        assert type(got) is dt.datetime and got == expected and got.utcoffset() == expected.utcoffset()
    elif shape.kind == "number":
        assert type(got) is float and got == sent
    elif shape.kind == "integer" and shape.enum is not None:
        assert type(got) is (shape.enum if sent in {m.value for m in shape.enum} else int) and got == sent
    else:
        assert type(got) is type(sent) and got == sent


def check_page(sent: Any, got: AccountPage) -> None:
    check_same(Array(shape_of(AccountSummary)), sent.get("site_owner_list") or [], got.accounts)
    href = ((sent.get("_links") or {}).get("next") or {}).get("href")
    assert got.next_href == (href or None)


def test_every_success_answer_of_the_spec_is_covered() -> None:
    """Each 2xx answer with a body in the spec has a model here."""
    assert {o for o, _ in spec.success_responses()} == set(PARSED_AS)


@pytest.mark.parametrize(("operation_id", "status"), RESPONSES)
def test_spec_valid_answer_parses_with_its_types(operation_id: str, status: str) -> None:
    """Every spec-valid answer (with the fields the SDK requires) parses, each known field keeping its
    value and its JSON type; unknown fields are ignored."""
    cls = PARSED_AS[operation_id]

    @PROPERTY
    @given(answers(operation_id, status))
    def prop(answer: Any) -> None:
        parsed = structure(answer, cls)
        if cls is AccountPage:
            check_page(answer, parsed)
        else:
            check_same(wire_shape(cls), answer, parsed)

    prop()


Path = tuple[str | int, ...]
JSON_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.integers(),
    "number": st.floats(allow_nan=False, allow_infinity=False),  # 15.0 included: not an int
    "string": st.text(max_size=5),
    "array": st.lists(st.integers(), max_size=2),
    "object": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
}
ACCEPTED = {"string": {"string"}, "date-time": {"string"}, "integer": {"integer"},
            "number": {"integer", "number"}, "boolean": {"boolean"}}  # fmt: skip


def targets(field: Field, value: Any, path: Path = ()) -> list[tuple[Path, Field]]:
    """Every place in ``value`` the model declares, with what it declares there."""
    found = [(path, field)]
    shape = field.shape
    if isinstance(shape, Object) and isinstance(value, dict):
        for name, f in shape.fields.items():
            if name in value:
                found += targets(f, value[name], (*path, name))
    elif isinstance(shape, Array) and isinstance(value, list):
        for i, item in enumerate(value):
            found += targets(Field(shape.item, required=True, nullable=False), item, (*path, i))
    return found


def wrong_value(field: Field) -> st.SearchStrategy[Any]:
    shape = field.shape
    accepted = (ACCEPTED[shape.kind] if isinstance(shape, Scalar)
                else {"array"} if isinstance(shape, Array) else {"object"})  # fmt: skip
    if field.nullable:
        accepted = accepted | {"null"}
    return st.one_of([s for kind, s in JSON_VALUES.items() if kind not in accepted])


def replaced(answer: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    answer = copy.deepcopy(answer)
    parent = answer
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return answer


def rendered(path: Path) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


@pytest.mark.parametrize(("operation_id", "status"), RESPONSES)
def test_one_field_of_a_wrong_json_type_is_rejected(operation_id: str, status: str) -> None:
    """A spec-valid answer with one declared field (or the answer itself) turned into another JSON type
    is a MalformedResponseError naming that field."""
    cls = PARSED_AS[operation_id]
    root = Field(wire_shape(cls), required=True, nullable=False)

    @PROPERTY
    @given(answers(operation_id, status, every_field=True), st.data())
    def prop(answer: Any, data: st.DataObject) -> None:
        path, field = data.draw(st.sampled_from(targets(root, answer)), label="field")
        bad = replaced(answer, path, data.draw(wrong_value(field), label="wrong value"))
        with pytest.raises(MalformedResponseError) as info:
            structure(bad, cls)
        assert str(info.value).endswith(f" @ {rendered(path)}")
        assert f"valid {_name(cls)}: " in str(info.value)

    prop()
