"""Every success response of every v3 operation validates against the vendor spec's response schema."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.sandbox.support import Api, Result, load_spec

SPEC = load_spec()
SPEC_URI = "urn:ctct-v3-partner-openapi"
# The one place the sandbox departs from the schema on purpose: the vendor documents (in this very
# schema's description, and on the create page) that billing_day_of_month is null on a trial account,
# which Swagger 2.0 cannot express. Trial answers are checked against a copy that allows null.
TRIAL_SPEC = copy.deepcopy(SPEC)
TRIAL_SPEC["definitions"]["PlanTiersObject"]["properties"]["billing_day_of_month"]["type"] = [
    "integer",
    "null",
]


def _pointer(path: str, method: str, status: str) -> str:
    escaped = path.replace("~", "~0").replace("/", "~1")
    return f"{SPEC_URI}#/paths/{escaped}/{method}/responses/{status}/schema"


def validator(path: str, method: str, status: str, spec: dict[str, Any] = SPEC) -> Draft4Validator:
    """A validator for one response schema, resolving refs against the whole spec document."""
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4)
    )
    return Draft4Validator({"$ref": _pointer(path, method, status)}, registry=registry)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SPEC["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def undeclared(schema: dict[str, Any], instance: Any, where: str = "$") -> list[str]:
    """Keys in ``instance`` that the schema does not declare (the spec never forbids extras; we do)."""
    schema = _resolve(schema)
    if isinstance(instance, dict) and "properties" in schema:
        found = [f"{where}.{key}" for key in instance if key not in schema["properties"]]
        for key, value in instance.items():
            if key in schema["properties"]:
                found += undeclared(schema["properties"][key], value, f"{where}.{key}")
        return found
    if isinstance(instance, list) and "items" in schema:
        return [problem for item in instance for problem in undeclared(schema["items"], item, f"{where}[]")]
    return []


def assert_conforms(result: Result, path: str, method: str, status: int, spec: dict[str, Any] = SPEC) -> None:
    assert result.status == status, result.text
    assert result.content_type == "application/json"
    validator(path, method, str(status), spec).validate(result.body)
    schema = SPEC["paths"][path][method]["responses"][str(status)]["schema"]
    assert undeclared(schema, result.body) == []


COVERED: dict[str, str] = {}
Test = Callable[..., Awaitable[None]]


def covers(*operation_ids: str) -> Callable[[Test], Test]:
    """Register, at import time, which spec operations a test checks."""

    def register(test: Test) -> Test:
        for operation_id in operation_ids:
            COVERED[operation_id] = test.__name__
        return test

    return register


async def _account(api: Api, login: str = "schema_user") -> str:
    return await api.create_ok(login)


@covers("getPartnerSiteOwners")
async def test_list_accounts_conforms(api: Api) -> None:
    """GET /partner/accounts (with a next link) matches PartnerAccount."""
    for index in range(12):
        await api.create_ok(f"lister{index:02d}")
    result = await api.call("GET", "/partner/accounts", params={"limit": "10"})
    assert_conforms(result, "/partner/accounts", "get", 200)
    assert "next" in result.body["_links"]


@covers("provision")
async def test_create_conforms(api: Api) -> None:
    """POST /partner/accounts matches ProvisionResponse."""
    result = await api.create("schema_user")
    assert_conforms(result, "/partner/accounts", "post", 201)


@covers("getPlan")
async def test_get_plan_conforms_on_trial_and_paid(api: Api) -> None:
    """GET .../plan matches PlanTiersObject (null billing day allowed on trial only)."""
    account = await _account(api)
    path = "/partner/accounts/{encoded_account_id}/plan"
    trial = await api.call("GET", f"/partner/accounts/{account}/plan")
    assert trial.body["billing_day_of_month"] is None
    assert_conforms(trial, path, "get", 200, TRIAL_SPEC)
    await api.call("PUT", f"/partner/accounts/{account}/plan", json_body={"plan_type": "GOLD"})
    assert_conforms(await api.call("GET", f"/partner/accounts/{account}/plan"), path, "get", 200)


@covers("setPlan")
async def test_set_plan_conforms(api: Api) -> None:
    """PUT .../plan matches PlanTiersObject."""
    account = await _account(api)
    result = await api.call("PUT", f"/partner/accounts/{account}/plan", json_body={"plan_type": "SILVER"})
    assert_conforms(result, "/partner/accounts/{encoded_account_id}/plan", "put", 200)


@covers("cancelAccount")
async def test_cancel_conforms(api: Api) -> None:
    """PUT .../status/cancel matches AccountCancellation, with and without a body."""
    path = "/partner/accounts/{encoded_account_id}/status/cancel"
    account = await _account(api)
    body = {"reason_id": 2, "effective_date": "2026-04-01T00:00:00.000Z"}
    assert_conforms(
        await api.call("PUT", f"/partner/accounts/{account}/status/cancel", json_body=body), path, "put", 200
    )
    assert_conforms(await api.call("PUT", f"/partner/accounts/{account}/status/cancel"), path, "put", 200)


@covers("partnerAccountOperationsPostSync")
async def test_account_operation_answers_json(api: Api) -> None:
    """POST .../account_operations/sync (no schema: the proxied body) answers a JSON object."""
    account = await _account(api)
    body = {"account_operation_url": "/contacts", "account_operation_method": "GET"}
    result = await api.call("POST", f"/partner/accounts/{account}/account_operations/sync", json_body=body)
    assert result.status == 200
    assert isinstance(result.body, dict)
    assert (
        "200"
        in SPEC["paths"]["/partner/accounts/{encoded_account_id}/account_operations/sync"]["post"][
            "responses"
        ]
    )


@covers("createSSOUser")
async def test_sso_user_has_no_body(api: Api) -> None:
    """POST .../users/sso answers 201 with no body (the spec declares none)."""
    account = await _account(api)
    body = {
        "first_name": "Josie",
        "last_name": "Lang",
        "role_name": "campaign_creator",
        "contact_email": "josie@example.com",
        "login_name": "josie.lang",
        "external_id": "233",
        "external_provider": "Yahoo",
    }
    result = await api.call("POST", f"/partner/accounts/{account}/users/sso", json_body=body)
    assert (result.status, result.text) == (201, "")
    assert (
        "schema"
        not in SPEC["paths"]["/partner/accounts/{encoded_account_id}/users/sso"]["post"]["responses"]["201"]
    )


@covers("partnerUnsubscribeContacts")
async def test_unsubscribe_conforms(api: Api) -> None:
    """POST .../contacts/unsubscribe matches PartnerUnsubscribeResponse."""
    account = await _account(api)
    body = {"email_addresses": ["a@example.com", "b@example.com"], "update_source": "Account"}
    result = await api.call("POST", f"/partner/accounts/{account}/contacts/unsubscribe", json_body=body)
    assert_conforms(result, "/partner/accounts/{encoded_account_id}/contacts/unsubscribe", "post", 200)


@covers(
    "putWebhooksTopic",
    "getWebhooksCollection",
    "getWebhooksTopic",
    "testSendWebhooksTopic",
    "deleteWebhooksSubscriptions",
)
async def test_webhook_operations_conform(api: Api) -> None:
    """The five webhook operations match their schemas (204 has no body)."""
    topic_path = "/partner/webhooks/subscriptions/{topic_id}"
    uri = {"hook_uri": "https://hooks.example.com/billing"}
    assert_conforms(
        await api.call("PUT", "/partner/webhooks/subscriptions/1", json_body=uri), topic_path, "put", 200
    )
    assert_conforms(
        await api.call("GET", "/partner/webhooks/subscriptions"),
        "/partner/webhooks/subscriptions",
        "get",
        200,
    )
    assert_conforms(await api.call("GET", "/partner/webhooks/subscriptions/1"), topic_path, "get", 200)
    assert_conforms(await api.call("GET", "/partner/webhooks/subscriptions/2"), topic_path, "get", 200)
    assert_conforms(
        await api.call("POST", "/partner/webhooks/subscriptions/1/tests"), f"{topic_path}/tests", "post", 201
    )
    deleted = await api.call("DELETE", "/partner/webhooks/subscriptions/1")
    assert (deleted.status, deleted.text) == (204, "")


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        ("APIErrorSchema", "validation"),
        ("AuthorizationErrorSchema", "auth"),
    ],
)
async def test_error_bodies_match_the_error_schemas(api: Api, schema: str, body: str) -> None:
    """Validation errors match APIErrorSchema (array); auth errors match AuthorizationErrorSchema."""
    if body == "validation":
        result = await api.call("POST", "/partner/accounts", json_body={"login_name": "x"})
        assert result.status == 400
    else:
        result = await api.call("GET", "/partner/accounts", headers={"Authorization": "Bearer nope"})
        assert result.status == 401
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT4)
    )
    Draft4Validator({"$ref": f"{SPEC_URI}#/definitions/{schema}"}, registry=registry).validate(result.body)
    assert undeclared(SPEC["definitions"][schema], result.body) == []


def test_every_operation_is_covered() -> None:
    """Each of the spec's 13 partner operations has a response test in this module."""
    operations = {op["operationId"] for item in SPEC["paths"].values() for op in item.values()}
    assert len(operations) == 13
    assert operations == set(COVERED)
