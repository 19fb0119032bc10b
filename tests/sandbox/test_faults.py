"""Scripted faults: deferred creates, drop after commit, 5xx, spurious 429, latency, reproducibility."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ctct_partner_async.sandbox import Faults
from tests.sandbox.conftest import StartSandbox
from tests.sandbox.support import Api, FakeClock, provision


async def test_503_create_is_stored_and_appears_after_its_delay(
    start_sandbox: StartSandbox, clock: FakeClock
) -> None:
    """A 503 create stores the request; the account exists once the clock reaches the deferred delay."""
    api = await start_sandbox(faults=Faults(create_503=1.0, deferred_delay=2.0))
    result = await api.create("deferred_user")
    assert result.status == 503
    assert result.body[0]["error_key"] == "service_unavailable"
    sandbox = api.handle.sandbox
    assert sandbox.accounts() == []
    assert sandbox.stats()["deferred_pending"] == 1
    clock.advance(1.9)
    assert (await api.call("GET", "/partner/accounts")).body["site_owner_list"] == []
    clock.advance(0.1)
    listed = await api.call("GET", "/partner/accounts")
    assert [e["site_owner_name"] for e in listed.body["site_owner_list"]] == ["deferred_user"]
    [account] = sandbox.accounts()
    assert account["created_at"] == "2026-03-14T12:00:02.000Z"
    assert account["billing_status"] == "Trial"
    stats = sandbox.stats()
    assert (stats["creates_deferred"], stats["deferred_created"], stats["deferred_pending"]) == (1, 1, 0)


async def test_pending_deferred_create_holds_its_login_name(
    start_sandbox: StartSandbox, clock: FakeClock
) -> None:
    """While a deferred create is pending, a retry with the same login name is a 409 (never a duplicate)."""
    api = await start_sandbox(faults=Faults(create_503=1.0, deferred_delay=5.0))
    assert (await api.create("retry_user")).status == 503
    api.handle.sandbox.faults.create_503 = 0.0
    retry = await api.create("retry_user")
    assert retry.status == 409
    clock.advance(5)
    assert [a["login_name"] for a in api.handle.sandbox.accounts()] == ["retry_user"]
    assert (await api.create("retry_user")).status == 409


async def test_deferred_create_is_dropped_if_the_name_got_taken(
    start_sandbox: StartSandbox, clock: FakeClock
) -> None:
    """If an account holds the login name when the deferred create comes due, it is dropped and counted."""
    api = await start_sandbox(faults=Faults(create_503=1.0, deferred_delay=1.0))
    assert (await api.create("contested")).status == 503
    api.handle.sandbox.seed_account("contested", organization_name="Seeded")
    clock.advance(1)
    accounts = api.handle.sandbox.accounts()
    assert [a["organization_name"] for a in accounts] == ["Seeded"]
    assert api.handle.sandbox.stats()["deferred_dropped"] == 1


async def test_drop_after_commit_leaves_the_account(start_sandbox: StartSandbox) -> None:
    """With drop_after_commit the client sees ServerDisconnectedError, yet the account exists."""
    api = await start_sandbox(faults=Faults(drop_after_commit=1.0))
    headers = await api.headers()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.session.post(
            api.handle.base_url + "/partner/accounts", json=provision("dropped_user"), headers=headers
        )
    sandbox = api.handle.sandbox
    assert [a["login_name"] for a in sandbox.accounts()] == ["dropped_user"]
    entry = sandbox.request_log()[-1]
    assert (entry["status"], entry["fault"], entry["login_name"]) == (
        None,
        "drop_after_commit",
        "dropped_user",
    )
    assert sandbox.stats()["connections_dropped"] == 1
    sandbox.faults.drop_after_commit = 0.0
    assert (await api.create("dropped_user")).status == 409


async def test_drop_after_commit_on_a_plan_change(start_sandbox: StartSandbox) -> None:
    """A dropped PUT still changed the plan (restricted to set_plan with fault_operations)."""
    api = await start_sandbox(faults=Faults(drop_after_commit=1.0, fault_operations=("set_plan",)))
    account = await api.create_ok("dropped_plan")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.call("PUT", f"/partner/accounts/{account}/plan", json_body={"plan_type": "GOLD"})
    assert api.handle.sandbox.accounts()[0]["plan_type"] == "GOLD"


async def test_reads_and_failures_are_never_dropped(start_sandbox: StartSandbox) -> None:
    """drop_after_commit only hits successful state changes: reads and 4xx answer normally."""
    api = await start_sandbox(faults=Faults(drop_after_commit=1.0))
    assert (await api.call("GET", "/partner/accounts")).status == 200
    assert (await api.create("bad")).status == 400


@pytest.mark.parametrize(
    ("fault", "status", "content_type"),
    [
        ("error_500", 500, "application/json"),
        ("error_502", 502, "text/html"),
        ("error_504", 504, "application/json"),
        ("throttle_429", 429, "application/json"),
    ],
)
async def test_error_faults_commit_nothing(
    start_sandbox: StartSandbox, fault: str, status: int, content_type: str
) -> None:
    """500 (array), 502 (HTML, as a proxy), 504 (gateway JSON) and spurious 429 leave no account behind."""
    faults = Faults()
    faults.update({fault: 1.0})
    api = await start_sandbox(faults=faults)
    result = await api.create("never_created")
    assert (result.status, result.content_type) == (status, content_type)
    if fault == "throttle_429":
        assert result.body == {"error_key": "throttled", "error_message": "Too Many Requests"}
    if fault == "error_500":
        assert result.body[0]["error_key"] == "internal_error"
    assert api.handle.sandbox.accounts() == []
    assert api.handle.sandbox.request_log()[-1]["fault"] == fault
    assert api.handle.sandbox.stats()["faults_injected"] == {fault: 1}


async def test_fault_operations_restricts_faults(start_sandbox: StartSandbox) -> None:
    """With fault_operations=('create_account',), other operations are untouched."""
    api = await start_sandbox(faults=Faults(error_500=1.0, fault_operations=("create_account",)))
    assert (await api.call("GET", "/partner/accounts")).status == 200
    assert (await api.create("restricted")).status == 500


async def test_same_seed_same_faults(start_sandbox: StartSandbox) -> None:
    """Two sandboxes with the same seed and request order inject the same faults."""

    async def statuses(seed: int) -> list[int]:
        api = await start_sandbox(seed=seed, faults=Faults(create_503=0.3, error_500=0.2))
        return [(await api.create(f"seeded_{i:02d}")).status for i in range(30)]

    first, second = await statuses(11), await statuses(11)
    assert first == second
    assert {201, 500, 503} <= set(first)


async def test_latency_delays_api_answers(start_sandbox: StartSandbox) -> None:
    """latency adds a real delay to API answers."""
    api = await start_sandbox(faults=Faults(latency=0.05))
    await api.token()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await api.call("GET", "/partner/accounts")).status == 200
    assert loop.time() - started >= 0.05


async def test_token_outage_and_latency(start_sandbox: StartSandbox) -> None:
    """token_outage answers 503; token_latency delays the token endpoint."""
    api = await start_sandbox(faults=Faults(token_outage=True, token_latency=0.05))
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await api.fetch_token()
    assert loop.time() - started >= 0.05
    assert (result.status, result.body["error"]) == (503, "temporarily_unavailable")
    api.handle.sandbox.faults.token_outage = False
    assert (await api.fetch_token()).status == 200


async def test_admin_faults_endpoint_merges_and_checks(api: Api) -> None:
    """PUT /_sandbox/faults merges settings, rejects unknown names and bad values without changing any."""
    merged = await api.admin("PUT", "/faults", {"error_502": 0.5, "fault_operations": ["create_account"]})
    assert merged.status == 200
    assert (merged.body["error_502"], merged.body["fault_operations"]) == (0.5, ["create_account"])
    bad = await api.admin("PUT", "/faults", {"error_500": 0.1, "error_502": 2})
    assert bad.status == 400
    unknown = await api.admin("PUT", "/faults", {"explode": 1})
    assert unknown.status == 400
    current = await api.admin("GET", "/faults")
    assert (current.body["error_500"], current.body["error_502"]) == (0.0, 0.5)
    assert api.handle.sandbox.faults.error_502 == 0.5


async def test_reset_restores_configured_faults(start_sandbox: StartSandbox) -> None:
    """reset() clears state and puts the faults back to the configuration's."""
    api = await start_sandbox(faults=Faults(latency=0.0, error_504=0.0))
    await api.create_ok("before_reset")
    api.handle.sandbox.faults.error_504 = 1.0
    api.handle.sandbox.reset()
    assert api.handle.sandbox.faults.error_504 == 0.0
    assert api.handle.sandbox.accounts() == []
    assert (await api.create("before_reset")).status == 201
