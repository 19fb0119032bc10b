"""v3 client-account operations: list (paginated), create, get and change the plan, cancel.

Pagination: ``offset`` is an opaque token (base64 of the position, ``=`` written as ``*``, as in the
vendor's ``offset=MTA*`` example); a token that does not decode is a 400. ``limit`` outside 10..50, or not
a number, is ignored in favour of the default, as the spec says. ``_links.next.href`` starts with ``/v3``
and is left out on the last page.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlencode

from . import plans, webhooks
from .pipeline import Call, Route, reader, writer
from .replies import Refusal, Reply, error_list, invalid, not_found
from .state import Sandbox
from .store import Account
from .validation import check_cancellation, check_plan_change, check_provision

ACCOUNT_TYPES = ("all", "managed", "unmanaged")
CREATE = "create_account"


def encode_offset(position: int) -> str:
    """The opaque token for a list position."""
    return base64.b64encode(str(position).encode()).decode().replace("=", "*")


def decode_offset(token: str) -> int:
    """The position in a token; ``ValueError`` if it is not one of ours."""
    try:
        text = base64.b64decode(token.replace("*", "="), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("bad offset") from exc
    if not text.isdigit():
        raise ValueError("bad offset")
    return int(text)


def page_limit(raw: str | None, default: int) -> int:
    """``limit`` if it is a number in 10..50, else ``default``."""
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 4):  # no other script's digits, no huge number
        return default
    value = int(text)
    return value if 10 <= value <= 50 else default


def site_owner(account: Account) -> dict[str, object]:
    """One entry of ``site_owner_list``."""
    entry: dict[str, object] = {"encoded_account_id": account.encoded_account_id}
    if account.organization_name is not None:
        entry["organization_name"] = account.organization_name
    entry["site_owner_name"] = account.login_name
    entry["billing_status"] = account.billing_status
    entry["subscriber_count"] = 0
    return entry


def list_accounts(sandbox: Sandbox, call: Call) -> Reply:
    """``GET /partner/accounts``."""
    account_type = call.query.get("account_type")
    if account_type is not None and account_type not in ACCOUNT_TYPES:
        raise invalid([f"account_type must be one of {', '.join(ACCOUNT_TYPES)}"])
    limit = page_limit(call.query.get("limit"), sandbox.config.page_size_default)
    offset = call.query.get("offset")
    try:
        start = decode_offset(offset) if offset else 0
    except ValueError:
        raise invalid(["offset is not a valid page token"]) from None
    wanted = {"managed": True, "unmanaged": False}.get(account_type or "all")
    accounts, total = sandbox.store.page(wanted, start, limit)
    payload: dict[str, object] = {"site_owner_list": [site_owner(a) for a in accounts]}
    if start + limit < total:
        query = {"offset": encode_offset(start + limit), "limit": str(limit)}
        if account_type is not None:
            query["account_type"] = account_type
        payload["_links"] = {"next": {"href": "/v3/partner/accounts?" + urlencode(query, safe="*")}}
    return Reply(200, payload)


def create_account(sandbox: Sandbox, call: Call) -> Reply:
    """``POST /partner/accounts``: 201, or 409 if the login name is held, or a deferring 503."""
    body = call.checked(check_provision)
    login = str(body["login_name"])
    call.notes["login_name"] = login
    if sandbox.store.login_taken(login):
        raise Refusal(error_list(409, "conflict", f"The login name {login} is already in use"))
    body.pop("password", None)  # never stored; the body is ours (freshly parsed)
    if sandbox.injector.defer_create(CREATE):
        sandbox.store.defer(body, call.now + sandbox.faults.deferred_delay)
        sandbox.ledger.counts["creates_deferred"] += 1
        message = "Provisioning dependencies are unavailable; the request is stored and will be processed"
        return error_list(503, "service_unavailable", message, fault="create_503")
    account = sandbox.store.create(body, call.now)
    sandbox.ledger.counts["creates_committed"] += 1
    return Reply(201, {"encoded_account_id": account.encoded_account_id,
                       "provision_uuid": account.provision_uuid})  # fmt: skip


def require_account(sandbox: Sandbox, call: Call) -> Account:
    """The account named by the path, or a 404."""
    account_id = call.params["encoded_account_id"]
    account = sandbox.find(account_id)
    if account is None:
        raise not_found(f"Account {account_id}")
    return account


def get_plan(sandbox: Sandbox, call: Call) -> Reply:
    """``GET .../plan``."""
    return Reply(200, plans.plan_view(require_account(sandbox, call)))


def set_plan(sandbox: Sandbox, call: Call) -> Reply:
    """``PUT .../plan``: see :mod:`.plans` for the rules."""
    account = require_account(sandbox, call)
    body = call.checked(check_plan_change)
    day = body.get("billing_day_of_month")
    old_plan = account.plan_type
    plans.change_plan(account, str(body["plan_type"]), day if isinstance(day, int) else None, call.now)
    group = body.get("plan_group_id")
    if isinstance(group, int):
        account.plan_group_id = group
    webhooks.plan_changed(sandbox, call, account, old_plan)
    return Reply(200, plans.plan_view(account))


def cancel_account(sandbox: Sandbox, call: Call) -> Reply:
    """``PUT .../status/cancel``: sets ``Canceled`` now and echoes the reason and effective date.

    Cancelling a canceled account again is accepted (200) and records the new reason and date.
    """
    account = require_account(sandbox, call)
    body = call.checked(check_cancellation)
    reason = body.get("reason_id")
    effective = body.get("effective_date")
    effective_text = effective if isinstance(effective, str) else plans.default_effective_date(call.now)
    echo = plans.cancel(account, reason if isinstance(reason, int) else None, effective_text)
    webhooks.canceled(sandbox, call, account)
    return Reply(200, echo)


_ACCOUNT = "/partner/accounts/{encoded_account_id}"
ROUTES: list[Route] = [
    ("GET", "/partner/accounts", reader("list_accounts", list_accounts)),
    ("POST", "/partner/accounts", writer(CREATE, create_account)),
    ("GET", f"{_ACCOUNT}/plan", reader("get_plan", get_plan)),
    ("PUT", f"{_ACCOUNT}/plan", writer("set_plan", set_plan)),
    ("PUT", f"{_ACCOUNT}/status/cancel", writer("cancel_account", cancel_account, body="optional")),
]
