"""Rerun-safe jobs (issue 11): a rerun never resends, never claims another's account, never forgets one.

Each numbered case of the issue's "Why" has a test here that failed before the journal's states, the
matching rule, the lock and the bounded sweeps, and passes now.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ctct_partner_async import NewAccount, PartnerClient, cli
from ctct_partner_async import _errors as errors
from ctct_partner_async._bulk import OutcomeState
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._models import AccountPage, AccountSummary, CreateResult, CreateStatus
from ctct_partner_async._protocol import Request, Response
from ctct_partner_async._provisioning import AccountIndex, Reconciler, same_organization
from ctct_partner_async.journal import Journal, JournalLockedError
from ctct_partner_async.sandbox import Faults, SandboxConfig, SandboxHandle, run_sandbox
from ctct_partner_async.testing import MockTransport

API_KEY, CLIENT_ID, CLIENT_SECRET = "rerun-api-key", "rerun-client", "rerun-client-secret"
PASSWORD = "s3cret-pass-1"


def row(i: int, **changes: Any) -> dict[str, Any]:
    base = {"contact_email": f"owner{i}@example.com", "login_name": f"rerun_{i:05d}", "password": PASSWORD,
            "country_code": "US", "state_code": "MA", "organization_name": f"Org {i}"}  # fmt: skip
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def sandbox_config(clock: FakeClock | None = None, **settings: Any) -> SandboxConfig:
    base: dict[str, Any] = {"rate_limit": 0, "daily_quota": 0, "token_rate_limit": 0, "seed": 3,
                            "api_key": API_KEY, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}  # fmt: skip
    if clock is not None:
        base["clock"] = clock.time
    return SandboxConfig(**{**base, **settings})


def client_for(sb: SandboxHandle, clock: FakeClock | None = None, **options: Any) -> PartnerClient:
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    return PartnerClient(api_key=API_KEY, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, base_url=sb.base_url,
                         token_url=sb.token_url, **extra, **options)  # fmt: skip


def flags(sb: SandboxHandle) -> list[str]:
    return ["--base-url", sb.base_url, "--token-url", sb.token_url, "--client-id", CLIENT_ID,
            "--client-secret", CLIENT_SECRET, "--api-key", API_KEY, "--token-jitter", "0"]  # fmt: skip


def posts(sb: SandboxHandle) -> Counter[str]:
    """How many times each login name was POSTed to the account create endpoint."""
    return Counter(
        str(e["login_name"]) for e in sb.sandbox.request_log() if e["operation"] == "create_account"
    )


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- 1. a row never sent is never reconciled, and never with another organization's account ------------


async def test_rows_waiting_for_their_turn_are_queued_not_sent_and_a_rerun_never_claims_a_strangers_account(
    tmp_path: Path,
) -> None:
    """A job interrupted while rows wait for their rate-limit turn journals them ``queued``. On the rerun,
    a queued row whose login another organization's account holds (the row names no organization) is
    a conflict, ``failed``: never ``reconciled`` with the other account's id."""
    async with run_sandbox(sandbox_config()) as sb:
        rows = [row(i, organization_name=None if i == 3 else f"Org {i}") for i in range(1, 7)]
        path = tmp_path / "j.sqlite"
        async with client_for(sb, rate_limit=2.0) as client:
            with Journal(path, job="provision") as journal:
                async with contextlib.aclosing(client.bulk.create_accounts(rows, journal=journal)) as run:
                    async for _ in run:
                        break  # the kill: the first row is done, the others wait for their turn
                states = Counter(e.state for e in journal.entries())
            assert states == {"created": 1, "queued": 5}
            stranger = sb.sandbox.seed_account("rerun_00003", organization_name="Another Org")
        async with client_for(sb, rate_limit=None) as client:
            with Journal(path, job="provision") as journal:
                outcomes = {o.key: o async for o in client.bulk.create_accounts(rows, journal=journal)}
                entries = {e.key: e for e in journal.entries()}
    third = outcomes["rerun_00003"]
    assert third.state is OutcomeState.FAILED and third.encoded_account_id is None
    assert "409" in (third.error or "") or "taken" in (third.error or "")
    assert str(stranger["encoded_account_id"]) not in json.dumps([str(o) for o in outcomes.values()])
    assert entries["rerun_00003"].state == "failed" and entries["rerun_00003"].account_id is None
    assert Counter(o.state for o in outcomes.values()) == {
        OutcomeState.SKIPPED: 1, OutcomeState.CREATED: 4, OutcomeState.FAILED: 1
    }  # fmt: skip


