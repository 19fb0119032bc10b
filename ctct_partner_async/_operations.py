"""For each partner operation: a pure ``build_*`` that validates its input and returns the ``Request``,
and a pure ``parse_*`` that turns a successful ``Response`` into models. No I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import _serde as serde
from . import _validation as validation
from ._errors import FieldError, ValidationError
from ._models import (
    AccountOperation,
    AccountPage,
    Cancellation,
    CreatedAccount,
    LegacyPlan,
    NewAccount,
    Plan,
    PlanChange,
    SsoUser,
    UnsubscribeRequest,
    UnsubscribeResult,
    WebhookSubscription,
)
from ._protocol import IDEMPOTENT_METHODS, JSON_HEADERS, Request, Response, decode_json, encode_json

ACCOUNTS = "partner/accounts"
WEBHOOKS = "partner/webhooks/subscriptions"
_ACCOUNT = ACCOUNTS + "/{encoded_account_id}"
_TOPIC = WEBHOOKS + "/{topic_id}"

TEMPLATES: dict[str, str] = {
    "list_accounts": ACCOUNTS,
    "create_account": ACCOUNTS,
    "get_plan": _ACCOUNT + "/plan",
    "update_plan": _ACCOUNT + "/plan",
    "cancel_account": _ACCOUNT + "/status/cancel",
    "account_operation": _ACCOUNT + "/account_operations/sync",
    "create_sso_user": _ACCOUNT + "/users/sso",
    "unsubscribe_contacts": _ACCOUNT + "/contacts/unsubscribe",
    "list_webhooks": WEBHOOKS,
    "get_webhook": _TOPIC,
    "subscribe_webhook": _TOPIC,
    "unsubscribe_webhook": _TOPIC,
    "send_webhook_test": _TOPIC + "/tests",
    "legacy_get_plan": _ACCOUNT + "/plan",
    "legacy_update_plan": _ACCOUNT + "/plan",
    "legacy_cancel": _ACCOUNT + "/plan",
}
"""Each operation's path under the API's base URL with its ids as parameters (``url.template`` in
telemetry: low-cardinality, and never an account id). A list's next pages are ``list_accounts`` too."""


def _json_request(
    method: str,
    url: str,
    operation: str,
    body: Any,
    *,
    idempotent: bool | None = None,
    reconcilable: bool = False,
    secrets: tuple[str, ...] = (),
) -> Request:
    """A request with a JSON body; ``idempotent`` defaults to what the method promises (PUT yes, POST no)."""
    try:
        encoded = encode_json(body)
    except UnicodeEncodeError:
        validation.check_text(body)  # names the field
        raise
    return Request(
        method,
        url,
        operation,
        body=encoded,
        headers=JSON_HEADERS,
        idempotent=method in IDEMPOTENT_METHODS if idempotent is None else idempotent,
        reconcilable=reconcilable,
        secrets=secrets,
    )


def _account_url(account_id: str, suffix: str) -> str:
    validation.check_account_id(account_id)
    return f"{ACCOUNTS}/{account_id}/{suffix}"


def _topic_url(topic_id: int, suffix: str = "") -> str:
    validation.check_topic_id(topic_id)
    return f"{WEBHOOKS}/{int(topic_id)}{suffix}"


# --- accounts ---------------------------------------------------------------------------------------


def build_list_accounts(*, account_type: str = "all", page_size: int = 50) -> Request:
    validation.check_list_query(account_type, page_size)
    query = {"limit": str(page_size), "account_type": account_type}
    return Request("GET", ACCOUNTS, "list_accounts", query=query)


def build_list_accounts_next(next_href: str) -> Request:
    """The request for the page a ``_links.next.href`` points to (it already holds ``/v3``)."""
    if not next_href.startswith("/") or next_href.startswith("//"):
        raise ValidationError([FieldError("next_href", "must be a path on the API host")])
    return Request("GET", next_href, "list_accounts")


def parse_account_page(response: Response) -> AccountPage:
    return serde.structure(decode_json(response) or {}, AccountPage)


def build_create_account(account: NewAccount) -> Request:
    validation.check_new_account(account)
    body = serde.unstructure(account)
    secrets = (account.password,) if account.password else ()
    return _json_request(
        "POST", ACCOUNTS, "create_account", body, idempotent=False, reconcilable=True, secrets=secrets
    )


def parse_created_account(response: Response) -> CreatedAccount:
    return serde.structure(decode_json(response), CreatedAccount)


