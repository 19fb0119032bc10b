"""Bad input raises ValidationError naming the field and the rule, and nothing is sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest

from ctct_partner_async import NewAccount, PartnerClient, SsoUser, ValidationError
from ctct_partner_async import _operations as ops
from ctct_partner_async._models import AccountOperation, Cancellation, PlanChange, UnsubscribeRequest
from ctct_partner_async._validation import check_new_account

from .conftest import WireServer

GOOD = NewAccount(contact_email="hank@example.com", login_name="hank_smith", password="s3cret-pass",
                  country_code="US", state_code="MA")  # fmt: skip

BAD_ACCOUNTS = [
    ({"contact_email": ""}, "contact_email", "is required"),
    ({"contact_email": "not-an-email"}, "contact_email", "must be an email address"),
    ({"contact_email": "a" * 75 + "@b.com"}, "contact_email", "must be at most 80 characters"),
    ({"login_name": "hank smith"}, "login_name", "must be 6 to 50 characters of A-Z a-z 0-9 - _ . + @"),
    ({"login_name": "short"}, "login_name", "must be 6 to 50 characters of A-Z a-z 0-9 - _ . + @"),
    ({"login_name": "x" * 51}, "login_name", "must be 6 to 50 characters of A-Z a-z 0-9 - _ . + @"),
    ({"login_name": "hank!smith"}, "login_name", "must be 6 to 50 characters of A-Z a-z 0-9 - _ . + @"),
    ({"password": "short7!"}, "password", "must be 8 to 80 characters"),
    ({"password": "has a space"}, "password", "must not contain spaces"),
    ({"password": None}, "password", "is required unless external_id and external_provider are given"),
    ({"state_code": ""}, "state_code", "is required when country_code is US"),
    ({"state_code": "ZZ"}, "state_code", "must be a US state or province code"),
    ({"country_code": "CA", "state_code": "MA"}, "state_code", "must be a CA state or province code"),
    ({"country_code": "U5"}, "country_code", "must be an ISO 3166-1 code (2 or 3 letters)"),
    ({"country_code": "USA", "state_code": ""}, "state_code", "is required when country_code is US"),
    ({"website": "www.example.com"}, "website", "must start with http:// or https://"),
    ({"billing_locale": "fr_FR"}, "billing_locale", "must be en_US or en_GB"),
    ({"organization_name": "x" * 51}, "organization_name", "must be 1 to 50 characters"),
    ({"first_name": "J"}, "first_name", "must be 2 to 80 characters"),
    ({"contact_phone": "123"}, "contact_phone", "must be 5 to 25 characters"),
    ({"external_id": "e1", "external_provider": None, "password": None}, "external_id",
     "external_id and external_provider go together"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "rule"), BAD_ACCOUNTS, ids=[f"{f}:{r}" for _, f, r in BAD_ACCOUNTS]
)
def test_new_account_rules(change: dict[str, Any], field: str, rule: str) -> None:
    """Each documented create rule is enforced with the field and rule in the error."""
    with pytest.raises(ValidationError) as info:
        check_new_account(attrs.evolve(GOOD, **change))
    assert (field, rule) in [(e.field, e.rule) for e in info.value.errors]
    assert f"{field}: {rule}" in str(info.value)


def test_good_accounts_pass() -> None:
    """Valid accounts pass: US with state, GB without, external auth without a password."""
    check_new_account(GOOD)
    check_new_account(attrs.evolve(GOOD, country_code="GB", state_code="", billing_locale="en_us"))
    check_new_account(attrs.evolve(GOOD, password=None, external_id="x1", external_provider="PayPal"))


def test_every_broken_rule_is_listed_and_no_value_leaks() -> None:
    """All problems are reported at once; the message never quotes a value (a password can't leak)."""
    bad = NewAccount(contact_email="nope", login_name="a b", password="my secret", country_code="US")
    with pytest.raises(ValidationError) as info:
        check_new_account(bad)
    fields = [e.field for e in info.value.errors]
    assert fields == ["contact_email", "login_name", "state_code", "password"]
    assert "my secret" not in str(info.value)
    assert info.value.field == "contact_email"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ops.build_update_plan("abc", PlanChange(plan_type="TRIAL")), "plan_type"),
        (lambda: ops.build_update_plan("abc", PlanChange(plan_type="")), "plan_type"),
        (lambda: ops.build_update_plan("abc", PlanChange(plan_type="GOLD", billing_day_of_month=32)),
         "billing_day_of_month"),
        (lambda: ops.build_update_plan("abc", PlanChange(plan_type="GOLD", billing_day_of_month=0)),
         "billing_day_of_month"),
        (lambda: ops.build_cancel("abc", Cancellation(effective_date=dt.datetime(2026, 1, 1))), "effective_date"),
        (lambda: ops.build_cancel("abc", Cancellation(reason_id=0)), "reason_id"),
        (lambda: ops.build_get_plan("../admin"), "encoded_account_id"),
        (lambda: ops.build_get_plan(""), "encoded_account_id"),
        (lambda: ops.build_list_accounts(page_size=9), "page_size"),
        (lambda: ops.build_list_accounts(page_size=51), "page_size"),
        (lambda: ops.build_list_accounts(account_type="some"), "account_type"),
        (lambda: ops.build_list_accounts_next("https://evil.example/v3/partner/accounts"), "next_href"),
        (lambda: ops.build_subscribe_webhook(1, "http://hooks.example/x"), "hook_uri"),
        (lambda: ops.build_subscribe_webhook(1, "https://h.example/" + "x" * 500), "hook_uri"),
        (lambda: ops.build_get_webhook(0), "topic_id"),
        (lambda: ops.build_unsubscribe_contacts("abc", UnsubscribeRequest(
            email_addresses=[f"u{i}@example.com" for i in range(501)], update_source="Account")),
         "email_addresses"),
        (lambda: ops.build_unsubscribe_contacts("abc", UnsubscribeRequest(
            email_addresses=[], update_source="Account")), "email_addresses"),
        (lambda: ops.build_unsubscribe_contacts("abc", UnsubscribeRequest(
            email_addresses=["a@b.example"], update_source="Nobody")), "update_source"),
        (lambda: ops.build_unsubscribe_contacts("abc", UnsubscribeRequest(
            email_addresses=["a@b.example", "c@d.example"], update_source="Account", global_unsubscribe=True)),
         "global_unsubscribe"),
        (lambda: ops.build_operate("abc", AccountOperation(method="GET", url="/contacts/{contact_id}")),
         "path_params"),
        (lambda: ops.build_operate("abc", AccountOperation(method="TRACE", url="/emails")), "method"),
        (lambda: ops.build_operate("abc", AccountOperation(method="GET", url="https://api.cc.email/v3/x")),
         "url"),
        (lambda: ops.build_create_sso_user("abc", SsoUser(first_name="J", last_name="L", role_name="",
            contact_email="j@example.com", login_name="jl", external_id="1", external_provider="Y")),
         "role_name"),
        (lambda: ops.build_legacy_update_plan("abc", 0, None), "plan_type"),
        (lambda: ops.build_legacy_update_plan("abc", 2, 40), "billing_day_of_month"),
    ],
)  # fmt: skip
def test_operation_rules(build: object, field: str) -> None:
    """Every builder checks its documented rules and names the field."""
    with pytest.raises(ValidationError) as info:
        build()  # type: ignore[operator]
    assert field in [e.field for e in info.value.errors]


