"""The legacy v2 billing-plan endpoint, on the same accounts as v3.

``GET``/``PUT /v2/partner/accounts/{account_id}/plan?api_key=KEY`` with Basic ``client_id:client_secret``.
``plan_type`` is an int (:data:`.plans.V2_PLAN_TYPES`: 1 TRIAL, 2 BRONZE, 3 SILVER, 4 GOLD, 5 LITE,
6 GOOD, 7 BETTER, 8 BEST); ``status`` is spelled ``Cancelled`` here. 406 unless ``Accept`` allows
``application/json`` (no ``Accept`` at all is taken as ``*/*``); 415 if a PUT body is not declared JSON.

Choices: ``plan_type`` 1 on an account still on trial is accepted and changes nothing; on any other account
it is a 400 (no return to trial). A cancel body (``status`` ``Cancelled``) needs ``cancel_date``
(ISO-8601); ``cancel_reason`` is an optional int. The answer to every PUT is the plan object.
"""

from __future__ import annotations

from aiohttp import web

from . import plans, webhooks
from .pipeline import Call, Gate, Route, reader, writer
from .replies import Refusal, Reply, error_list, invalid
from .state import Sandbox
from .store import Account
from .validation import check_date

_ACCEPTABLE = frozenset({"application/json", "*/*", "application/*"})


def accepts_json(accept: str | None) -> bool:
    """Whether an ``Accept`` header allows a JSON answer."""
    if not accept:
        return True
    return any(part.split(";", 1)[0].strip().lower() in _ACCEPTABLE for part in accept.split(","))


def negotiating(gate: Gate) -> Gate:
    """``gate``, then the v2 ``Accept`` check (406)."""

    def check(sandbox: Sandbox, request: web.Request, now: float) -> Reply | None:
        refused = gate(sandbox, request, now)
        if refused is None and not accepts_json(request.headers.get("Accept")):
            return error_list(406, "not_acceptable", "The Accept header must allow application/json")
        return refused

    return check


def _account(sandbox: Sandbox, call: Call) -> Account:
    account = sandbox.find(call.params["account_id"])
    if account is None:
        raise Refusal(error_list(404, "not_found", "Either the partner or account specified was not found"))
    return account


def get_plan(sandbox: Sandbox, call: Call) -> Reply:
    """``GET /v2/partner/accounts/{account_id}/plan``."""
    return Reply(200, plans.legacy_view(_account(sandbox, call)))


def put_plan(sandbox: Sandbox, call: Call) -> Reply:
    """``PUT /v2/partner/accounts/{account_id}/plan``: a plan change or a cancel."""
    account = _account(sandbox, call)
    body = call.json()
    old_plan = account.plan_type
    if "status" in body:
        _cancel(account, body)
        webhooks.canceled(sandbox, call, account)
    else:
        _change(account, body, call.now)
        webhooks.plan_changed(sandbox, call, account, old_plan)
    return Reply(200, plans.legacy_view(account))


def _cancel(account: Account, body: dict[str, object]) -> None:
    problems: list[str] = []
    if body.get("status") != "Cancelled":
        problems.append("status can only be Cancelled")
    check_date(body, "cancel_date", problems, required=True)
    reason = body.get("cancel_reason")
    if reason is not None and (not isinstance(reason, int) or isinstance(reason, bool)):
        problems.append("cancel_reason must be an integer")
    if problems:
        raise invalid(problems)
    plans.cancel(account, reason if isinstance(reason, int) else None, str(body["cancel_date"]))


def _change(account: Account, body: dict[str, object], now: float) -> None:
    number = body.get("plan_type")
    if not isinstance(number, int) or isinstance(number, bool) or number not in plans.V2_PLAN_TYPES:
        raise invalid([f"plan_type must be one of {sorted(plans.V2_PLAN_TYPES)}"])
    day = body.get("billing_day_of_month")
    if day is not None and (not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= 31):
        raise invalid(["billing_day_of_month must be an integer from 1 to 31"])
    plan = plans.V2_PLAN_TYPES[number]
    if plan == plans.TRIAL:
        if account.plan_type != plans.TRIAL:
            raise invalid(["plan_type 1 (trial) is not allowed once an account is off trial"])
        return
    plans.change_plan(account, plan, day, now)


_PLAN = "/partner/accounts/{account_id}/plan"
ROUTES: list[Route] = [
    ("GET", _PLAN, reader("v2_get_plan", get_plan)),
    ("PUT", _PLAN, writer("v2_put_plan", put_plan)),
]