def summary(login: str, org: str | None) -> AccountSummary:
    return AccountSummary(encoded_account_id=f"id-{login}", site_owner_name=login, organization_name=org)


@pytest.mark.parametrize(
    ("listed", "wanted", "matches"),
    [
        (None, None, True),
        ("", None, True),
        (None, "  ", True),
        ("Acme", "Acme", True),
        (" Acme ", "Acme", True),
        ("Acme", None, False),  # the row names none: only an account with none is its
        (None, "Acme", False),  # the account has none: only a row with none is its
        ("Acme", "Acme Inc", False),
        ("acme", "Acme", False),
    ],
)
def test_the_matching_rule_both_ways(listed: str | None, wanted: str | None, matches: bool) -> None:
    """Same user name (case-insensitive) and the same organization, where none equals only none; a
    listed account with the login under another organization is a conflict, never a match."""
    assert same_organization(listed, wanted) is matches
    assert same_organization(wanted, listed) is matches
    index = AccountIndex()
    index.add([summary("Owner_1", listed)])
    if matches:
        hit = index.match("owner_1", wanted)
        assert hit is not None and hit.encoded_account_id == "id-Owner_1"
    else:
        with pytest.raises(errors.ConflictError, match="another organization"):
            index.match("owner_1", wanted)
    assert index.match("someone_else", wanted) is None


# -- 2. a 503-pending row is never POSTed again, and never failed while the list lags ---------------------


async def test_a_pending_row_is_resolved_from_the_list_on_a_rerun_and_never_posted_again(
    tmp_path: Path,
) -> None:
    """Run 1: every create answered 503 (stored, created 100 s later), the wait runs out: ``pending``.
    Run 2, before the account appears: still ``pending`` (never ``failed``), nothing POSTed. Run 3, after
    it appears: ``created`` with the sandbox's id; each login was POSTed exactly once in all."""
    clock = FakeClock(autojump=True)
    faults = Faults(create_503=1.0, deferred_delay=100.0)
    async with run_sandbox(sandbox_config(clock, faults=faults)) as sb:
        rows = [row(i) for i in range(1, 4)]
        path = tmp_path / "j.sqlite"
        async with client_for(sb, clock, rate_limit=None) as client:
            with Journal(path, job="provision") as journal:
                first = [o async for o in client.bulk.create_accounts(rows, journal=journal, pending_wait=5)]
                assert journal.counts() == {"pending": 3}
            sb.sandbox.faults.update({"create_503": 0.0})
            with Journal(path, job="provision") as journal:
                second = [o async for o in client.bulk.create_accounts(rows, journal=journal, pending_wait=5)]
                assert journal.counts() == {"pending": 3}
            clock.advance(100)
            with Journal(path, job="provision") as journal:
                third = [o async for o in client.bulk.create_accounts(rows, journal=journal, pending_wait=5)]
                entries = journal.entries()
        held = {a["login_name"]: a["encoded_account_id"] for a in sb.sandbox.accounts()}
        sent = posts(sb)
    assert [o.state for o in first] == [OutcomeState.PENDING] * 3
    assert [o.state for o in second] == [OutcomeState.PENDING] * 3
    assert all("not in the account list yet" in (o.error or "") for o in second)
    assert {o.key: (o.state, o.encoded_account_id) for o in third} == {
        k: (OutcomeState.CREATED, v) for k, v in held.items()
    }
    assert {e.key: (e.state, e.account_id) for e in entries} == {k: ("created", v) for k, v in held.items()}
    assert sent == {f"rerun_{i:05d}": 1 for i in range(1, 4)}


# -- 3. one journal, one writer ---------------------------------------------------------------------------


def test_a_second_journal_on_the_same_file_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path, job="provision"):
        with pytest.raises(JournalLockedError, match=rf"in use by another run \(pid {os.getpid()} on "):
            Journal(path, job="plans")  # another job on the same file too: one writer per file
    with Journal(path, job="provision") as again:  # released on close
        assert again.entries() == []


