"""Billing-plan rules, as plain functions over an :class:`~.store.Account`.

- A new account is ``TRIAL`` / ``Trial`` with no billing day.
- No plan change ever goes (back) to ``TRIAL``: the validators refuse it with 400.
- ``billing_day_of_month`` only counts on the move off ``TRIAL`` (given, else today's day by the clock);
  later changes keep the billing day and ignore the one sent.
- Moving off trial, or any paid plan on a ``Canceled`` (or ``Trial End``) account, makes it ``Open``:
  that is reactivation, for which the API has no endpoint of its own.
- Cancelling records the reason and effective date and sets ``Canceled`` at once, even when the
  effective date is in the future (kept simple on purpose).
"""

from __future__ import annotations

from .clock import day_of_month, iso_utc
from .store import Account

TRIAL = "TRIAL"
PAID_PLANS = ("BRONZE", "SILVER", "GOLD", "LITE", "GOOD", "BETTER", "BEST")
V2_PLAN_TYPES = {1: TRIAL, 2: "BRONZE", 3: "SILVER", 4: "GOLD", 5: "LITE", 6: "GOOD", 7: "BETTER", 8: "BEST"}
V3_TO_V2 = {name: number for number, name in V2_PLAN_TYPES.items()}
_PRICES = {TRIAL: 0.0, "LITE": 12.0, "BRONZE": 20.0, "GOOD": 20.0, "SILVER": 45.0, "BETTER": 45.0,
           "GOLD": 80.0, "BEST": 80.0}  # fmt: skip
_V2_STATUS = {"Canceled": "Cancelled"}
CANCEL_REASONS = {
    1: "Cost Too High", 2: "Using A Competitive Service", 3: "Not Doing Email Marketing",
    11: "Something Missing Or Not Working", 12: "Doing It In-House", 14: "Poor Results",
    21: "Too Difficult To Use", 27: "Canceled Online by Customer", 30: "Dissatisfied With Billing Policies",
}  # fmt: skip


def change_plan(account: Account, plan_type: str, billing_day: int | None, now: float) -> None:
    """Move ``account`` to the paid ``plan_type`` (already validated: never ``TRIAL``)."""
    if account.plan_type == TRIAL:
        account.billing_day_of_month = billing_day if billing_day is not None else day_of_month(now)
    elif account.billing_day_of_month is None:
        account.billing_day_of_month = day_of_month(now)
    account.plan_type = plan_type
    if account.billing_status != "Open":
        account.billing_status = "Open"
        account.cancellation = None


def cancel(account: Account, reason_id: int | None, effective_date: str) -> dict[str, object]:
    """Cancel ``account`` and return the echo the API answers with."""
    echo: dict[str, object] = {"effective_date": effective_date}
    if reason_id is not None:
        echo = {"reason_id": reason_id, **echo}
    account.billing_status = "Canceled"
    account.cancellation = {**echo, "reason": CANCEL_REASONS.get(reason_id or 0)}
    return echo


def price(plan_type: str) -> float:
    """A plan's monthly price: what ranks plans into tiers for the webhook topics."""
    return _PRICES.get(plan_type, 30.0)


def tiers(account: Account) -> list[dict[str, object]]:
    """The account's current usage tiers (one contacts tier: nobody has contacts in the sandbox)."""
    currency = "GBP" if str(account.profile.get("billing_locale", "")).lower() == "en_gb" else "USD"
    return [{
        "usage_type": "CONTACTS", "current_usage": 0, "tier": 1, "tier_min": 0, "tier_max": 500,
        "price": price(account.plan_type), "currency_code": currency,
    }]  # fmt: skip


def plan_view(account: Account) -> dict[str, object]:
    """The v3 ``PlanTiersObject`` (``billing_day_of_month`` is null on trial, as the vendor documents)."""
    return {
        "plan_type": account.plan_type,
        "current_tiers": tiers(account),
        "billing_status": account.billing_status,
        "billing_day_of_month": account.billing_day_of_month,
    }


def legacy_view(account: Account) -> dict[str, object]:
    """The v2 plan object: int ``plan_type``, ``status`` spelled the v2 way (``Cancelled``)."""
    return {
        "status": _V2_STATUS.get(account.billing_status, account.billing_status),
        "plan_type": V3_TO_V2.get(account.plan_type, 0),
        "billing_day_of_month": account.billing_day_of_month,
        "current_tiers": [
            {key: tier[key] for key in ("price", "tier", "tier_min", "tier_max", "current_usage")}
            | {"usage_type": "Contacts"}
            for tier in tiers(account)
        ],
    }


def default_effective_date(now: float) -> str:
    """The cancellation date used when none is given: now."""
    return iso_utc(now)
