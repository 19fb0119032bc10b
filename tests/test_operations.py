"""Every partner operation on the wire: method, path, query, headers, exact body, parsed result."""

from __future__ import annotations

import base64
import datetime as dt
from typing import cast

import pytest

from ctct_partner_async import (
    BillingStatus,
    CancelReason,
    NewAccount,
    PartnerClient,
    SsoUser,
    WebhookTopic,
)
from ctct_partner_async._client import LegacyBillingClient
from ctct_partner_async._protocol import JSON_HEADERS

from .conftest import API_KEY, JWT, WireServer

ACCOUNT = "a07e1m09lsz5dl"


def assert_partner_headers(wire: WireServer, *, with_body: bool) -> None:
    headers = wire.last.headers
    assert headers["x-api-key"] == API_KEY
    assert headers["Authorization"] == JWT
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("ctct-partner-async/")
    if with_body:
        assert headers["Content-Type"] == JSON_HEADERS["Content-Type"]
    else:
        assert wire.last.body == b""


async def test_create_account(wire: WireServer, client: PartnerClient) -> None:
    """Create POSTs the Provision body (None fields left out, state_code kept) and parses the ids."""
    wire.reply(201, {"encoded_account_id": "a1b2c3", "provision_uuid": "u-1", "extra": True})
    result = await client.accounts.create(
        NewAccount(
            contact_email="hank@example.com",
            login_name="hank_smith",
            password="s3cretpass",
            country_code="US",
            state_code="MA",
            organization_name="Hanks Fruit",
        )  # fmt: skip
    )
    assert (wire.last.method, wire.last.path, wire.last.query) == ("POST", "/v3/partner/accounts", {})
    assert wire.last.json() == {
        "contact_email": "hank@example.com",
        "login_name": "hank_smith",
        "password": "s3cretpass",
        "country_code": "US",
        "state_code": "MA",
        "organization_name": "Hanks Fruit",
    }
    assert_partner_headers(wire, with_body=True)
    assert (result.encoded_account_id, result.provision_uuid) == ("a1b2c3", "u-1")


async def test_list_accounts_follows_three_pages(wire: WireServer, client: PartnerClient) -> None:
    """The list follows _links.next.href (which holds /v3) against the host until a page has no next."""

    def page(ids: list[str], nxt: str | None) -> dict[str, object]:
        body: dict[str, object] = {"site_owner_list": [
            {"encoded_account_id": i, "organization_name": f"org {i}", "site_owner_name": f"owner_{i}",
             "billing_status": "Trial", "subscriber_count": 3} for i in ids]}  # fmt: skip
        if nxt:
            body["_links"] = {"next": {"href": nxt}}
        return body

    wire.reply(200, page(["a", "b"], "/v3/partner/accounts?offset=MTA*&limit=10"))
    wire.reply(200, page(["c", "d"], "/v3/partner/accounts?offset=MjA*&limit=10"))
    wire.reply(200, page(["e"], None))
    accounts = [a async for a in client.accounts.list(account_type="managed", page_size=10)]
    assert [a.encoded_account_id for a in accounts] == ["a", "b", "c", "d", "e"]
    assert accounts[0].site_owner_name == "owner_a"
    assert accounts[0].billing_status == BillingStatus.TRIAL
    assert [(r.method, r.path, r.query) for r in wire.requests] == [
        ("GET", "/v3/partner/accounts", {"limit": "10", "account_type": "managed"}),
        ("GET", "/v3/partner/accounts", {"offset": "MTA*", "limit": "10"}),
        ("GET", "/v3/partner/accounts", {"offset": "MjA*", "limit": "10"}),
    ]
    assert_partner_headers(wire, with_body=False)


async def test_get_plan(wire: WireServer, client: PartnerClient) -> None:
    """get_plan GETs .../plan and parses plan, status, billing day and tiers."""
    wire.reply(200, {"plan_type": "TRIAL", "billing_status": "Trial", "billing_day_of_month": None,
                     "current_tiers": [{"usage_type": "CONTACTS", "tier": 1, "tier_min": 0, "tier_max": 500,
                                        "price": 0, "current_usage": 10, "currency_code": "USD"}]})  # fmt: skip
    plan = await client.accounts.get_plan(ACCOUNT)
    assert (wire.last.method, wire.last.path) == ("GET", f"/v3/partner/accounts/{ACCOUNT}/plan")
    assert_partner_headers(wire, with_body=False)
    assert (plan.plan_type, plan.billing_status, plan.billing_day_of_month) == ("TRIAL", "Trial", None)
    assert plan.current_tiers[0].tier_max == 500.0
    assert plan.current_tiers[0].currency_code == "USD"


