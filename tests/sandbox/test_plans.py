"""Billing-plan rules: trial, the move off trial, no return to trial, cancel and reactivation."""

from __future__ import annotations

from typing import Any

import pytest

from ctct_partner_async.sandbox.clock import iso_utc
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import Api, FakeClock


async def plan(api: Api, account: str) -> Any:
    result = await api.call("GET", f"/partner/accounts/{account}/plan")
    assert result.status == 200
    return result.body


async def set_plan(api: Api, account: str, body: dict[str, Any]) -> Any:
    return await api.call("PUT", f"/partner/accounts/{account}/plan", json_body=body)


async def cancel(api: Api, account: str, body: dict[str, Any] | None = None) -> Any:
    return await api.call("PUT", f"/partner/accounts/{account}/status/cancel", json_body=body)


async def test_new_account_plan_is_trial_without_billing_day(api: Api) -> None:
    """GET plan of a new account: TRIAL, Trial, null billing day, one tier with all its fields."""
    body = await plan(api, await api.create_ok("trial_user"))
    assert (body["plan_type"], body["billing_status"], body["billing_day_of_month"]) == (
        "TRIAL",
        "Trial",
        None,
    )
    [tier] = body["current_tiers"]
    assert set(tier) == {
        "usage_type",
        "current_usage",
        "tier",
        "tier_min",
        "tier_max",
        "price",
        "currency_code",
    }


async def test_move_off_trial_opens_and_sets_the_given_billing_day(api: Api) -> None:
    """TRIAL -> GOLD with billing_day_of_month 20: Open, day 20, in the answer and in the state."""
    account = await api.create_ok("paying_user")
    result = await set_plan(api, account, {"plan_type": "GOLD", "billing_day_of_month": 20})
    assert result.status == 200
    assert (result.body["plan_type"], result.body["billing_status"], result.body["billing_day_of_month"]) == (
        "GOLD",
        "Open",
        20,
    )
    [state] = api.handle.sandbox.accounts()
    assert (state["plan_type"], state["billing_status"], state["billing_day_of_month"]) == (
        "GOLD",
        "Open",
        20,
    )


async def test_move_off_trial_without_a_day_uses_today_by_the_clock(
    start_sandbox: StartSandbox, clock: FakeClock
) -> None:
    """With no billing day given, the move off trial bills on today's day of month (sandbox clock)."""
    api = await start_sandbox(token_ttl=30 * 86_400)
    account = await api.create_ok("today_user")
    clock.advance(5 * 86_400)  # 2026-03-19
    result = await set_plan(api, account, {"plan_type": "BRONZE"})
    assert result.body["billing_day_of_month"] == 19


async def test_later_plan_changes_keep_the_billing_day(api: Api) -> None:
    """Paid -> paid ignores billing_day_of_month: the day only counts on the move off trial."""
    account = await api.create_ok("keep_day_user")
    await set_plan(api, account, {"plan_type": "BRONZE", "billing_day_of_month": 3})
    result = await set_plan(api, account, {"plan_type": "SILVER", "billing_day_of_month": 28})
    assert (result.body["plan_type"], result.body["billing_day_of_month"]) == ("SILVER", 3)


@pytest.mark.parametrize("on_trial", [True, False])
async def test_no_return_to_trial(api: Api, on_trial: bool) -> None:
    """Setting TRIAL is a 400 whether the account is on trial or not, and changes nothing."""
    account = await api.create_ok("no_return_user")
    if not on_trial:
        await set_plan(api, account, {"plan_type": "GOLD"})
    result = await set_plan(api, account, {"plan_type": "TRIAL"})
    assert result.status == 400
    assert "TRIAL" in result.body[0]["error_message"]
    assert (await plan(api, account))["plan_type"] == ("TRIAL" if on_trial else "GOLD")


