"""v3 operations inside a client account: account_operations/sync, SSO users, unsubscribing contacts.

``account_operations/sync`` proxies nothing: it answers 200 with what it would have called
(``{"account", "method", "url", "query", "headers", "payload"}``, path parameters substituted, header
*names* only, the payload string parsed as JSON; an empty payload is ``null``). A ``{name}`` left in the
URL without a path parameter, or a payload that is not JSON, is a 400.
"""

from __future__ import annotations

import json
import re

from .partner import require_account
from .pipeline import Call, Route, writer
from .replies import Refusal, Reply, error_list, invalid
from .state import Sandbox
from .validation import check_sso_user, check_sync, check_unsubscribe

_PLACEHOLDER = re.compile(r"\{[^{}/]+\}")
_SSO_KEPT = ("first_name", "last_name", "role_name", "contact_email", "login_name")


def _pairs(body: dict[str, object], name: str, key: str, value: str) -> dict[str, str]:
    items = body.get(name)
    if not isinstance(items, list):
        return {}
    return {str(item[key]): str(item[value]) for item in items if isinstance(item, dict)}


def _payload(raw: object) -> object:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise invalid(["account_operation_payload must be a JSON document in a string"]) from None


def account_operation(sandbox: Sandbox, call: Call) -> Reply:
    """``POST .../account_operations/sync``."""
    account = require_account(sandbox, call)
    body = call.checked(check_sync)
    url = str(body["account_operation_url"])
    path_params = _pairs(body, "account_operation_path_parameters", "path_param_key", "path_param_value")
    for name, value in path_params.items():
        url = url.replace("{" + name + "}", value)
    if _PLACEHOLDER.search(url):
        raise invalid([f"account_operation_url {url} has a path parameter without a value"])
    headers = _pairs(body, "account_operation_headers", "header_key", "header_value")
    return Reply(200, {
        "account": account.encoded_account_id,
        "method": str(body["account_operation_method"]).upper(),
        "url": url,
        "query": _pairs(body, "account_operation_query_parameters", "query_param_key", "query_param_value"),
        "headers": sorted(headers),
        "payload": _payload(body.get("account_operation_payload")),
    })  # fmt: skip


def create_sso_user(sandbox: Sandbox, call: Call) -> Reply:
    """``POST .../users/sso``: 201 with no body; 409 if the account already has that SSO login name."""
    account = require_account(sandbox, call)
    body = call.checked(check_sso_user)
    login = str(body["login_name"])
    users = account.sso_users if account.sso_users is not None else {}
    if login.lower() in users:
        raise Refusal(error_list(409, "conflict", f"The SSO user {login} already exists in this account"))
    users[login.lower()] = {key: body[key] for key in _SSO_KEPT}
    account.sso_users = users
    return Reply(201)


def unsubscribe_contacts(sandbox: Sandbox, call: Call) -> Reply:
    """``POST .../contacts/unsubscribe``: ``{"unsubscribed_count": n}``, n the distinct addresses given.

    ``global_unsubscribe`` records the address against every account.
    """
    account = require_account(sandbox, call)
    body = call.checked(check_unsubscribe)
    raw = body.get("email_addresses")
    addresses = {str(address).lower() for address in raw} if isinstance(raw, list) else set()
    targets = list(sandbox.store) if body.get("global_unsubscribe") is True else [account]
    for target in targets:
        target.unsubscribed = (target.unsubscribed or set()) | addresses
    return Reply(200, {"unsubscribed_count": len(addresses)})


_ACCOUNT = "/partner/accounts/{encoded_account_id}"
ROUTES: list[Route] = [
    ("POST", f"{_ACCOUNT}/account_operations/sync", writer("account_operation", account_operation)),
    ("POST", f"{_ACCOUNT}/users/sso", writer("create_sso_user", create_sso_user)),
    ("POST", f"{_ACCOUNT}/contacts/unsubscribe", writer("unsubscribe_contacts", unsubscribe_contacts)),
]