def build_get_plan(account_id: str) -> Request:
    return Request("GET", _account_url(account_id, "plan"), "get_plan")


def build_update_plan(account_id: str, change: PlanChange) -> Request:
    validation.check_plan_change(change)
    return _json_request("PUT", _account_url(account_id, "plan"), "update_plan", serde.unstructure(change))


def parse_plan(response: Response) -> Plan:
    return serde.structure(decode_json(response) or {}, Plan)


def build_cancel(account_id: str, cancellation: Cancellation) -> Request:
    validation.check_cancellation(cancellation)
    url = _account_url(account_id, "status/cancel")
    return _json_request("PUT", url, "cancel_account", serde.unstructure(cancellation))


def parse_cancellation(response: Response) -> Cancellation:
    return serde.structure(decode_json(response) or {}, Cancellation)


def build_operate(account_id: str, operation: AccountOperation) -> Request:
    validation.check_operation(operation)
    url = _account_url(account_id, "account_operations/sync")
    body = serde.unstructure(operation)
    idempotent = operation.method.upper() == "GET"
    return _json_request("POST", url, "account_operation", body, idempotent=idempotent)


def parse_operation_result(response: Response) -> Any:
    return decode_json(response)


def build_create_sso_user(account_id: str, user: SsoUser) -> Request:
    validation.check_sso_user(user)
    url = _account_url(account_id, "users/sso")
    return _json_request("POST", url, "create_sso_user", serde.unstructure(user), idempotent=False)


def build_unsubscribe_contacts(account_id: str, request: UnsubscribeRequest) -> Request:
    validation.check_unsubscribe(request)
    url = _account_url(account_id, "contacts/unsubscribe")
    return _json_request("POST", url, "unsubscribe_contacts", serde.unstructure(request))


def parse_unsubscribe_result(response: Response) -> UnsubscribeResult:
    return serde.structure(decode_json(response), UnsubscribeResult)


# --- webhooks ---------------------------------------------------------------------------------------


def build_list_webhooks() -> Request:
    return Request("GET", WEBHOOKS, "list_webhooks")


def parse_webhooks(response: Response) -> list[WebhookSubscription]:
    return serde.structure(decode_json(response) or [], list[WebhookSubscription])


def build_get_webhook(topic_id: int) -> Request:
    return Request("GET", _topic_url(topic_id), "get_webhook")


def build_subscribe_webhook(topic_id: int, hook_uri: str) -> Request:
    validation.check_hook_uri(hook_uri)
    return _json_request("PUT", _topic_url(topic_id), "subscribe_webhook", {"hook_uri": hook_uri})


def build_unsubscribe_webhook(topic_id: int) -> Request:
    return Request("DELETE", _topic_url(topic_id), "unsubscribe_webhook")


def build_send_webhook_test(topic_id: int) -> Request:
    return Request("POST", _topic_url(topic_id, "/tests"), "send_webhook_test")


def parse_webhook(response: Response) -> WebhookSubscription:
    return serde.structure(decode_json(response), WebhookSubscription)


# --- legacy v2 billing ------------------------------------------------------------------------------


def build_legacy_get_plan(account_id: str) -> Request:
    return Request("GET", _account_url(account_id, "plan"), "legacy_get_plan")


def build_legacy_update_plan(account_id: str, plan_type: int, billing_day_of_month: int | None) -> Request:
    validation.check_legacy_plan(plan_type, billing_day_of_month)
    body: dict[str, Any] = {"plan_type": plan_type}
    if billing_day_of_month is not None:
        body["billing_day_of_month"] = billing_day_of_month
    return _json_request("PUT", _account_url(account_id, "plan"), "legacy_update_plan", body)


def build_legacy_cancel(account_id: str, reason: int | None, cancel_date: dt.datetime) -> Request:
    validation.check_cancellation(Cancellation(reason_id=reason, effective_date=cancel_date),
                                  date_field="cancel_date")  # fmt: skip
    body: dict[str, Any] = {"status": "Cancelled", "cancel_date": serde.unstructure(cancel_date)}
    if reason is not None:
        body["cancel_reason"] = int(reason)
    return _json_request("PUT", _account_url(account_id, "plan"), "legacy_cancel", body)


def parse_legacy_plan(response: Response) -> LegacyPlan:
    return serde.structure(decode_json(response) or {}, LegacyPlan)
