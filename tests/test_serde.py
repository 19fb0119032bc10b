"""The converter: open vocabularies, unknown fields ignored, timezone-aware dates, no None on the wire."""

from __future__ import annotations

import datetime as dt

import pytest

from ctct_partner_async import CancelReason, NewAccount, Plan, WebhookTopic
from ctct_partner_async._models import AccountSummary, Cancellation, PlanType, WebhookSubscription
from ctct_partner_async._serde import structure, unstructure


def test_unknown_fields_are_ignored() -> None:
    """A response field the SDK doesn't know is dropped, not an error."""
    plan = structure({"plan_type": "GOLD", "brand_new_field": {"x": 1}}, Plan)
    assert plan.plan_type == PlanType.GOLD


def test_open_strings_pass_through() -> None:
    """A plan type or billing status the SDK has never seen is kept as it came."""
    plan = structure({"plan_type": "PLATINUM_2030", "billing_status": "Frozen"}, Plan)
    assert (plan.plan_type, plan.billing_status) == ("PLATINUM_2030", "Frozen")


def test_open_int_enums() -> None:
    """Known reason codes and topics become enum members; unknown ints stay ints."""
    assert structure({"reason_id": 21}, Cancellation).reason_id is CancelReason.TOO_DIFFICULT_TO_USE
    assert structure({"reason_id": 77}, Cancellation).reason_id == 77
    assert structure({"topic_id": 4}, WebhookSubscription).topic_id is WebhookTopic.ACCOUNT_DISABLED
    assert structure({"topic_id": 12}, WebhookSubscription).topic_id == 12
    assert unstructure(Cancellation(reason_id=CancelReason.DOING_IT_IN_HOUSE)) == {"reason_id": 12}


def test_dates_are_aware_and_iso_on_the_wire() -> None:
    """effective_date is parsed timezone-aware and sent as ISO-8601 UTC; naive dates are refused."""
    parsed = structure({"effective_date": "2020-02-06T22:09:15.000Z"}, Cancellation).effective_date
    assert parsed == dt.datetime(2020, 2, 6, 22, 9, 15, tzinfo=dt.UTC)
    summary = structure({"encoded_account_id": "a", "last_login_date": "2019-04-25T11:08:00"}, AccountSummary)
    assert summary.last_login_date is not None
    assert summary.last_login_date.tzinfo is dt.UTC
    tz = dt.timezone(dt.timedelta(hours=2))
    wire = unstructure(Cancellation(effective_date=dt.datetime(2026, 5, 1, 12, 0, tzinfo=tz)))
    assert wire == {"effective_date": "2026-05-01T10:00:00.000Z"}
    with pytest.raises(ValueError, match="timezone-aware"):
        unstructure(Cancellation(effective_date=dt.datetime(2026, 5, 1)))


def test_none_fields_stay_off_the_wire_but_state_code_is_sent() -> None:
    """Optional fields left as None are not sent; state_code (required by the spec) always is."""
    body = unstructure(NewAccount(contact_email="a@b.example", login_name="abcdef", country_code="GB",
                                  password="p4ssword!"))  # fmt: skip
    assert body == {"contact_email": "a@b.example", "login_name": "abcdef", "country_code": "GB",
                    "state_code": "", "password": "p4ssword!"}  # fmt: skip


def test_password_is_not_in_the_repr() -> None:
    """A NewAccount's repr never shows the password."""
    acct = NewAccount(
        contact_email="a@b.example", login_name="abcdef", country_code="GB", password="hunter2!!"
    )
    assert "hunter2!!" not in repr(acct)
