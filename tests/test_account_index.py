"""Reconciliation at scale, counted at the sandbox: the reconciler keeps what it read of the account list
and reads only the tail (what was appended) afterwards. A cold job makes at most one full sweep, a warm
one (the same client) none; with the list reversed or shuffled every row still ends with the right id,
and only the cost rises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ctct_partner_async import Outcome, OutcomeState, PartnerClient
from ctct_partner_async._clock import FakeClock
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox

from .test_bulk import row
from .test_resilience import client_for

EXISTING = 300  # six pages of 50
FAULTS = {"create_503": 0.08, "drop_after_commit": 0.08, "fault_operations": ["create_account"]}
DONE = {OutcomeState.CREATED, OutcomeState.RECONCILED}


@pytest.fixture
async def sandboxes() -> AsyncIterator[Any]:
    async def start(list_order: str = "creation") -> tuple[SandboxHandle, FakeClock]:
        clock = FakeClock(autojump=True)
        config = SandboxConfig(rate_limit=0, daily_quota=0, clock=clock.time, seed=11,
                               existing_accounts=EXISTING, list_order=list_order)  # fmt: skip
        handle = await stack.enter_async_context(run_sandbox(config))
        handle.sandbox.faults.update(FAULTS)
        return handle, clock

    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        yield start


def first_pages(sb: SandboxHandle) -> int:
    """List requests for the first page: the full sweeps the sandbox saw."""
    log = sb.sandbox.request_log()
    return sum(1 for e in log if e["operation"] == "list_accounts" and "offset" not in str(e["path"]))


def list_requests(sb: SandboxHandle) -> int:
    return sum(1 for e in sb.sandbox.request_log() if e["operation"] == "list_accounts")


async def job(client: PartnerClient, start: int, count: int) -> list[Outcome]:
    return [o async for o in client.bulk.create_accounts(row(i) for i in range(start, start + count))]


def assert_right_ids(sb: SandboxHandle, outcomes: list[Outcome]) -> None:
    """Every row ended with an account, the one the sandbox holds for its login name; none twice."""
    held = {a["login_name"]: a["encoded_account_id"] for a in sb.sandbox.accounts()}
    assert {o.state for o in outcomes} <= DONE, [
        (o.key, o.state, o.error) for o in outcomes if o.state not in DONE
    ]
    assert all(o.encoded_account_id == held[o.key] for o in outcomes)
    assert len(held) == len(sb.sandbox.accounts())


async def test_a_cold_job_sweeps_at_most_once_and_a_warm_one_never(sandboxes: Any) -> None:
    """Two jobs of 60 creates with 503s and drops after commit, on one client: the first reads the whole
    list once (six pages and the new ones) and then only its tail; the second reads no first page."""
    sb, clock = await sandboxes()
    async with client_for(sb, clock, rate_limit=None) as client:
        cold = await job(client, 0, 60)
        assert_right_ids(sb, cold)
        assert sum(o.state is OutcomeState.RECONCILED or o.deferred for o in cold) >= 4  # the faults struck
        assert first_pages(sb) == client.accounts.reconciler.full_sweeps == 1
        cold_lists = list_requests(sb)
        warm = await job(client, 60, 60)
        assert_right_ids(sb, warm)
        assert sum(o.state is OutcomeState.RECONCILED or o.deferred for o in warm) >= 4
        assert first_pages(sb) == client.accounts.reconciler.full_sweeps == 1
        warm_lists = list_requests(sb) - cold_lists
    assert cold_lists >= EXISTING // 50  # the one full sweep
    assert warm_lists <= 0.1 * 60 * 3  # a page or two per look, shared by the looks at the same time


@pytest.mark.parametrize("order", ["reverse", "shuffled"])
async def test_another_list_order_still_ends_every_row_with_its_account(sandboxes: Any, order: str) -> None:
    """New accounts first, or anywhere: the tail misses them, so full sweeps come back, and every row
    still ends with the account the sandbox holds for it, never another's, never a second one."""
    sb, clock = await sandboxes(order)
    async with client_for(sb, clock, rate_limit=None) as client:
        outcomes = await job(client, 0, 60)
        outcomes += await job(client, 60, 30)
        sweeps = client.accounts.reconciler.full_sweeps
    assert_right_ids(sb, outcomes)
    assert len(sb.sandbox.accounts()) == EXISTING + 90
    assert sweeps >= 2 and first_pages(sb) == sweeps
