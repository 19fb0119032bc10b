"""Typed values for everything the partner API sends and receives.

Models are dumb: no I/O, no JSON names, no validation (see ``validation``). Server vocabularies
(``plan_type``, ``billing_status``) are open strings with the known values as constants, so a new server
value never breaks a client; cancel reasons and webhook topics are ``IntEnum``s whose fields still accept
an unknown ``int``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping

import attrs

__all__ = [
    "AccountOperation",
    "AccountPage",
    "AccountSummary",
    "BillingStatus",
    "CancelReason",
    "Cancellation",
    "CreateResult",
    "CreateStatus",
    "CreatedAccount",
    "EventType",
    "LegacyPlan",
    "NewAccount",
    "PartnerNotification",
    "Plan",
    "PlanChange",
    "PlanType",
    "SsoUser",
    "Tier",
    "UnsubscribeRequest",
    "UnsubscribeResult",
    "WebhookSubscription",
    "WebhookTopic",
]


class PlanType:
    """Known ``plan_type`` values. The field is an open string: any other value passes through."""

    TRIAL = "TRIAL"
    BRONZE = "BRONZE"
    SILVER = "SILVER"
    GOLD = "GOLD"
    # Older plans, still accepted by the API.
    GOOD = "GOOD"
    BETTER = "BETTER"
    BEST = "BEST"
    LITE = "LITE"

    KNOWN = frozenset({TRIAL, BRONZE, SILVER, GOLD, GOOD, BETTER, BEST, LITE})
    PAID = KNOWN - {TRIAL}
    """The plans an account can be moved to: every known one but ``TRIAL`` (no account goes back to it)."""


class BillingStatus:
    """Known ``billing_status`` values. The field is an open string."""

    TRIAL = "Trial"
    OPEN = "Open"
    CANCELED = "Canceled"
    TRIAL_END = "Trial End"
    ACTIVE = "Active"


class CancelReason(enum.IntEnum):
    """The documented cancellation reason codes (the same in v2 and v3)."""

    COST_TOO_HIGH = 1
    USING_COMPETITIVE_SERVICE = 2
    NOT_DOING_EMAIL_MARKETING = 3
    SOMETHING_MISSING_OR_NOT_WORKING = 11
    DOING_IT_IN_HOUSE = 12
    POOR_RESULTS = 14
    TOO_DIFFICULT_TO_USE = 21
    CANCELED_ONLINE_BY_CUSTOMER = 27
    DISSATISFIED_WITH_BILLING_POLICIES = 30


class WebhookTopic(enum.IntEnum):
    """The partner webhook topics."""

    BILLING_TIER_UPGRADE = 1
    BILLING_TIER_DOWNGRADE = 2
    ACCOUNT_CANCELLED = 3
    ACCOUNT_DISABLED = 4


@attrs.frozen(kw_only=True)
class NewAccount:
    """A client account to create (the API's ``Provision``). ``password`` never shows in a repr."""

    contact_email: str
    login_name: str
    country_code: str
    state_code: str = ""
    password: str | None = attrs.field(default=None, repr=False)
    contact_phone: str | None = None
    organization_name: str | None = None
    organization_phone: str | None = None
    time_zone_id: str | None = None
    website: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    partner_account_id: str | None = None
    billing_locale: str | None = None
    managed_site_owner: bool | None = None
    enable_single_billing: bool | None = None
    gdpr_opt_out: bool | None = None
    external_id: str | None = None
    external_provider: str | None = None


@attrs.frozen(kw_only=True)
class CreatedAccount:
    """The answer to a create (the API's ``ProvisionResponse``)."""

    encoded_account_id: str
    provision_uuid: str | None = None


class CreateStatus(enum.StrEnum):
    """How an account creation ended (a failure raises instead)."""

    CREATED = "created"
    """This call created the account."""
    RECONCILED = "reconciled"
    """An earlier, ambiguous attempt of this call created it; the id was found in the account list."""
    PENDING = "pending"
    """The API stored the request (503) and will create the account later; no id yet."""
    ADOPTED = "adopted"
    """The login name was taken by a listed account that matches this one (``adopt_existing``): not
    created by this call, perhaps by an earlier run whose journal is lost."""


@attrs.frozen(kw_only=True)
class CreateResult:
    """The outcome of ``accounts.create``: created, reconciled, adopted or pending, with the id once known."""

    status: CreateStatus
    login_name: str
    organization_name: str | None = None
    encoded_account_id: str | None = None
    provision_uuid: str | None = None
    attempts: int = 1
    """How many requests this create sent (a retry, or a replay after a 401, is one more)."""
    deferred: bool = False
    """True when the account came from a request the API stored (503) and processed later."""

    @property
    def done(self) -> bool:
        """Whether the account exists and its id is known."""
        return self.encoded_account_id is not None


@attrs.frozen(kw_only=True)
class AccountSummary:
    """One entry of the account list. The API does not return the login name."""

    encoded_account_id: str
    organization_name: str | None = None
    site_owner_name: str | None = None
    billing_status: str | None = None
    subscriber_count: int | None = None
    last_login_date: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class AccountPage:
    """One page of the account list; ``next_href`` is ``None`` on the last page."""

    accounts: list[AccountSummary]
    next_href: str | None = None


@attrs.frozen(kw_only=True)
class Tier:
    """A billing tier of a plan (read-only)."""

    usage_type: str | None = None
    current_usage: float | None = None
    tier: int | None = None
    tier_min: float | None = None
    tier_max: float | None = None
    price: float | None = None
    currency_code: str | None = None


@attrs.frozen(kw_only=True)
class Plan:
    """A client account's billing plan (the API's ``PlanTiersObject``)."""

    plan_type: str | None = None
    billing_status: str | None = None
    billing_day_of_month: int | None = None
    current_tiers: list[Tier] = attrs.Factory(list)


@attrs.frozen(kw_only=True)
class PlanChange:
    """A plan change (the API's ``PlanInfo``). A non-``TRIAL`` plan also reactivates a canceled account."""

    plan_type: str
    plan_group_id: int | None = None
    billing_day_of_month: int | None = None


@attrs.frozen(kw_only=True)
class Cancellation:
    """A cancellation (the API's ``AccountCancellation``). ``effective_date`` is timezone-aware."""

    reason_id: CancelReason | int | None = None
    effective_date: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class AccountOperation:
    """A v3 call made on behalf of a client account (``account_operations/sync``).

    ``url`` keeps its parameter names (``/contacts/{contact_id}``); ``payload`` is the inner JSON as a
    string, the way the API wants it.
    """

    method: str
    url: str
    payload: str | None = None
    query_params: Mapping[str, str] = attrs.Factory(dict)
    path_params: Mapping[str, str] = attrs.Factory(dict)
    headers: Mapping[str, str] = attrs.Factory(dict)


@attrs.frozen(kw_only=True)
class SsoUser:
    """A user to add to an SSO-enabled client account; every field is required."""

    first_name: str
    last_name: str
    role_name: str
    contact_email: str
    login_name: str
    external_id: str
    external_provider: str


@attrs.frozen(kw_only=True)
class UnsubscribeRequest:
    """Contacts to unsubscribe in a client account (at most 500 addresses)."""

    email_addresses: list[str]
    update_source: str
    opt_out_reason: str | None = None
    delete_contacts: bool | None = None
    global_unsubscribe: bool | None = None


@attrs.frozen(kw_only=True)
class UnsubscribeResult:
    """How many contacts were unsubscribed."""

    unsubscribed_count: int


@attrs.frozen(kw_only=True)
class WebhookSubscription:
    """A partner webhook topic and its callback (also the answer to a test send)."""

    topic_id: WebhookTopic | int
    hook_uri: str | None = None
    topic_name: str | None = None
    topic_description: str | None = None


class EventType:
    """Known ``event_type`` values of a partner webhook notification. The field is an open string."""

    TIER_INCREASE = "tier.increase"
    TIER_DECREASE = "tier.decrease"
    ACCOUNT_CANCEL = "account.cancel"
    ACCOUNT_DISABLE = "account.disable"

    TOPICS: Mapping[str, WebhookTopic] = {
        TIER_INCREASE: WebhookTopic.BILLING_TIER_UPGRADE,
        TIER_DECREASE: WebhookTopic.BILLING_TIER_DOWNGRADE,
        ACCOUNT_CANCEL: WebhookTopic.ACCOUNT_CANCELLED,
        ACCOUNT_DISABLE: WebhookTopic.ACCOUNT_DISABLED,
    }
    """The topic each known event type is sent for."""


@attrs.frozen(kw_only=True)
class PartnerNotification:
    """A verified partner webhook notification: a pointer to state, not the state itself.

    ``url`` names what changed (``.../partner/accounts/{id}/plan``); ``account_id`` is parsed from it
    (``None`` if it names no account); ``topic`` is the topic of a known ``event_type`` (``None`` for an
    unknown one). ``api_key`` is the partner API key the body names: a secret, never in a repr.
    """

    event_type: str
    url: str
    account_id: str | None = None
    topic: WebhookTopic | None = None
    api_key: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class LegacyPlan:
    """A billing plan as the legacy v2 endpoint returns it (``plan_type`` is an int, 1 = trial)."""

    status: str | None = None
    plan_type: int | None = None
    billing_day_of_month: int | None = None
    current_tiers: list[Tier] = attrs.Factory(list)
