"""Every request body the SDK builds validates against the vendor spec's schema for its operation."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jsonschema
import pytest

from ctct_partner_async import CancelReason, NewAccount, SsoUser
from ctct_partner_async import _operations as ops
from ctct_partner_async._models import AccountOperation, Cancellation, PlanChange, UnsubscribeRequest
from ctct_partner_async._protocol import Request

from . import spec

ID = "a07e1lxqqqo0"
FULL_ACCOUNT = NewAccount(
    contact_email="hank@example.com", contact_phone="111-333-5656", country_code="US",
    organization_name="Hanks Fresh Fruit", organization_phone="401-333-1000", state_code="MA",
    time_zone_id="US/Eastern", website="http://www.ctct.com", login_name="partner_child_32",
    password="12345678", first_name="Hank", last_name="Smith", partner_account_id="partner1234",
    billing_locale="en_US", managed_site_owner=False, enable_single_billing=False, gdpr_opt_out=False,
)  # fmt: skip
EXTERNAL_ACCOUNT = NewAccount(contact_email="x@example.com", login_name="ext_user_1", country_code="GB",
                              external_id="123456789", external_provider="Yahoo")  # fmt: skip

CASES: list[tuple[str, str, Request]] = [
    ("provision", "full", ops.build_create_account(FULL_ACCOUNT)),
    ("provision", "minimal non-US", ops.build_create_account(EXTERNAL_ACCOUNT)),
    ("setPlan", "upgrade", ops.build_update_plan(ID, PlanChange(plan_type="GOLD", billing_day_of_month=15,
                                                                plan_group_id=152))),  # fmt: skip
    ("setPlan", "reactivate", ops.build_update_plan(ID, PlanChange(plan_type="BRONZE"))),
    ("cancelAccount", "full", ops.build_cancel(ID, Cancellation(
        reason_id=CancelReason.COST_TOO_HIGH, effective_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC)))),
    ("cancelAccount", "empty", ops.build_cancel(ID, Cancellation())),
    ("partnerAccountOperationsPostSync", "full", ops.build_operate(ID, AccountOperation(
        method="PUT", url="/contacts/{contact_id}", payload='{"a": 1}', query_params={"include": "x"},
        path_params={"contact_id": "c1"}, headers={"Accept": "application/json"}))),
    ("partnerAccountOperationsPostSync", "minimal", ops.build_operate(ID, AccountOperation(
        method="GET", url="/emails"))),
    ("createSSOUser", "full", ops.build_create_sso_user(ID, SsoUser(
        first_name="Jo", last_name="Lang", role_name="campaign_creator", contact_email="jo@example.com",
        login_name="jo.lang", external_id="1", external_provider="Yahoo"))),
    ("partnerUnsubscribeContacts", "full", ops.build_unsubscribe_contacts(ID, UnsubscribeRequest(
        email_addresses=["a@b.example"], update_source="System", opt_out_reason="r", delete_contacts=False,
        global_unsubscribe=True))),
    ("putWebhooksTopic", "subscribe", ops.build_subscribe_webhook(2, "https://hooks.example/x")),
]  # fmt: skip


def _declared_keys(schema: dict[str, Any], body: Any) -> set[str]:
    """Keys of ``body`` that its schema does not declare (typos the spec would silently accept)."""
    schema = spec.resolve(schema)
    props = schema.get("properties", {})
    extra = set(body) - set(props) if isinstance(body, dict) else set()
    for key, value in body.items() if isinstance(body, dict) else ():
        if isinstance(value, list) and key in props and value and isinstance(value[0], dict):
            extra |= {
                f"{key}.{k}" for k in _declared_keys(spec.with_definitions(props[key]["items"]), value[0])
            }
    return extra


@pytest.mark.parametrize(("operation_id", "case", "request_"), CASES, ids=[f"{o}-{c}" for o, c, _ in CASES])
def test_body_validates_against_spec(operation_id: str, case: str, request_: Request) -> None:
    """The body validates against the operation's schema and uses only declared properties."""
    method, path, _ = spec.operation(operation_id)
    schema = spec.body_schema(operation_id)
    assert request_.body is not None
    body = json.loads(request_.body)
    jsonschema.Draft4Validator(schema).validate(body)
    assert _declared_keys(schema, body) == set()
    assert request_.method == method
    assert "/" + request_.url == path.replace("{encoded_account_id}", ID).replace("{topic_id}", "2")


def test_every_operation_with_a_body_is_covered() -> None:
    """No spec operation that takes a body is missing from the cases above."""
    with_body = {
        op["operationId"]
        for item in spec.load()["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and any(p.get("in") == "body" for p in op.get("parameters", []))
    }
    assert with_body == {o for o, _, _ in CASES}