async def test_update_plan(wire: WireServer, client: PartnerClient) -> None:
    """update_plan PUTs plan_type and billing_day_of_month and parses the new plan."""
    wire.reply(200, {"plan_type": "GOLD", "billing_status": "Open", "billing_day_of_month": 20})
    plan = await client.accounts.update_plan(ACCOUNT, plan_type="GOLD", billing_day_of_month=20)
    assert (wire.last.method, wire.last.path) == ("PUT", f"/v3/partner/accounts/{ACCOUNT}/plan")
    assert wire.last.json() == {"plan_type": "GOLD", "billing_day_of_month": 20}
    assert_partner_headers(wire, with_body=True)
    assert (plan.plan_type, plan.billing_status, plan.billing_day_of_month) == ("GOLD", "Open", 20)


async def test_reactivate(wire: WireServer, client: PartnerClient) -> None:
    """reactivate is a PUT of a paid plan to .../plan, with no billing day."""
    wire.reply(200, {"plan_type": "SILVER", "billing_status": "Open"})
    plan = await client.accounts.reactivate(ACCOUNT, plan_type="SILVER", plan_group_id=152)
    assert (wire.last.method, wire.last.path) == ("PUT", f"/v3/partner/accounts/{ACCOUNT}/plan")
    assert wire.last.json() == {"plan_type": "SILVER", "plan_group_id": 152}
    assert_partner_headers(wire, with_body=True)
    assert plan.billing_status == BillingStatus.OPEN


async def test_cancel(wire: WireServer, client: PartnerClient) -> None:
    """cancel PUTs reason_id and an ISO-8601 UTC effective_date and parses the echo."""
    wire.reply(200, {"reason_id": 14, "effective_date": "2026-12-01T10:00:00.000Z"})
    when = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    cancel = await client.accounts.cancel(ACCOUNT, reason=CancelReason.POOR_RESULTS, effective_date=when)
    assert (wire.last.method, wire.last.path) == ("PUT", f"/v3/partner/accounts/{ACCOUNT}/status/cancel")
    assert wire.last.json() == {"reason_id": 14, "effective_date": "2026-12-01T10:00:00.000Z"}
    assert_partner_headers(wire, with_body=True)
    assert cancel.reason_id is CancelReason.POOR_RESULTS
    assert cancel.effective_date == when


async def test_cancel_without_date_sends_only_reason(wire: WireServer, client: PartnerClient) -> None:
    """effective_date=None is left out so the API uses now; an unknown reason code still goes through."""
    wire.reply(200, {"reason_id": 99})
    cancel = await client.accounts.cancel(ACCOUNT, reason=99)
    assert wire.last.json() == {"reason_id": 99}
    assert cancel.reason_id == 99


async def test_operate(wire: WireServer, client: PartnerClient) -> None:
    """operate POSTs the sync request with key/value arrays and the payload as a JSON string."""
    wire.reply(200, {"contact_id": "c-1", "email": "x@example.com"})
    data = await client.accounts.operate(
        ACCOUNT, "put", "/contacts/{contact_id}", path_params={"contact_id": "c-1"},
        query_params={"include": "list_memberships"}, headers={"Accept": "application/json"},
        payload={"first_name": "Jo"},
    )  # fmt: skip
    assert (wire.last.method, wire.last.path) == (
        "POST", f"/v3/partner/accounts/{ACCOUNT}/account_operations/sync")  # fmt: skip
    assert wire.last.json() == {
        "account_operation_url": "/contacts/{contact_id}",
        "account_operation_method": "PUT",
        "account_operation_payload": '{"first_name": "Jo"}',
        "account_operation_query_parameters": [
            {"query_param_key": "include", "query_param_value": "list_memberships"}
        ],
        "account_operation_path_parameters": [{"path_param_key": "contact_id", "path_param_value": "c-1"}],
        "account_operation_headers": [{"header_key": "Accept", "header_value": "application/json"}],
    }
    assert_partner_headers(wire, with_body=True)
    assert data == {"contact_id": "c-1", "email": "x@example.com"}