async def test_nothing_is_sent_for_bad_input(wire: WireServer, client: PartnerClient) -> None:
    """A validation failure raises before any request leaves the client."""
    with pytest.raises(ValidationError):
        await client.accounts.create(attrs.evolve(GOOD, login_name="bad name"))
    with pytest.raises(ValidationError):
        await client.accounts.update_plan("abc", plan_type="GOLD", billing_day_of_month=99)
    with pytest.raises(ValidationError):
        await client.accounts.unsubscribe_contacts("abc", ["x@example.com"] * 501)
    with pytest.raises(ValidationError):
        [a async for a in client.accounts.list(page_size=5)]
    assert wire.requests == []


def test_validation_error_is_a_value_error() -> None:
    """ValidationError is also a ValueError, for callers who catch that."""
    assert issubclass(ValidationError, ValueError)


def test_wrong_types_are_validation_errors_not_crashes() -> None:
    """A reason code given as text, or a missing country, is a ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        ops.build_cancel("abc", Cancellation(reason_id="1"))  # type: ignore[arg-type]
    assert info.value.field == "reason_id"
    with pytest.raises(ValidationError) as info:
        check_new_account(attrs.evolve(GOOD, country_code=None))  # type: ignore[arg-type]
    assert info.value.field == "country_code"