@pytest.mark.parametrize(
    "body",
    [
        {"plan_type": "GOLD", "billing_day_of_month": 0},
        {"plan_type": "GOLD", "billing_day_of_month": 32},
        {"plan_type": "GOLD", "billing_day_of_month": "15"},
        {"plan_type": "PLATINUM"},
        {"plan_type": 4},
        {"billing_day_of_month": 12},
        {"plan_type": "GOLD", "plan_group_id": "x"},
    ],
)
async def test_bad_plan_changes_are_400(api: Api, body: dict[str, Any]) -> None:
    """Out-of-range days, unknown or non-string plans and a missing plan_type are 400; nothing changes."""
    account = await api.create_ok("bad_plan_user")
    result = await set_plan(api, account, body)
    assert result.status == 400
    assert result.body[0]["error_key"] == "validation_error"
    assert (await plan(api, account))["billing_status"] == "Trial"


async def test_older_plan_names_are_accepted(api: Api) -> None:
    """Older plan_type values (GOOD, BETTER, BEST, LITE) are still accepted."""
    account = await api.create_ok("old_plan_user")
    for name in ("LITE", "GOOD", "BETTER", "BEST"):
        assert (await set_plan(api, account, {"plan_type": name})).body["plan_type"] == name


async def test_cancel_echoes_and_sets_canceled(api: Api) -> None:
    """Cancel echoes {reason_id, effective_date} and the account becomes Canceled (list and state agree)."""
    account = await api.create_ok("cancel_user")
    body = {"reason_id": 14, "effective_date": "2026-04-01T00:00:00.000Z"}
    result = await cancel(api, account, body)
    assert (result.status, result.body) == (200, body)
    assert (await plan(api, account))["billing_status"] == "Canceled"
    listed = await api.call("GET", "/partner/accounts")
    assert listed.body["site_owner_list"][0]["billing_status"] == "Canceled"
    [state] = api.handle.sandbox.accounts()
    assert state["cancellation"] == {**body, "reason": "Poor Results"}


async def test_cancel_without_body_defaults_the_date_to_now(api: Api, clock: FakeClock) -> None:
    """Without effective_date, the cancellation is dated now by the sandbox clock."""
    account = await api.create_ok("cancel_now_user")
    result = await cancel(api, account)
    assert result.body == {"effective_date": iso_utc(clock.now)}
    assert result.body["effective_date"] == "2026-03-14T12:00:00.000Z"


@pytest.mark.parametrize("body", [{"reason_id": "1"}, {"effective_date": "tomorrow"}, {"reason_id": True}])
async def test_bad_cancel_bodies_are_400(api: Api, body: dict[str, Any]) -> None:
    """A non-integer reason_id or a non-ISO effective_date is a 400 and the account stays as it was."""
    account = await api.create_ok("bad_cancel_user")
    assert (await cancel(api, account, body)).status == 400
    assert (await plan(api, account))["billing_status"] == "Trial"


async def test_cancel_unknown_account_is_404(api: Api) -> None:
    """Cancelling an account that does not exist is a 404."""
    assert (await cancel(api, "a07e1missing0")).status == 404


@pytest.mark.parametrize("was_paid", [True, False])
async def test_reactivation_by_a_paid_plan(api: Api, was_paid: bool) -> None:
    """A Canceled account with any non-TRIAL plan becomes Open again (from paid or from trial)."""
    account = await api.create_ok("reactivate_user")
    if was_paid:
        await set_plan(api, account, {"plan_type": "BRONZE", "billing_day_of_month": 7})
    await cancel(api, account, {"reason_id": 1})
    result = await set_plan(api, account, {"plan_type": "GOLD", "billing_day_of_month": 21})
    assert (result.body["billing_status"], result.body["plan_type"]) == ("Open", "GOLD")
    assert result.body["billing_day_of_month"] == (7 if was_paid else 21)
    assert api.handle.sandbox.accounts()[0]["cancellation"] is None


async def test_canceled_account_cannot_be_reactivated_with_trial(api: Api) -> None:
    """TRIAL never reactivates: the account stays Canceled."""
    account = await api.create_ok("stay_canceled")
    await cancel(api, account)
    assert (await set_plan(api, account, {"plan_type": "TRIAL"})).status == 400
    assert (await plan(api, account))["billing_status"] == "Canceled"


async def test_gbp_locale_prices_in_gbp(api: Api) -> None:
    """An en_GB account's tiers are priced in GBP."""
    account = await api.create_ok("british_user", billing_locale="en_GB", country_code="GB", state_code="")
    assert (await plan(api, account))["current_tiers"][0]["currency_code"] == "GBP"
