"""Creating and listing client accounts: uniqueness, validation, the list shape and pagination."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import pytest
from yarl import URL

from ctct_partner_async.sandbox.partner import decode_offset, encode_offset, page_limit
from tests.sandbox.support import Api, provision


async def test_create_commits_a_trial_account(api: Api) -> None:
    """A create answers 201 {encoded_account_id, provision_uuid} and the account is a fresh trial."""
    result = await api.create("hank_smith", organization_name="Hanks Fresh Fruit")
    assert result.status == 201
    account_id = result.body["encoded_account_id"]
    assert re.fullmatch(r"[a-z0-9]{10,16}", account_id)
    assert uuid.UUID(result.body["provision_uuid"]).version == 4
    [account] = api.handle.sandbox.accounts()
    assert account["encoded_account_id"] == account_id
    assert account["provision_uuid"] == result.body["provision_uuid"]
    assert account["login_name"] == account["site_owner_name"] == "hank_smith"
    assert account["organization_name"] == "Hanks Fresh Fruit"
    assert (account["plan_type"], account["billing_status"], account["billing_day_of_month"]) == (
        "TRIAL",
        "Trial",
        None,
    )
    assert "password" not in account


async def test_second_create_with_same_login_is_409(api: Api) -> None:
    """A login name can be used once (compared case-insensitively); the second create is 409."""
    await api.create_ok("partner_child_32")
    for login in ("partner_child_32", "Partner_Child_32"):
        result = await api.create(login)
        assert result.status == 409
        assert result.body[0]["error_key"] == "conflict"
    assert len(api.handle.sandbox.accounts()) == 1


async def test_ids_are_unique_and_reproducible_from_the_seed(start_sandbox: Any) -> None:
    """Two sandboxes with the same seed hand out the same ids in the same order; ids never repeat."""
    first, second = await start_sandbox(seed=7), await start_sandbox(seed=7)
    ids_first = [await first.create_ok(f"same_login{i}") for i in range(20)]
    ids_second = [await second.create_ok(f"same_login{i}") for i in range(20)]
    assert ids_first == ids_second
    assert len(set(ids_first)) == 20


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"contact_email": ...}, "contact_email is required"),
        ({"contact_email": "not-an-email"}, "valid email"),
        ({"contact_email": "x" * 75 + "@a.com"}, "contact_email must be 1 to 80"),
        ({"country_code": ...}, "country_code is required"),
        ({"country_code": "USAX"}, "country_code must be 2 to 3"),
        ({"login_name": ...}, "login_name is required"),
        ({"login_name": "short"}, "login_name must be 6 to 50"),
        ({"login_name": "has space!"}, "login_name must be 6 to 50"),
        ({"login_name": "x" * 51}, "login_name"),
        ({"state_code": ...}, "state_code is required"),
        ({"state_code": "  "}, "state_code is required"),
        ({"country_code": "CA", "state_code": ...}, "state_code is required"),
        (
            {"country_code": "GB", "state_code": ...},
            "state_code is required",
        ),  # the spec requires it: blank will do
        ({"password": "1234567"}, "password must be 8 to 80"),
        ({"password": ...}, "password is required"),
        ({"website": "www.example.com"}, "website must start with"),
        ({"billing_locale": "fr_FR"}, "billing_locale"),
        ({"managed_site_owner": "false"}, "managed_site_owner must be a boolean"),
        ({"organization_name": 12}, "organization_name must be a string"),
    ],
)
async def test_invalid_create_bodies_get_400_arrays(
    api: Api, overrides: dict[str, Any], fragment: str
) -> None:
    """Each spec rule on Provision answers 400 with an error array naming the problem; nothing is stored."""
    result = await api.call("POST", "/partner/accounts", json_body=provision("valid_login", **overrides))
    assert result.status == 400
    assert isinstance(result.body, list)
    assert all(item["error_key"] == "validation_error" for item in result.body)
    assert any(fragment in item["error_message"] for item in result.body), result.body
    assert api.handle.sandbox.accounts() == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"country_code": "GB", "state_code": ""},
        {"password": ..., "external_id": "123456789", "external_provider": "PayPal"},
        {"billing_locale": "en_us", "website": "https://example.com", "login_name": "a.b+c@d-e_f"},
    ],
)
async def test_valid_variants_are_accepted(api: Api, overrides: dict[str, Any]) -> None:
    """A blank state outside US/CA, no password with an external provider, lower-case locale, every login char."""
    result = await api.call("POST", "/partner/accounts", json_body=provision("variant_ok", **overrides))
    assert result.status == 201, result.text


async def test_non_json_body_is_400_and_wrong_content_type_is_415(api: Api) -> None:
    """A body that is not JSON is 400; a body not declared application/json is 415."""
    bad_json = await api.call(
        "POST", "/partner/accounts", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status == 400
    assert bad_json.body[0]["error_key"] == "validation_error"
    not_object = await api.call("POST", "/partner/accounts", json_body=["a"])
    assert not_object.status == 400
    wrong_type = await api.call(
        "POST",
        "/partner/accounts",
        data=b"login_name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (wrong_type.status, wrong_type.body[0]["error_key"]) == (415, "unsupported_media_type")
    empty = await api.call("POST", "/partner/accounts")
    assert empty.status == 400


async def test_list_entries_carry_the_documented_fields(api: Api) -> None:
    """List entries: encoded_account_id, organization_name, site_owner_name (= login), billing_status,
    subscriber_count 0; no login_name or last_login_date."""
    account_id = await api.create_ok("lister_one", organization_name="Org One")
    result = await api.call("GET", "/partner/accounts")
    assert result.body == {
        "site_owner_list": [
            {
                "encoded_account_id": account_id,
                "organization_name": "Org One",
                "site_owner_name": "lister_one",
                "billing_status": "Trial",
                "subscriber_count": 0,
            }
        ]
    }


async def _create_many(api: Api, count: int, **overrides: Any) -> list[str]:
    return [await api.create_ok(f"page_user_{index:03d}", **overrides) for index in range(count)]


async def test_pagination_walks_every_account_once_in_creation_order(api: Api) -> None:
    """limit=10 over 25 accounts: pages of 10, 10, 5; next hrefs include /v3; the last page has no next."""
    created = await _create_many(api, 25)
    seen: list[str] = []
    path: str | None = "/partner/accounts?limit=10"
    pages = []
    while path is not None:
        result = await api.call("GET", path)
        assert result.status == 200
        pages.append(len(result.body["site_owner_list"]))
        seen += [entry["encoded_account_id"] for entry in result.body["site_owner_list"]]
        href = result.body.get("_links", {}).get("next", {}).get("href")
        if href is not None:
            assert href.startswith("/v3/partner/accounts?")
            assert URL(href).query["limit"] == "10"
            path = href.removeprefix("/v3")
        else:
            path = None
    assert pages == [10, 10, 5]
    assert seen == created


async def test_offset_token_is_opaque_and_bad_tokens_are_400(api: Api) -> None:
    """The offset is not a plain number, and a token the sandbox did not make is a 400."""
    await _create_many(api, 11)
    first = await api.call("GET", "/partner/accounts", params={"limit": "10"})
    offset = URL(first.body["_links"]["next"]["href"]).query["offset"]
    assert not offset.isdigit()
    assert decode_offset(offset) == 10
    for bad in ("10", "%%%", base64.b64encode(b"minus").decode()):
        result = await api.call("GET", "/partner/accounts", params={"offset": bad})
        assert result.status == 400, bad
        assert result.body[0]["error_key"] == "validation_error"


async def test_offset_past_the_end_is_an_empty_last_page(api: Api) -> None:
    """An offset beyond the last account answers an empty list with no next link."""
    await _create_many(api, 3)
    result = await api.call("GET", "/partner/accounts", params={"offset": encode_offset(40)})
    assert result.body == {"site_owner_list": []}


@pytest.mark.parametrize("limit", ["5", "51", "abc", "-10", ""])
async def test_limit_outside_10_to_50_is_ignored(api: Api, limit: str) -> None:
    """limit outside 10..50 (or not a number) falls back to the default page size 50."""
    await _create_many(api, 55)
    result = await api.call("GET", "/partner/accounts", params={"limit": limit})
    assert len(result.body["site_owner_list"]) == 50
    assert URL(result.body["_links"]["next"]["href"]).query["limit"] == "50"


async def test_account_type_filters_and_stays_in_next_href(api: Api) -> None:
    """managed/unmanaged filter on managed_site_owner (default managed); next keeps account_type."""
    managed = await _create_many(api, 12)
    unmanaged = await api.create_ok("unmanaged_one", managed_site_owner=False)
    result = await api.call("GET", "/partner/accounts", params={"account_type": "managed", "limit": "10"})
    assert [e["encoded_account_id"] for e in result.body["site_owner_list"]] == managed[:10]
    assert URL(result.body["_links"]["next"]["href"]).query["account_type"] == "managed"
    only = await api.call("GET", "/partner/accounts", params={"account_type": "unmanaged"})
    assert [e["encoded_account_id"] for e in only.body["site_owner_list"]] == [unmanaged]
    everyone = await api.call("GET", "/partner/accounts", params={"account_type": "all"})
    assert len(everyone.body["site_owner_list"]) == 13
    bad = await api.call("GET", "/partner/accounts", params={"account_type": "some"})
    assert bad.status == 400


def test_page_limit_and_offset_round_trip() -> None:
    """Offsets round-trip through their token; limits outside 10..50 give the default."""
    assert [decode_offset(encode_offset(n)) for n in (0, 10, 12345)] == [0, 10, 12345]
    assert encode_offset(10) == "MTA*"
    assert [page_limit(raw, 50) for raw in ("10", "50", "9", "51", None, "x")] == [10, 50, 50, 50, 50, 50]


async def test_unknown_account_is_404_array(api: Api) -> None:
    """An unknown encoded_account_id answers 404 with an error array."""
    result = await api.call("GET", "/partner/accounts/a07e1nothere/plan")
    assert result.status == 404
    assert result.body[0]["error_key"] == "not_found"
