"""account_operations/sync, SSO users, unsubscribing contacts, and webhook subscriptions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.support import Api

SSO_USER = {
    "first_name": "Josie",
    "last_name": "Lang",
    "role_name": "campaign_creator",
    "contact_email": "josie.lang@example.com",
    "login_name": "josie.lang",
    "external_id": "23378234122161121",
    "external_provider": "Yahoo",
}


async def test_sync_echoes_the_resolved_call(api: Api) -> None:
    """sync answers what it would call: path parameters substituted, query, header names, parsed payload."""
    account = await api.create_ok("sync_user")
    body = {
        "account_operation_url": "/contacts/{contact_id}",
        "account_operation_method": "put",
        "account_operation_payload": '{"first_name": "Ann"}',
        "account_operation_path_parameters": [{"path_param_key": "contact_id", "path_param_value": "c-1"}],
        "account_operation_query_parameters": [{"query_param_key": "include", "query_param_value": "notes"}],
        "account_operation_headers": [{"header_key": "Accept", "header_value": "application/json"}],
    }
    result = await api.call("POST", f"/partner/accounts/{account}/account_operations/sync", json_body=body)
    assert result.status == 200
    assert result.body == {
        "account": account,
        "method": "PUT",
        "url": "/contacts/c-1",
        "query": {"include": "notes"},
        "headers": ["Accept"],
        "payload": {"first_name": "Ann"},
    }


@pytest.mark.parametrize(
    "body",
    [
        {"account_operation_method": "GET"},
        {"account_operation_url": "/contacts"},
        {"account_operation_url": "contacts", "account_operation_method": "GET"},
        {"account_operation_url": "/contacts", "account_operation_method": "FETCH"},
        {
            "account_operation_url": "/contacts",
            "account_operation_method": "POST",
            "account_operation_payload": {},
        },
        {
            "account_operation_url": "/contacts",
            "account_operation_method": "POST",
            "account_operation_payload": "{x",
        },
        {"account_operation_url": "/contacts/{contact_id}", "account_operation_method": "GET"},
        {
            "account_operation_url": "/c",
            "account_operation_method": "GET",
            "account_operation_headers": [{"a": 1}],
        },
    ],
)
async def test_sync_validation(api: Api, body: dict[str, Any]) -> None:
    """url and method are required, the payload must be a JSON string, path parameters must be filled."""
    account = await api.create_ok("sync_bad")
    result = await api.call("POST", f"/partner/accounts/{account}/account_operations/sync", json_body=body)
    assert result.status == 400
    assert result.body[0]["error_key"] == "validation_error"


async def test_sync_unknown_account_is_404(api: Api) -> None:
    """sync on an unknown account is 404."""
    body = {"account_operation_url": "/contacts", "account_operation_method": "GET"}
    result = await api.call("POST", "/partner/accounts/nobody/account_operations/sync", json_body=body)
    assert result.status == 404


async def test_sso_user_created_once_per_account(api: Api) -> None:
    """A new SSO user is 201 with no body; the same login name in the same account is 409, elsewhere fine."""
    first, second = await api.create_ok("sso_owner_1"), await api.create_ok("sso_owner_2")
    path = "/partner/accounts/{}/users/sso"
    assert (await api.call("POST", path.format(first), json_body=SSO_USER)).status == 201
    again = await api.call("POST", path.format(first), json_body={**SSO_USER, "login_name": "JOSIE.LANG"})
    assert (again.status, again.body[0]["error_key"]) == (409, "conflict")
    assert (await api.call("POST", path.format(second), json_body=SSO_USER)).status == 201
    assert api.handle.sandbox.accounts()[0]["sso_users"] == ["josie.lang"]


@pytest.mark.parametrize(
    "change",
    [{"role_name": "owner"}, {"external_id": None}, {"contact_email": "x"}, {"first_name": "x" * 81}],
)
async def test_sso_user_validation(api: Api, change: dict[str, Any]) -> None:
    """All seven fields are required, role_name is account_manager or campaign_creator, lengths hold."""
    account = await api.create_ok("sso_bad")
    body = {**SSO_USER, **change}
    result = await api.call("POST", f"/partner/accounts/{account}/users/sso", json_body=body)
    assert result.status == 400


async def test_unsubscribe_counts_distinct_addresses(api: Api) -> None:
    """unsubscribed_count is the number of distinct addresses; they are recorded on the account."""
    account = await api.create_ok("unsub_user")
    body = {"email_addresses": ["a@x.com", "b@x.com", "A@x.com"], "update_source": "Contact"}
    result = await api.call("POST", f"/partner/accounts/{account}/contacts/unsubscribe", json_body=body)
    assert result.body == {"unsubscribed_count": 2}
    assert api.handle.sandbox.accounts()[0]["unsubscribed"] == ["a@x.com", "b@x.com"]


async def test_global_unsubscribe_reaches_every_account(api: Api) -> None:
    """global_unsubscribe with one address records it on every account."""
    first, _ = await api.create_ok("global_1"), await api.create_ok("global_2")
    body = {"email_addresses": ["g@x.com"], "update_source": "System", "global_unsubscribe": True}
    result = await api.call("POST", f"/partner/accounts/{first}/contacts/unsubscribe", json_body=body)
    assert result.body == {"unsubscribed_count": 1}
    assert [a["unsubscribed"] for a in api.handle.sandbox.accounts()] == [["g@x.com"], ["g@x.com"]]


@pytest.mark.parametrize(
    "body",
    [
        {"email_addresses": ["a@x.com"]},
        {"email_addresses": ["a@x.com"], "update_source": "Partner"},
        {"email_addresses": [f"{i}@x.com" for i in range(501)], "update_source": "Account"},
        {"email_addresses": ["a@x.com", "b@x.com"], "update_source": "Account", "global_unsubscribe": True},
        {"email_addresses": "a@x.com", "update_source": "Account"},
        {"update_source": "Account", "opt_out_reason": "x" * 256},
    ],
)
async def test_unsubscribe_validation(api: Api, body: dict[str, Any]) -> None:
    """update_source required and enumerated, at most 500 addresses, global needs exactly one address."""
    account = await api.create_ok("unsub_bad")
    result = await api.call("POST", f"/partner/accounts/{account}/contacts/unsubscribe", json_body=body)
    assert result.status == 400


async def test_unsubscribe_accepts_500_addresses(api: Api) -> None:
    """Exactly 500 addresses is within the limit."""
    account = await api.create_ok("unsub_500")
    body = {"email_addresses": [f"{i}@x.com" for i in range(500)], "update_source": "Account"}
    result = await api.call("POST", f"/partner/accounts/{account}/contacts/unsubscribe", json_body=body)
    assert result.body == {"unsubscribed_count": 500}


async def test_webhook_collection_lists_the_four_topics(api: Api) -> None:
    """The collection has topics 1-4 with their names; hook_uri only on subscribed topics."""
    await api.call("PUT", "/partner/webhooks/subscriptions/3", json_body={"hook_uri": "https://h.example/3"})
    result = await api.call("GET", "/partner/webhooks/subscriptions")
    names = {item["topic_id"]: item["topic_name"] for item in result.body}
    assert names == {
        1: "Billing Tier Upgrade",
        2: "Billing Tier Downgrade",
        3: "Account Cancelled",
        4: "Account Disabled",
    }
    assert [item.get("hook_uri") for item in result.body] == [None, None, "https://h.example/3", None]


async def test_webhook_subscribe_change_test_and_delete(api: Api) -> None:
    """PUT subscribes (and changes the URI), POST tests answers 201 with the topic, DELETE is 204."""
    path = "/partner/webhooks/subscriptions/1"
    first = await api.call("PUT", path, json_body={"hook_uri": "https://a.example/hook"})
    assert first.body == {"topic_id": 1, "hook_uri": "https://a.example/hook"}
    await api.call("PUT", path, json_body={"hook_uri": "https://b.example/hook"})
    assert api.handle.sandbox.webhook_subscriptions() == {"1": "https://b.example/hook"}
    test = await api.call("POST", f"{path}/tests")
    assert test.status == 201
    assert test.body["hook_uri"] == "https://b.example/hook"
    assert test.body["topic_name"] == "Billing Tier Upgrade"
    assert api.handle.sandbox.stats()["webhook_tests"] == 1
    assert (await api.call("DELETE", path)).status == 204
    assert (await api.call("DELETE", path)).status == 204
    assert "hook_uri" not in (await api.call("GET", path)).body
    assert api.handle.sandbox.webhook_subscriptions() == {}


async def test_webhook_test_send_needs_a_subscription(api: Api) -> None:
    """A test send on an unsubscribed topic is a 400."""
    result = await api.call("POST", "/partner/webhooks/subscriptions/2/tests")
    assert result.status == 400


@pytest.mark.parametrize("topic", ["0", "5", "abc", "-1"])
async def test_unknown_topics_are_404(api: Api, topic: str) -> None:
    """Topic ids other than 1..4 are 404 for every webhook operation."""
    base = f"/partner/webhooks/subscriptions/{topic}"
    assert (await api.call("GET", base)).status == 404
    assert (await api.call("PUT", base, json_body={"hook_uri": "https://a.example"})).status == 404
    assert (await api.call("DELETE", base)).status == 404
    assert (await api.call("POST", f"{base}/tests")).status == 404


@pytest.mark.parametrize("uri", ["http://insecure.example/hook", "https://x.example/" + "a" * 500, "", None])
async def test_hook_uri_must_be_https_and_short(api: Api, uri: str | None) -> None:
    """hook_uri is required, https, at most 512 characters."""
    result = await api.call("PUT", "/partner/webhooks/subscriptions/1", json_body={"hook_uri": uri})
    assert result.status == 400
    assert api.handle.sandbox.webhook_subscriptions() == {}