async def test_a_second_run_on_a_held_journal_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    async with run_sandbox(sandbox_config()) as sb:
        source = write_jsonl(tmp_path / "rows.jsonl", [row(1)])
        path = tmp_path / "j.sqlite"
        with Journal(path, job="provision"):
            status = await cli.run(["provision", str(source), "--journal", str(path), "-q", *flags(sb)])
        assert posts(sb) == {}
    err = capsys.readouterr().err
    assert status == 2
    assert f"--journal {path} is in use by another run (pid {os.getpid()}" in err


def test_a_journal_whose_holder_was_killed_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from ctct_partner_async.journal import Journal; "
         f"j = Journal({str(path)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(JournalLockedError, match=f"pid {holder.pid} "):
            Journal(path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with Journal(path) as journal:
        journal.record("a", 1, "queued")
        assert [e.state for e in journal.entries()] == ["queued"]


def test_a_finished_state_is_never_overwritten_and_queued_never_hides_a_send(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record("done", 1, "created", account_id="abc")
        journal.record("done", 1, "failed", error="409 from a slower run")
        journal.record("sent", 2, "sent", attempt=True)
        journal.record("sent", 2, "queued")
        journal.record("pending", 3, "pending")
        journal.record("pending", 3, "queued")
        journal.record("unsettled", 4, "unsettled", error="list lags")
        journal.record("unsettled", 4, "queued")
        states = {e.key: (e.state, e.account_id) for e in journal.entries()}
    assert states == {
        "done": ("created", "abc"),
        "sent": ("sent", None),
        "pending": ("pending", None),
        "unsettled": ("unsettled", None),
    }


# -- 5. a broken list never hangs a create ------------------------------------------------------------


def endless_list(clock: FakeClock, *, repeat: bool = False, per_page: float = 0.1) -> MockTransport:
    """Creates: one 500 (ambiguous), then 409. The list: every page links to a next one (a new href each
    time, or always the same one with ``repeat``); each page takes ``per_page`` seconds."""
    served = Counter[str]()

    async def handle(request: Request) -> Response:
        await asyncio.sleep(0)  # a network read yields to the loop, as a real one does
        if request.method == "POST":
            served["create"] += 1
            return Response.from_json(500 if served["create"] == 1 else 409, None)
        served["page"] += 1
        clock.advance(per_page)
        href = (
            "/v3/partner/accounts?offset=same" if repeat else f"/v3/partner/accounts?offset={served['page']}"
        )
        return Response.from_json(200, {"site_owner_list": [], "_links": {"next": {"href": href}}})

    transport = MockTransport(handle)
    transport.served = served  # type: ignore[attr-defined]
    return transport


async def _static_token() -> str:
    return "header.payload.signature"


def mock_client(transport: MockTransport, clock: FakeClock) -> PartnerClient:
    return PartnerClient(api_key=API_KEY, token_provider=_static_token, transport=transport, clock=clock,
                         rate_limit=None, on_retry=None)  # fmt: skip


def new_account(i: int = 1, org: str | None = "Org") -> NewAccount:
    return NewAccount(contact_email=f"o{i}@example.com", login_name=f"client_{i:05d}", password=PASSWORD,
                      country_code="US", state_code="MA", organization_name=org)  # fmt: skip


async def test_an_endless_list_is_cut_off_at_the_reconcile_timeout() -> None:
    clock = FakeClock(autojump=True)
    transport = endless_list(clock)
    async with mock_client(transport, clock) as client:
        started = clock.monotonic()
        with pytest.raises(errors.UnconfirmedCreateError, match="not read to its end"):
            await client.accounts.create(new_account(), reconcile_timeout=30.0)
        took = clock.monotonic() - started
    assert 30.0 <= took <= 32.0  # the whole wait, sweeps included, within the timeout (and a page)
    assert transport.served["page"] <= 320  # type: ignore[attr-defined]


async def test_a_list_that_links_back_to_a_page_read_is_an_incomplete_sweep() -> None:
    clock = FakeClock(autojump=True)
    transport = endless_list(clock, repeat=True)
    async with mock_client(transport, clock) as client:
        with pytest.raises(errors.UnconfirmedCreateError, match="links back to a page already read"):
            await client.accounts.create(new_account(), reconcile_timeout=5.0)
        with pytest.raises(errors.MalformedResponseError, match="links back"):
            _ = [a async for a in client.accounts.list()]


async def test_a_sweep_stops_at_its_page_cap() -> None:
    clock = FakeClock(autojump=True)
    pages = 0

    async def endless(href: str | None, until: float) -> AccountPage:
        nonlocal pages
        pages += 1
        return AccountPage(accounts=[], next_href=f"/v3/partner/accounts?offset={pages}")

    reconciler = Reconciler(endless, clock, max_pages=25)
    with pytest.raises(errors.UnconfirmedCreateError, match="did not end within 25 pages"):
        await reconciler.find("client_00001", "Org", wait=0.0)
    assert pages == 25


# -- 6. a broken answer is never a success ------------------------------------------------------------


@pytest.mark.parametrize("body", [{"encoded_account_id": None}, {"encoded_account_id": 15}, {}, [], "ok"])
async def test_a_2xx_create_without_a_string_id_is_never_created(body: Any, tmp_path: Path) -> None:
    """``201 {"encoded_account_id": null}`` (and friends) is a malformed answer: the list is searched, and
    with no account there the row is ``unsettled``: never ``created`` with the id ``"None"``."""
    clock = FakeClock(autojump=True)

    def handle(request: Request) -> Response:
        if request.method == "POST":
            return Response.from_json(201, body)
        return Response.from_json(200, {"site_owner_list": []})

    async with mock_client(MockTransport(handle), clock) as client:
        with pytest.raises(errors.UnconfirmedCreateError, match="MalformedResponseError"):
            await client.accounts.create(new_account())
        with Journal(tmp_path / "j.sqlite", job="provision") as journal:
            outcomes = [o async for o in client.bulk.create_accounts([new_account(2)], journal=journal)]
            entries = journal.entries()
    assert [(o.state, o.encoded_account_id) for o in outcomes] == [(OutcomeState.UNSETTLED, None)]
    assert [(e.state, e.account_id) for e in entries] == [("unsettled", None)]


# -- 7. journal I/O errors, echoed secrets, surprises in one row --------------------------------------


class FailingDb:
    """A sqlite3 connection that fails every write after the first ``writes`` (a full disk)."""

    def __init__(self, db: sqlite3.Connection, writes: int) -> None:
        self._db, self._writes = db, writes

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.lstrip().startswith("INSERT"):
            self._writes -= 1
            if self._writes < 0:
                raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        self._writes -= 1
        if self._writes < 0:
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.executemany(sql, rows)

    def close(self) -> None:
        self._db.close()


async def test_a_journal_write_failure_stops_the_job_with_one_clear_message(
    tmp_path: Path, capsys: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full in the middle of a job: exit 2, one message naming the journal, no traceback, no
    "Task exception was never retrieved"; the rows recorded before stay recorded."""

    class FullDiskJournal(Journal):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._db = FailingDb(self._db, writes=12)  # type: ignore[assignment]

    monkeypatch.setattr("ctct_partner_async.cli.jobs.Journal", FullDiskJournal)
    async with run_sandbox(sandbox_config()) as sb:
        source = write_jsonl(tmp_path / "rows.jsonl", [row(i) for i in range(1, 41)])
        path = tmp_path / "j.sqlite"
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            status = await cli.run(["provision", str(source), "--journal", str(path), "-q", "--rate-limit", "0",
                                    "--concurrency", "8", *flags(sb)])  # fmt: skip
            gc.collect()
            await asyncio.sleep(0)
    err = capsys.readouterr().err
    assert status == 2
    assert f"--journal {path}: writing the journal failed: database or disk is full" in err
    assert "Traceback" not in err
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    with Journal(path, job="provision") as journal:
        assert 0 < len(journal.entries()) <= 12


async def test_an_error_echoing_the_request_body_never_puts_the_password_in_the_journal_or_results(
    tmp_path: Path,
) -> None:
    clock = FakeClock(autojump=True)

    def handle(request: Request) -> Response:
        echoed = (request.body or b"").decode()
        return Response.from_json(400, [{"error_key": "bad.request", "error_message": f"bad body {echoed}"}])

    async with mock_client(MockTransport(handle), clock) as client:
        with Journal(tmp_path / "j.sqlite", job="provision") as journal:
            outcomes = [
                o
                async for o in client.bulk.create_accounts(
                    [row(1, password='pa"ss\\word-9')], journal=journal
                )
            ]
            entries = journal.entries()
    assert outcomes[0].state is OutcomeState.FAILED
    assert "bad.request" in (outcomes[0].error or "") and "***" in (outcomes[0].error or "")
    stored = json.dumps([outcomes[0].error, entries[0].error])
    assert "word-9" not in stored
    assert "word-9" not in (tmp_path / "j.sqlite").read_bytes().decode("utf-8", "replace")


async def test_an_unexpected_exception_doing_one_row_is_that_rows_outcome(tmp_path: Path) -> None:
    """A transport that raises a non-SDK error for one row: that row ends with the error type (and, as its
    request may have reached the API, ``unsettled``); every other row is created; the job goes on."""
    clock = FakeClock(autojump=True)

    def handle(request: Request) -> Response:
        login = json.loads(request.body or b"{}")["login_name"]
        if login == "rerun_00002":
            raise KeyError("a bug in a custom transport")
        return Response.from_json(201, {"encoded_account_id": f"id-{login}"})

    async with mock_client(MockTransport(handle), clock) as client:
        with Journal(tmp_path / "j.sqlite", job="provision") as journal:
            outcomes = {
                o.key: o
                async for o in client.bulk.create_accounts([row(i) for i in range(1, 4)], journal=journal)
            }
            entries = {e.key: e.state for e in journal.entries()}
    assert outcomes["rerun_00002"].state is OutcomeState.UNSETTLED
    assert "unexpected KeyError" in (outcomes["rerun_00002"].error or "")
    assert [outcomes[k].state for k in ("rerun_00001", "rerun_00003")] == [OutcomeState.CREATED] * 2
    assert entries == {"rerun_00001": "created", "rerun_00002": "unsettled", "rerun_00003": "created"}


def test_bugs_in_the_runner_itself_still_propagate() -> None:
    """A failing row source is not one row's failure (covered in test_bulk); a JournalError is not either."""
    from ctct_partner_async._bulk import _results

    loop = asyncio.new_event_loop()
    try:

        async def boom() -> None:
            raise RuntimeError("runner bug")

        async def fine() -> None:
            return None

        async def main() -> None:
            tasks = [asyncio.create_task(boom()), asyncio.create_task(fine()), asyncio.create_task(boom())]
            await asyncio.wait(tasks)
            with pytest.raises(RuntimeError, match="runner bug"):
                _results(tasks)

        loop.run_until_complete(main())
    finally:
        loop.close()


# -- 7. adopt-existing ---------------------------------------------------------------------------------


async def test_adopt_existing_reports_a_matching_listed_account_adopted_and_nothing_else(
    tmp_path: Path, capsys: Any
) -> None:
    """Without a journal, ``--adopt-existing``: a login held by an account with the same organization is
    ``adopted`` with that account's id (never ``created``); one held under another organization fails;
    without the flag both fail as conflicts."""
    async with run_sandbox(sandbox_config()) as sb:
        ours = sb.sandbox.seed_account("rerun_00001", organization_name="Org 1")
        sb.sandbox.seed_account("rerun_00002", organization_name="Not Org 2")
        source = write_jsonl(tmp_path / "rows.jsonl", [row(i) for i in range(1, 4)])
        plain, adopt = tmp_path / "plain.jsonl", tmp_path / "adopt.jsonl"
        base = ["provision", str(source), "-q", "--rate-limit", "0", *flags(sb)]
        assert await cli.run([*base, "--out", str(plain)]) == 1
        assert await cli.run([*base, "--out", str(adopt), "--adopt-existing"]) == 1
        held = {a["login_name"]: a["encoded_account_id"] for a in sb.sandbox.accounts()}
    first = {r["key"]: r for r in map(json.loads, plain.read_text().splitlines())}
    second = {r["key"]: r for r in map(json.loads, adopt.read_text().splitlines())}
    assert [first[k]["state"] for k in ("rerun_00001", "rerun_00002", "rerun_00003")] == [
        "failed",
        "failed",
        "created",
    ]
    assert second["rerun_00001"] == {
        **second["rerun_00001"],
        "state": "adopted",
        "encoded_account_id": ours["encoded_account_id"],
    }
    assert second["rerun_00002"]["state"] == "failed" and second["rerun_00002"]["encoded_account_id"] is None
    # the first run created row 3; the second, with no journal, finds it and adopts it
    assert (second["rerun_00003"]["state"], second["rerun_00003"]["encoded_account_id"]) == (
        "adopted", held["rerun_00003"]
    )  # fmt: skip
    assert len(held) == 3  # nothing created twice, nothing of someone else's touched
    capsys.readouterr()


# -- bounds: every waiter leaves at its own deadline, page retries end there too ---------------------------


async def test_a_short_lookup_beside_a_long_one_ends_at_its_own_deadline() -> None:
    """A create with ``reconcile_timeout=2`` shares an endless sweep with a ``resolve(wait=300)``: the create
    ends at about 2 s, the resolve at its own bound; the sweep stops once nobody waits."""
    clock = FakeClock(autojump=True)
    transport = endless_list(clock)
    async with mock_client(transport, clock) as client:
        started = clock.monotonic()
        ends: dict[str, float] = {}

        async def create() -> None:
            with pytest.raises(errors.UnconfirmedCreateError):
                await client.accounts.create(new_account(1), reconcile_timeout=2.0)
            ends["create"] = clock.monotonic() - started

        async def resolve() -> None:
            pending = CreateResult(
                status=CreateStatus.PENDING, login_name="client_00002", organization_name="Org"
            )
            with pytest.raises(errors.UnconfirmedCreateError):
                await client.accounts.resolve(pending, wait=300.0)
            ends["resolve"] = clock.monotonic() - started

        await asyncio.gather(create(), resolve())
        assert client.accounts.reconciler._sweep is None
    assert ends["create"] <= 4.0  # its 2 s lookup, after the retry backoff of its first 500
    assert 300.0 <= ends["resolve"] <= 331.0


async def test_a_throttled_page_does_not_outlast_the_reconcile_timeout() -> None:
    """A page answered 429 with ``Retry-After: 30`` inside a lookup bounded at 5 s: no sleep past the
    deadline, so the create ends within the 5 s (unconfirmed), not after the retry policy's 120 s."""
    clock = FakeClock(autojump=True)
    creates = 0

    def handle(request: Request) -> Response:
        nonlocal creates
        if request.method == "POST":
            creates += 1
            return Response.from_json(500 if creates == 1 else 409, None)
        return Response(
            429, {"Retry-After": "30"}, b'[{"error_key": "throttled", "error_message": "slow down"}]'
        )

    async with mock_client(MockTransport(handle), clock) as client:
        started = clock.monotonic()
        with pytest.raises(errors.UnconfirmedCreateError, match="not read to its end"):
            await client.accounts.create(new_account(), reconcile_timeout=5.0)
        assert clock.monotonic() - started <= 6.0


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
async def test_time_settings_must_be_finite(value: float) -> None:
    clock = FakeClock(autojump=True)
    async with mock_client(endless_list(clock), clock) as client:
        with pytest.raises(errors.ValidationError, match="reconcile_timeout: must be a finite number"):
            await client.accounts.create(new_account(), reconcile_timeout=value)
        pending = CreateResult(status=CreateStatus.PENDING, login_name="client_00002")
        with pytest.raises(errors.ValidationError, match="wait: must be a finite number"):
            await client.accounts.resolve(pending, wait=value)


async def test_an_error_echoing_the_credentials_never_carries_them(tmp_path: Path) -> None:
    """A 400 that echoes the request's headers and body: the API key, the JWT and the password are
    scrubbed from the exception itself, so from the journal, results, logs and retry reports too."""
    clock = FakeClock(autojump=True)
    token = "header.payload-of-the-jwt.signature"

    async def tokens() -> str:
        return token

    def handle(request: Request) -> Response:
        echoed = f"headers {dict(request.headers)} body {(request.body or b'').decode()}"
        return Response.from_json(400, [{"error_key": "bad.request", "error_message": echoed}])

    transport = MockTransport(handle)
    async with PartnerClient(api_key=API_KEY, token_provider=tokens, transport=transport, clock=clock,
                             rate_limit=None, on_retry=None) as client:  # fmt: skip
        with pytest.raises(errors.BadRequestError) as caught:
            await client.accounts.create(new_account())
    text = " ".join([str(caught.value), repr(caught.value), caught.value.body or "", *caught.value.messages])
    assert "***" in text
    for secret in (API_KEY, token, PASSWORD):
        assert secret not in text


# -- review cases: the stopped job, odd rows, a full --out, letter case, a symlinked journal ----------


async def test_rows_already_sent_are_not_reported_failed_when_the_job_stops(tmp_path: Path) -> None:
    """The quota runs out: rows an earlier run sent (or the API stored) are ``unsettled``/``pending`` with
    the reason, never "failed: not sent"; their journal states are kept."""
    async with run_sandbox(sandbox_config(daily_quota=1)) as sb:
        path = tmp_path / "j.sqlite"
        with Journal(path, job="provision") as journal:
            journal.record("rerun_00002", 2, "sent", attempt=True)
            journal.record("rerun_00003", 3, "pending")
        async with client_for(sb, rate_limit=None) as client:
            with Journal(path, job="provision") as journal:
                rows = [row(i) for i in range(1, 6)]
                outcomes = {
                    o.key: o async for o in client.bulk.create_accounts(rows, journal=journal, concurrency=1)
                }
                states = {e.key: e.state for e in journal.entries()}
    assert outcomes["rerun_00001"].state is OutcomeState.CREATED
    assert outcomes["rerun_00002"].state is OutcomeState.UNSETTLED
    assert outcomes["rerun_00003"].state is OutcomeState.PENDING
    assert all(outcomes[k].state is OutcomeState.FAILED for k in ("rerun_00004", "rerun_00005"))
    assert "not sent" in (outcomes["rerun_00005"].error or "")
    assert states["rerun_00002"] in {"sent", "unsettled"} and states["rerun_00003"] == "pending"


@pytest.mark.parametrize("item", [None, 42, "row", ["x"]])
async def test_a_row_of_the_wrong_shape_is_invalid_and_the_job_goes_on(item: Any) -> None:
    clock = FakeClock(autojump=True)

    def handle(request: Request) -> Response:
        return Response.from_json(201, {"encoded_account_id": "abc123"})

    async with mock_client(MockTransport(handle), clock) as client:
        outcomes = sorted(
            [o async for o in client.bulk.create_accounts([item, row(1)])], key=lambda o: o.index
        )
    assert [o.state for o in outcomes] == [OutcomeState.INVALID, OutcomeState.CREATED]
    assert "row: cannot be read as a row" in (outcomes[0].error or "")


async def test_a_results_file_that_cannot_be_written_is_a_clear_stop(tmp_path: Path, capsys: Any) -> None:
    async with run_sandbox(sandbox_config()) as sb:
        source = write_jsonl(tmp_path / "rows.jsonl", [row(1), row(2)])
        status = await cli.run(["provision", str(source), "--out", "/dev/full", "-q", *flags(sb)])
    err = capsys.readouterr().err
    assert status == 2
    assert "--out /dev/full: No space left on device; the job stopped" in err and "Traceback" not in err


async def test_a_login_in_another_letter_case_is_the_same_row_on_a_rerun(tmp_path: Path) -> None:
    async with run_sandbox(sandbox_config()) as sb:
        path = tmp_path / "j.sqlite"
        async with client_for(sb, rate_limit=None) as client:
            for login in ("Rerun_00001", "rerun_00001"):
                with Journal(path, job="provision") as journal:
                    outcomes = [
                        o
                        async for o in client.bulk.create_accounts(
                            [row(1, login_name=login)], journal=journal
                        )
                    ]
            with Journal(path, job="provision") as journal:
                entries = journal.entries()
        assert posts(sb) == {"Rerun_00001": 1}
    assert [o.state for o in outcomes] == [OutcomeState.SKIPPED]
    assert [(e.key, e.state) for e in entries] == [("rerun_00001", "created")]


def test_the_lock_follows_the_file_through_a_symlink(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    (tmp_path / "link.sqlite").symlink_to(path)
    with Journal(path), pytest.raises(JournalLockedError):
        Journal(tmp_path / "link.sqlite")


async def test_a_sure_refusal_of_a_previously_sent_row_fails_once_the_list_shows_no_account(
    tmp_path: Path,
) -> None:
    """A row journaled ``sent`` is refused with a 400 on the rerun: the list (read to its end) has no
    such account, so the row is ``failed`` with the 400, not ``unsettled`` for ever."""
    clock = FakeClock(autojump=True)

    def handle(request: Request) -> Response:
        if request.method == "POST":
            return Response.from_json(400, [{"error_key": "invalid.field", "error_message": "bad phone"}])
        return Response.from_json(200, {"site_owner_list": []})

    async with mock_client(MockTransport(handle), clock) as client:
        with Journal(tmp_path / "j.sqlite", job="provision") as journal:
            journal.record("rerun_00001", 1, "sent", attempt=True)
            outcomes = [o async for o in client.bulk.create_accounts([row(1)], journal=journal)]
            entries = journal.entries()
    assert [o.state for o in outcomes] == [OutcomeState.FAILED]
    assert "invalid.field" in (outcomes[0].error or "")
    assert [e.state for e in entries] == ["failed"]


async def test_bad_time_settings_are_refused_before_anything_is_sent(tmp_path: Path, capsys: Any) -> None:
    async with run_sandbox(sandbox_config()) as sb:
        source = write_jsonl(tmp_path / "rows.jsonl", [row(1)])
        for flag in ("--pending-wait", "--reconcile-timeout"):
            assert await cli.run(["provision", str(source), flag, "nan", "-q", *flags(sb)]) == 2
            assert "must be a finite number of seconds" in capsys.readouterr().err
        async with client_for(sb, rate_limit=None) as client:
            with pytest.raises(errors.ValidationError, match="pending_wait"):
                client.bulk.create_accounts([row(1)], pending_wait=math.inf)
        assert posts(sb) == {}


async def test_listing_an_endless_account_list_stops_at_the_page_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ctct_partner_async._provisioning.MAX_PAGES", 30)
    clock = FakeClock(autojump=True)
    transport = endless_list(clock)
    async with mock_client(transport, clock) as client:
        with pytest.raises(errors.MalformedResponseError, match="did not end within 30 pages"):
            _ = [a async for a in client.accounts.list()]
    assert transport.served["page"] == 30  # type: ignore[attr-defined]


async def test_a_sweep_stopped_before_it_started_never_strands_a_later_lookup() -> None:
    """``reconcile_timeout=0`` leaves its sweep before the sweep's task ever ran: the sweep still ends, and
    a later lookup reads the list afresh instead of waiting for ever on the dead one."""
    clock = FakeClock(autojump=True)
    transport = endless_list(clock, per_page=0.0)
    async with mock_client(transport, clock) as client:
        with pytest.raises(errors.UnconfirmedCreateError):
            await client.accounts.create(new_account(1), reconcile_timeout=0)
        assert client.accounts.reconciler._sweep is None
        pending = CreateResult(
            status=CreateStatus.PENDING, login_name="client_00002", organization_name="Org"
        )
        with pytest.raises(errors.UnconfirmedCreateError, match="did not end|ran out"):
            await asyncio.wait_for(client.accounts.resolve(pending, wait=0.0), timeout=5)


@pytest.mark.parametrize(
    ("retry_after", "attempts", "gave_up_at"), [(30, 5, 120.0), (25, 5, 100.0), (50, 5, 120.0)]
)
async def test_no_retry_sleeps_past_the_deadline(retry_after: int, attempts: int, gave_up_at: float) -> None:
    """Throttled answers with ``Retry-After``: retries go on while the wait ends by the deadline (120 s),
    and the call gives up at once when it would end after it (50 s is capped at the policy's 30 s)."""
    clock = FakeClock(autojump=True)
    seen: list[float] = []

    def handle(request: Request) -> Response:
        seen.append(clock.monotonic())
        body = b'[{"error_key": "throttled", "error_message": "slow down"}]'
        return Response(429, {"Retry-After": str(retry_after)}, body)

    async with mock_client(MockTransport(handle), clock) as client:
        started = clock.monotonic()
        with pytest.raises(errors.ThrottledError):
            await client.accounts.get_plan("a07e1my9tbw0")
        assert len(seen) == attempts
        assert clock.monotonic() - started == pytest.approx(gave_up_at, abs=0.01)


async def test_send_until_ends_the_retries_earlier_than_the_policy() -> None:
    clock = FakeClock(autojump=True)
    seen: list[float] = []

    def handle(request: Request) -> Response:
        seen.append(clock.monotonic())
        return Response(429, {"Retry-After": "3"}, b'[{"error_key": "throttled", "error_message": "x"}]')

    async with mock_client(MockTransport(handle), clock) as client:
        start = clock.monotonic()
        request = Request("GET", "partner/accounts/a07e1my9tbw0/plan", "get_plan")
        with pytest.raises(errors.ThrottledError):
            await client._pipeline.send(request, until=start + 10)
    assert [round(t - start) for t in seen] == [0, 3, 6, 9]