async def test_create_sso_user(wire: WireServer, client: PartnerClient) -> None:
    """create_sso_user POSTs all seven fields and accepts a 201 with no body."""
    wire.reply(201)
    user = SsoUser(first_name="Josie", last_name="Lang", role_name="campaign_creator",
                   contact_email="josie@example.com", login_name="josie.lang", external_id="2337",
                   external_provider="Yahoo")  # fmt: skip
    assert cast(object, await client.accounts.create_sso_user(ACCOUNT, user)) is None  # returns nothing
    assert (wire.last.method, wire.last.path) == ("POST", f"/v3/partner/accounts/{ACCOUNT}/users/sso")
    assert wire.last.json() == {"first_name": "Josie", "last_name": "Lang", "role_name": "campaign_creator",
                                "contact_email": "josie@example.com", "login_name": "josie.lang",
                                "external_id": "2337", "external_provider": "Yahoo"}  # fmt: skip
    assert_partner_headers(wire, with_body=True)


async def test_unsubscribe_contacts(wire: WireServer, client: PartnerClient) -> None:
    """unsubscribe_contacts POSTs the addresses and options and returns unsubscribed_count."""
    wire.reply(200, {"unsubscribed_count": 2})
    count = await client.accounts.unsubscribe_contacts(
        ACCOUNT, ["a@b.example", "c@d.example"], update_source="Contact", opt_out_reason="moved",
        delete_contacts=True,
    )  # fmt: skip
    assert (wire.last.method, wire.last.path) == (
        "POST", f"/v3/partner/accounts/{ACCOUNT}/contacts/unsubscribe")  # fmt: skip
    assert wire.last.json() == {"email_addresses": ["a@b.example", "c@d.example"], "update_source": "Contact",
                                "opt_out_reason": "moved", "delete_contacts": True}  # fmt: skip
    assert_partner_headers(wire, with_body=True)
    assert count == 2


async def test_webhooks_list_and_get(wire: WireServer, client: PartnerClient) -> None:
    """webhooks.list and .get GET the subscriptions; known topics become WebhookTopic, others stay int."""
    wire.reply(200, [{"topic_id": 1, "hook_uri": "https://h.example/1", "topic_name": "Billing Tier Upgrade"},
                     {"topic_id": 9, "topic_name": "Future topic"}])  # fmt: skip
    wire.reply(200, {"topic_id": 2, "hook_uri": "https://h.example/2", "topic_name": "Billing Tier Downgrade",
                     "topic_description": "Executes when..."})  # fmt: skip
    subs = await client.webhooks.list()
    assert (wire.last.method, wire.last.path) == ("GET", "/v3/partner/webhooks/subscriptions")
    sub = await client.webhooks.get(WebhookTopic.BILLING_TIER_DOWNGRADE)
    assert (wire.last.method, wire.last.path) == ("GET", "/v3/partner/webhooks/subscriptions/2")
    assert_partner_headers(wire, with_body=False)
    assert [s.topic_id for s in subs] == [WebhookTopic.BILLING_TIER_UPGRADE, 9]
    assert subs[1].hook_uri is None
    assert (sub.topic_id, sub.hook_uri) == (WebhookTopic.BILLING_TIER_DOWNGRADE, "https://h.example/2")


