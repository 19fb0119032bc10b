"""Reconciliation at scale, counted at the sandbox: the reconciler keeps what it read of the account list
and reads only the tail (what was appended) afterwards. A cold job makes at most one full sweep, a warm
one (the same client) none; with the list reversed or shuffled every row still ends with the right id,
and only the cost rises."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ctct_partner_async import Outcome, OutcomeState, PartnerClient, cli
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._models import AccountPage, AccountSummary
from ctct_partner_async._provisioning import Reconciler
from ctct_partner_async.journal import Journal
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
        config = SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0, clock=clock.time, seed=11,
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


async def test_a_journal_keeps_the_index_so_a_later_job_with_a_new_client_starts_warm(
    sandboxes: Any, tmp_path: Path
) -> None:
    """The journal stores the index and its tail: a job run later with the same journal, by a new client
    (a rerun, another process), reads no first page; every row ends with its account."""
    sb, clock = await sandboxes()
    path = tmp_path / "job.sqlite"
    async with client_for(sb, clock, rate_limit=None) as client:
        with Journal(path, job="provision") as journal:
            first = [
                o async for o in client.bulk.create_accounts((row(i) for i in range(40)), journal=journal)
            ]
    assert first_pages(sb) == 1
    with Journal(path, job="other") as journal:
        accounts, tail = journal.account_index(None)
    assert tail is not None and len(accounts) >= EXISTING  # every page the sweep read, whoever asked
    async with client_for(sb, clock, rate_limit=None) as client:
        with Journal(path, job="provision") as journal:
            later = [
                o async for o in client.bulk.create_accounts((row(i) for i in range(40, 80)), journal=journal)
            ]
        assert client.accounts.reconciler.full_sweeps == 0
    assert first_pages(sb) == 1
    assert_right_ids(sb, first + later)
    assert sum(o.state is OutcomeState.RECONCILED or o.deferred for o in later) >= 2


async def test_accounts_sync_and_list_from_the_journal(
    sandboxes: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``accounts sync`` reads the whole list into the journal the first time and only the tail after;
    ``accounts list --from-journal`` prints it with no request and no credentials."""
    sb, _ = await sandboxes()
    sb.sandbox.faults.update({"create_503": 0.0, "drop_after_commit": 0.0})
    journal = str(tmp_path / "accounts.sqlite")
    flags = ["--base-url", sb.base_url, "--token-url", sb.token_url, "--api-key", "sandbox-api-key",
             "--client-id", "sandbox-client", "--client-secret", "sandbox-secret", "--token-jitter", "0"]  # fmt: skip
    assert await cli.run(["accounts", "sync", "--journal", journal, *flags]) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"{EXISTING} accounts in {journal} ({EXISTING} new; read the whole list, 1 sweep)"
    )
    reads = list_requests(sb)
    assert reads == EXISTING // 50  # six full pages, the last without a next link
    sb.sandbox.seed_account("synced_later_1", organization_name="Later")
    assert await cli.run(["accounts", "sync", "--journal", journal, *flags]) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"{EXISTING + 1} accounts in {journal} (1 new; read the list's tail, 1 sweep)"
    )
    assert list_requests(sb) == reads + 2  # the last page again (now with a next link) and the new one
    for var in ("CTCT_API_KEY", "CTCT_CLIENT_ID", "CTCT_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    requests = sb.sandbox.stats()["api_requests"]
    assert await cli.run(["accounts", "list", "--from-journal", journal, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == EXISTING + 1 and lines[-1]["site_owner_name"] == "synced_later_1"
    assert lines[-1]["organization_name"] == "Later" and sb.sandbox.stats()["api_requests"] == requests


async def test_looks_within_the_batch_interval_share_one_read_of_the_tail() -> None:
    """Ambiguous and pending rows don't read the list once each: a look that comes within
    ``batch_interval`` of the last tail read waits for the next one, which serves every look that came
    meanwhile."""
    clock = FakeClock()
    listed = [AccountSummary(encoded_account_id=f"id{i}", site_owner_name=f"user_{i}") for i in range(3)]
    reads: list[str | None] = []

    async def read_page(href: str | None, until: float) -> AccountPage:
        reads.append(href)
        return AccountPage(accounts=list(listed), next_href=None)

    reconciler = Reconciler(read_page, clock)
    reconciler.warm([], "/v3/partner/accounts?offset=MA*")
    assert (await reconciler.find("user_0", None, wait=0)) is not None
    assert reads == ["/v3/partner/accounts?offset=MA*"]
    listed += [AccountSummary(encoded_account_id=f"id{i}", site_owner_name=f"user_{i}") for i in range(3, 8)]
    looks = []
    for i in range(3, 8):
        looks.append(asyncio.create_task(reconciler.find(f"user_{i}", None, wait=0, within=30)))
        clock.advance(0.15)
        for _ in range(5):
            await asyncio.sleep(0)
    assert len(reads) == 1 and not any(look.done() for look in looks)
    clock.advance(0.3)  # the batch interval since the first read has passed
    found = await asyncio.gather(*looks)
    assert [f.encoded_account_id for f in found if f is not None] == [f"id{i}" for i in range(3, 8)]
    assert len(reads) == 2 and reconciler.full_sweeps == 0


def test_a_journal_index_is_used_only_for_the_key_whose_list_it_is(tmp_path: Path) -> None:
    """The index is stored with a fingerprint of the API key and base URL: another key's client gets
    nothing from it (so never another partner's account id), and saving its own replaces it whole."""
    mine = [AccountSummary(encoded_account_id="a07e1mine0001", site_owner_name="user_mine")]
    theirs = [AccountSummary(encoded_account_id="a07e1other001", site_owner_name="user_other")]
    with Journal(tmp_path / "j.sqlite", job="provision") as journal:
        journal.save_account_index(mine, "/v3/partner/accounts?offset=MA*", "key-a")
        assert journal.account_index("key-a") == (mine, "/v3/partner/accounts?offset=MA*")
        assert journal.account_index("key-b") == ([], None)
        journal.save_account_index(theirs, None, "key-b")
        assert journal.account_index("key-b") == (theirs, None)
        assert journal.account_index("key-a") == ([], None)
        assert journal.account_index(None) == (theirs, None)  # accounts list --from-journal: what is there

    async def token() -> str:
        return "jwt"

    clients = [PartnerClient(api_key=k, token_provider=token, base_url="http://127.0.0.1:9/v3", environ={})
               for k in ("key-a", "key-b")]  # fmt: skip
    owners = {c.accounts.reconciler.owner for c in clients}
    assert len(owners) == 2 and not any("key-" in o for o in owners)
