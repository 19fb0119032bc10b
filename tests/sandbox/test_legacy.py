"""The legacy v2 plan endpoint: Basic auth + api_key, int plan types, shared state with v3."""

from __future__ import annotations

import json

import pytest

from ctct_partner_async.sandbox.legacy import accepts_json
from tests.sandbox.support import Api, basic


async def test_get_shows_the_v3_account_in_v2_shape(api: Api) -> None:
    """GET answers {status, plan_type (int), billing_day_of_month, current_tiers} for a v3-created account."""
    account = await api.create_ok("legacy_user")
    result = await api.legacy("GET", account)
    assert result.status == 200
    assert set(result.body) == {"status", "plan_type", "billing_day_of_month", "current_tiers"}
    assert (result.body["status"], result.body["plan_type"], result.body["billing_day_of_month"]) == (
        "Trial",
        1,
        None,
    )
    assert set(result.body["current_tiers"][0]) == {
        "price",
        "tier",
        "tier_min",
        "tier_max",
        "current_usage",
        "usage_type",
    }


async def test_put_plan_type_moves_off_trial_and_v3_sees_it(api: Api) -> None:
    """PUT {plan_type: 2, billing_day_of_month: 20} makes the account BRONZE/Open/20, also through v3."""
    account = await api.create_ok("legacy_upgrade")
    result = await api.legacy("PUT", account, json_body={"plan_type": 2, "billing_day_of_month": 20})
    assert (result.status, result.body["status"], result.body["plan_type"]) == (200, "Open", 2)
    v3 = await api.call("GET", f"/partner/accounts/{account}/plan")
    assert (v3.body["plan_type"], v3.body["billing_status"], v3.body["billing_day_of_month"]) == (
        "BRONZE",
        "Open",
        20,
    )


async def test_v2_billing_day_only_counts_off_trial(api: Api) -> None:
    """A v2 change between paid plans keeps the billing day."""
    account = await api.create_ok("legacy_keep_day")
    await api.legacy("PUT", account, json_body={"plan_type": 3, "billing_day_of_month": 9})
    result = await api.legacy("PUT", account, json_body={"plan_type": 4, "billing_day_of_month": 25})
    assert (result.body["plan_type"], result.body["billing_day_of_month"]) == (4, 9)


async def test_v2_trial_rules(api: Api) -> None:
    """plan_type 1 is a no-op on a trial account and a 400 once off trial."""
    account = await api.create_ok("legacy_trial")
    assert (await api.legacy("PUT", account, json_body={"plan_type": 1})).body["plan_type"] == 1
    await api.legacy("PUT", account, json_body={"plan_type": 4})
    result = await api.legacy("PUT", account, json_body={"plan_type": 1})
    assert result.status == 400
    assert (await api.legacy("GET", account)).body["plan_type"] == 4


async def test_v2_cancel_and_reactivate(api: Api) -> None:
    """Cancel with {status: Cancelled, cancel_date, cancel_reason}; a paid plan_type reopens the account."""
    account = await api.create_ok("legacy_cancel")
    body = {"status": "Cancelled", "cancel_date": "2026-03-20T10:00:00Z", "cancel_reason": 27}
    result = await api.legacy("PUT", account, json_body=body)
    assert (result.status, result.body["status"]) == (200, "Cancelled")
    v3 = await api.call("GET", f"/partner/accounts/{account}/plan")
    assert v3.body["billing_status"] == "Canceled"
    cancellation = api.handle.sandbox.accounts()[0]["cancellation"]
    assert isinstance(cancellation, dict)
    assert cancellation["reason_id"] == 27
    reopened = await api.legacy("PUT", account, json_body={"plan_type": 2})
    assert reopened.body["status"] == "Open"


@pytest.mark.parametrize(
    "body",
    [
        {"status": "Cancelled"},
        {"status": "Cancelled", "cancel_date": "soon"},
        {"status": "Open", "cancel_date": "2026-03-20T10:00:00Z"},
        {"plan_type": 9},
        {"plan_type": "2"},
        {"plan_type": 2, "billing_day_of_month": 40},
    ],
)
async def test_v2_bad_bodies_are_400(api: Api, body: dict[str, object]) -> None:
    """Missing cancel_date, bad dates, unknown or non-int plan types and bad days are 400."""
    account = await api.create_ok("legacy_bad")
    result = await api.legacy("PUT", account, json_body=body)
    assert result.status == 400
    assert (await api.legacy("GET", account)).body["status"] == "Trial"


@pytest.mark.parametrize(
    ("headers", "api_key"),
    [({"Authorization": basic("sandbox-client", "nope")}, "sandbox-api-key"), ({}, "wrong-key")],
)
async def test_v2_credentials(api: Api, headers: dict[str, str], api_key: str) -> None:
    """Wrong Basic credentials or a wrong api_key query parameter are 401."""
    account = await api.create_ok("legacy_auth")
    result = await api.legacy("GET", account, headers=headers, api_key=api_key)
    assert result.status == 401
    assert result.body[0]["error_key"] == "unauthorized"


@pytest.mark.parametrize(
    ("accept", "status"),
    [("text/html", 406), ("application/xml", 406), ("*/*", 200), ("application/json; q=1", 200)],
)
async def test_v2_accept_must_allow_json(api: Api, accept: str, status: int) -> None:
    """An Accept that rules out application/json is 406."""
    account = await api.create_ok("legacy_accept")
    assert (await api.legacy("GET", account, headers={"Accept": accept})).status == status


async def test_v2_put_needs_json_content_type(api: Api) -> None:
    """A PUT body not declared application/json is 415."""
    account = await api.create_ok("legacy_ctype")
    url = f"{api.handle.legacy_url}/partner/accounts/{account}/plan"
    headers = {"Authorization": basic(), "Content-Type": "text/plain"}
    async with api.session.put(
        url, params={"api_key": "sandbox-api-key"}, headers=headers, data=json.dumps({"plan_type": 2})
    ) as response:
        assert response.status == 415


async def test_v2_unknown_account_is_404(api: Api) -> None:
    """An unknown account id is 404."""
    assert (await api.legacy("GET", "nope")).status == 404


async def test_v2_api_key_never_reaches_the_log(api: Api) -> None:
    """The api_key query parameter is stripped from logged paths."""
    account = await api.create_ok("legacy_log")
    await api.legacy("GET", account)
    entry = api.handle.sandbox.request_log()[-1]
    assert entry["path"] == f"/v2/partner/accounts/{account}/plan"
    assert "sandbox-api-key" not in json.dumps(api.handle.sandbox.request_log())


def test_accepts_json_parsing() -> None:
    """No Accept, */*, application/* and application/json allow JSON; others do not."""
    assert [accepts_json(v) for v in (None, "", "*/*", "application/*", "text/html, application/json")] == [
        True,
        True,
        True,
        True,
        True,
    ]
    assert accepts_json("text/html") is False