async def test_webhooks_subscribe_unsubscribe_test(wire: WireServer, client: PartnerClient) -> None:
    """subscribe PUTs hook_uri, unsubscribe DELETEs (204), send_test POSTs to /tests (201)."""
    wire.reply(200, {"topic_id": 1, "hook_uri": "https://hooks.example/ctct"})
    wire.reply(204)
    wire.reply(201, {"topic_id": 3, "hook_uri": "https://hooks.example/c", "topic_name": "Account Cancelled"})
    sub = await client.webhooks.subscribe(1, "https://hooks.example/ctct")
    assert (wire.last.method, wire.last.path) == ("PUT", "/v3/partner/webhooks/subscriptions/1")
    assert wire.last.json() == {"hook_uri": "https://hooks.example/ctct"}
    assert_partner_headers(wire, with_body=True)
    assert cast(object, await client.webhooks.unsubscribe(1)) is None  # returns nothing
    assert (wire.last.method, wire.last.path) == ("DELETE", "/v3/partner/webhooks/subscriptions/1")
    test = await client.webhooks.send_test(3)
    assert (wire.last.method, wire.last.path) == ("POST", "/v3/partner/webhooks/subscriptions/3/tests")
    assert_partner_headers(wire, with_body=False)
    assert sub.hook_uri == "https://hooks.example/ctct"
    assert (test.topic_id, test.topic_name) == (WebhookTopic.ACCOUNT_CANCELLED, "Account Cancelled")


@pytest.mark.parametrize("prefix", ["", "Bearer "])
async def test_authorization_prefix_is_a_setting(wire: WireServer, prefix: str) -> None:
    """The Authorization header is the raw JWT by default and takes a prefix when configured."""

    async def token() -> str:
        return JWT

    async with PartnerClient(api_key=API_KEY, base_url=wire.url + "/v3", token_provider=token, rate_limit=None,
                             authorization_prefix=prefix) as c:  # fmt: skip
        await c.webhooks.list()
    assert wire.last.headers["Authorization"] == prefix + JWT


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_legacy_get_and_update_plan(wire: WireServer, legacy: LegacyBillingClient) -> None:
    """The v2 client sends basic auth and the api_key query, and parses int plan types and tiers."""
    tiers = [
        {"price": 45, "tier": 1, "tier_min": 0, "tier_max": 500, "current_usage": 0, "usage_type": "Contacts"}
    ]
    wire.reply(200, {"status": "Trial", "plan_type": 1, "current_tiers": tiers})
    wire.reply(200, {"status": "Open", "plan_type": 2, "billing_day_of_month": 20, "current_tiers": tiers})
    plan = await legacy.get_plan(ACCOUNT)
    assert (wire.last.method, wire.last.path, wire.last.query) == (
        "GET", f"/v2/partner/accounts/{ACCOUNT}/plan", {"api_key": API_KEY})  # fmt: skip
    assert wire.last.headers["Authorization"] == _basic("partner-user", "basic-secret-pw")
    assert wire.last.headers["Accept"] == "application/json"
    updated = await legacy.update_plan(ACCOUNT, plan_type=2, billing_day_of_month=20)
    assert (wire.last.method, wire.last.query) == ("PUT", {"api_key": API_KEY})
    assert wire.last.json() == {"plan_type": 2, "billing_day_of_month": 20}
    assert wire.last.headers["Content-Type"] == "application/json"
    assert (plan.status, plan.plan_type, plan.current_tiers[0].price) == ("Trial", 1, 45.0)
    assert (updated.status, updated.plan_type, updated.billing_day_of_month) == ("Open", 2, 20)


async def test_legacy_cancel(wire: WireServer, legacy: LegacyBillingClient) -> None:
    """The v2 cancel PUTs status Cancelled, an ISO-8601 cancel_date and the reason code."""
    wire.reply(200, {"status": "Cancelled", "plan_type": 2})
    when = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    plan = await legacy.cancel(ACCOUNT, reason=CancelReason.POOR_RESULTS, cancel_date=when)
    assert (wire.last.method, wire.last.path) == ("PUT", f"/v2/partner/accounts/{ACCOUNT}/plan")
    assert wire.last.json() == {
        "status": "Cancelled",
        "cancel_date": "2026-11-30T12:00:00.000Z",
        "cancel_reason": 14,
    }
    assert plan.status == "Cancelled"


async def test_legacy_cancel_defaults_to_now(wire: WireServer, legacy: LegacyBillingClient) -> None:
    """Without cancel_date the v2 cancel sends the current UTC time (the endpoint requires one)."""
    wire.reply(200, {"status": "Cancelled"})
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    await legacy.cancel(ACCOUNT)
    sent = dt.datetime.fromisoformat(wire.last.json()["cancel_date"])
    assert before <= sent <= dt.datetime.now(dt.UTC)
    assert "cancel_reason" not in wire.last.json()
