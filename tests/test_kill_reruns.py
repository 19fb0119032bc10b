"""Issue 11's acceptance property: ``kill -9`` at a random point of ``ctct-partner provision``, then reruns.

Per seed: a fresh sandbox (real clock, over loopback) with deferred 503s, drops after commit, 429s (a
sandbox rate limit below the client's, and a throttle fault), and a few login names seeded first by
other organizations. The command runs as a real subprocess and is killed with SIGKILL at a seeded,
observable point (the N-th create arriving at the sandbox, the N-th create answered but before the
answer is written, the first 503 answered, or N lines in ``--out``); then it runs again with the same
journal until every row is done but the ones whose logins other organizations hold (a real conflict).

Then: every row of ours has exactly one account, with its organization; every id any run reported is
the sandbox's account of that row; a stranger's login is never reported with an id, only failed with
the 409; no row the journal held pending (or finished) is ever POSTed again, and a login answered 503
is POSTed again only when the run was killed before its journal could say so; a finished journal entry
never changes; and a run not killed leaves no row pending whose deferred create came due well within
its ``--pending-wait``. The sandbox's request log is read for the creates; a middleware in front of the
sandbox also notes the login of every create (the log has none for a create refused with 429 before its
body was read) and is where the kill fires at the exact moment wanted.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import datetime as dt
import io
import json
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ctct_partner_async.journal import FINISHED, MAY_HAVE_BEEN_RECEIVED, Entry, Journal
from ctct_partner_async.sandbox import SANDBOX_KEY, Faults, Sandbox, SandboxConfig, create_app

ROOT = Path(__file__).resolve().parents[1]
SEEDS = range(20)
MAX_RERUNS = 4
CREATE_PATH = "/v3/partner/accounts"
PASSWORD = "pw-kill-9-reruns"
COLUMNS = ["login_name", "contact_email", "password", "country_code", "state_code", "organization_name"]
OK_STATES = frozenset({"created", "reconciled", "skipped"})
FAULTS = Faults(create_503=0.1, deferred_delay=0.05, drop_after_commit=0.1, throttle_429=0.03)
SANDBOX_RATE = 20.0  # per second, burst 20: the client's own limit is higher, so the sandbox throttles
PENDING_WAIT = 0.5  # ten times the deferred delay
LISTED_MARGIN = 0.3  # a run ends this soon after its last look at the list, even on a busy machine
CLIENT_FLAGS = ["--rate-limit", "200", "--token-jitter", "0", "--concurrency", "8",
                "--pending-wait", str(PENDING_WAIT), "-q"]  # fmt: skip
KillKind = Literal["arrival", "answer", "503", "lines", "stranger"]
KILL_KINDS: tuple[KillKind, ...] = ("arrival", "answer", "503", "lines", "stranger")


@dataclasses.dataclass(frozen=True)
class Row:
    index: int
    login: str
    organization: str | None
    stranger: bool


@dataclasses.dataclass(frozen=True)
class Post:
    """One POST /partner/accounts as the sandbox handled it: by which run, for which login, answered how
    (``status`` None: the connection was dropped after the commit)."""

    run: int
    login: str
    status: int | None
    fault: str | None


@dataclasses.dataclass(frozen=True)
class KillPoint:
    """Where run 0 is killed: as the ``count``-th create arrives (before it is handled), once the
    ``count``-th create was answered (before the answer is written), after the first 503 (or, with none,
    once every row was sent), once ``count`` lines are in ``--out``, or after the 409 answering the
    create of ``login``, a stranger's (before it is written: the rerun sends it as previously attempted)."""

    kind: KillKind
    count: int = 0
    login: str = ""


@dataclasses.dataclass
class Spy:
    """Notes every create the sandbox handles and fires the kill at the chosen create."""

    sandbox: Sandbox
    logins: int
    posts: list[Post] = dataclasses.field(default_factory=list)
    run: int = 0
    proc: asyncio.subprocess.Process | None = None
    kill: KillPoint | None = None
    arrivals: int = 0
    killed_at: str | None = None

    def arm(self, run: int, proc: asyncio.subprocess.Process, kill: KillPoint | None) -> None:
        self.run, self.proc, self.kill, self.arrivals, self.killed_at = run, proc, kill, 0, None

    def fire(self, why: str) -> None:
        if self.proc is not None and self.proc.returncode is None and self.killed_at is None:
            with contextlib.suppress(ProcessLookupError):  # it may have just ended by itself
                self.proc.kill()
            self.killed_at = why

    def arrived(self, login: str) -> None:
        self.arrivals += 1
        kill = self.kill
        if kill is not None and kill.kind == "arrival" and self.arrivals >= kill.count:
            self.fire(f"as create #{self.arrivals} ({login}) arrived, before the sandbox handled it")

    def answered(self, post: Post) -> None:
        self.posts.append(post)
        kill = self.kill
        if kill is None:
            return
        if kill.kind == "answer" and self.arrivals >= kill.count:
            self.fire(f"after create #{self.arrivals} ({post.login}) was answered {post.status or 'drop'}")
        if kill.kind == "stranger" and post.login.lower() == kill.login.lower() and post.status == 409:
            self.fire(f"after the stranger-held {post.login} was answered {post.status}")
        if kill.kind == "503":
            tried = {p.login.lower() for p in self.posts if p.run == self.run}
            if post.status == 503 or len(tried) == self.logins:  # no 503 before every row was sent: kill now
                self.fire(
                    f"after create #{self.arrivals} ({post.login}) was answered {post.status or 'drop'}"
                )

    def middleware(self) -> Middleware:
        @web.middleware
        async def spy(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method != "POST" or request.path != CREATE_PATH:
                return await handler(request)
            login = str(json.loads(await request.read())["login_name"])  # read() caches the body
            self.arrived(login)
            response = await handler(request)
            entry = self.sandbox.request_log()[-1]  # recorded by the handler, with no await since
            assert entry["method"] == "POST" and entry["path"] == CREATE_PATH, entry
            assert entry.get("login_name") in (None, login), (entry, login)
            status, fault = entry["status"], entry["fault"]
            assert status is None or isinstance(status, int)
            self.answered(Post(self.run, login, status, None if fault is None else str(fault)))
            return response

        return spy


@asynccontextmanager
async def spied_sandbox(config: SandboxConfig, logins: int) -> AsyncIterator[tuple[str, Spy]]:
    """A sandbox on loopback with the spy in front of it; yields its URL and the spy."""
    app = create_app(config)
    spy = Spy(app[SANDBOX_KEY], logins)
    app.middlewares.append(spy.middleware())
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", spy
    finally:
        await runner.cleanup()


def make_rows(rng: random.Random, seed: int) -> list[Row]:
    """20-30 rows, about a quarter with no organization; 2-4 logins held by other organizations, one
    of them a row with no organization, one seeded in another letter case."""
    count = rng.randint(20, 30)
    strangers = set(rng.sample(range(count), rng.randint(2, 4)))
    no_org = {i for i in range(count) if rng.random() < 0.25}
    first = min(strangers)
    rows = []
    for i in range(count):
        organization = None if i in no_org or i == first else f"Org {seed}-{i}"
        rows.append(Row(i + 1, f"kr{seed:02d}_user_{i:03d}", organization, i in strangers))
    return rows


def seed_strangers(sandbox: Sandbox, rows: list[Row]) -> dict[str, dict[str, object]]:
    """Accounts of other organizations holding the stranger rows' logins: by lowercased login."""
    held = {}
    for n, row in enumerate((r for r in rows if r.stranger), 1):
        login = row.login.upper() if n == 2 else row.login
        if n == 3 and row.organization is not None:
            account = sandbox.seed_account(login)  # no organization, against a row that has one
        else:
            account = sandbox.seed_account(login, organization_name=f"Someone Else {n}")
        held[row.login.lower()] = account
    return held


def write_csv(path: Path, rows: list[Row]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({"login_name": row.login, "contact_email": f"{row.login}@example.com",
                         "password": PASSWORD, "country_code": "US", "state_code": "MA",
                         "organization_name": row.organization or ""})  # fmt: skip
    path.write_text(out.getvalue())


def choose_kill(rng: random.Random, seed: int, rows: list[Row]) -> KillPoint:
    """Each kind for a fifth of the seeds; where it strikes, from the seed."""
    kind = KILL_KINDS[seed % len(KILL_KINDS)]
    if kind == "stranger":  # every other time the stranger-held row with no organization
        strangers = [r for r in rows if r.stranger]
        target = strangers[0] if seed // len(KILL_KINDS) % 2 == 0 else rng.choice(strangers[1:])
        return KillPoint(kind, login=target.login)
    if kind == "lines":
        return KillPoint(kind, rng.randint(0, len(rows) // 2))
    return KillPoint(kind, 1 if kind == "503" else rng.randint(1, len(rows)))


def complete_lines(path: Path) -> list[dict[str, object]]:
    """The results file's complete lines (a kill may cut the last one short)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


async def run_cli(
    command: list[str], spy: Spy, run: int, kill: KillPoint | None, out: Path, logs: Path
) -> tuple[int, str | None, str]:
    """Run the command once (killed at ``kill`` if given): its exit status, where the kill struck (if it
    did) and its stderr."""
    stderr_path = logs / f"run{run}.stderr"
    with (logs / f"run{run}.stdout").open("wb") as stdout, stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=stdout, stderr=stderr)
    spy.arm(run, proc, kill)
    try:
        async with asyncio.timeout(60):
            if kill is not None and kill.kind == "lines":
                while proc.returncode is None:
                    if len(complete_lines(out)) >= kill.count:
                        spy.fire(f"once {kill.count} lines were in --out")
                        break
                    await asyncio.sleep(0.003)
            await proc.wait()
    finally:
        spy.proc, spy.kill = None, None  # disarmed; killed_at stays
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    code = proc.returncode
    assert code is not None
    why = spy.killed_at if code == -signal.SIGKILL else None  # None: it ended before the kill
    return code, why, stderr_path.read_text(encoding="utf-8", errors="replace")


def snapshot(path: Path) -> dict[str, Entry]:
    with Journal(path, job="provision") as journal:
        return {e.key: e for e in journal.entries()}


def organization(value: object) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


@pytest.mark.parametrize("seed", SEEDS)
async def test_kill_9_at_a_random_point_then_reruns_make_each_account_exactly_once(
    seed: int, tmp_path: Path
) -> None:
    """SIGKILL at the seed's point, then reruns with the same journal: the module docstring's properties."""
    rng = random.Random(seed)  # noqa: S311 (a test's reproducible choices)
    rows = make_rows(rng, seed)
    kill = choose_kill(rng, seed, rows)
    ours = [r for r in rows if not r.stranger]
    config = SandboxConfig(rate_limit=SANDBOX_RATE, daily_quota=0, token_rate_limit=0, seed=1000 + seed,
                           faults=FAULTS)  # fmt: skip
    source, journal, out = tmp_path / "rows.csv", tmp_path / "job.sqlite", tmp_path / "out.jsonl"
    write_csv(source, rows)
    async with spied_sandbox(config, len(rows)) as (url, spy):
        sandbox = spy.sandbox
        held = seed_strangers(sandbox, rows)
        command = [sys.executable, "-m", "ctct_partner_async.cli", "provision", str(source),
                   "--journal", str(journal), "--out", str(out), "--base-url", f"{url}/v3",
                   "--token-url", f"{url}/oauth2/token", "--client-id", config.client_id,
                   "--client-secret", config.client_secret, "--api-key", config.api_key,
                   *CLIENT_FLAGS]  # fmt: skip
        outputs: list[list[dict[str, object]]] = []
        snapshots: list[dict[str, Entry]] = []
        history: list[str] = []
        ended: list[float] = []  # by the sandbox's clock
        killed: str | None = None
        for run in range(1 + MAX_RERUNS):
            code, why, stderr = await run_cli(command, spy, run, kill if run == 0 else None, out, tmp_path)
            ended.append(config.clock())
            outputs.append(complete_lines(out))
            snapshots.append(snapshot(journal))
            states = Counter(str(r["state"]) for r in outputs[-1])
            kept = Counter(e.state for e in snapshots[-1].values())
            history.append(
                f"run {run}: exit {code}, {why or 'not killed'}, results {dict(states)}, journal {dict(kept)}"
            )
            if run == 0:
                killed = why
                assert why or (code in (0, 1) and "Traceback" not in stderr), (seed, history, stderr)
                continue
            assert code in (0, 1) and "Traceback" not in stderr, (seed, history, stderr)  # never a crash
            undone = {str(r["key"]) for r in outputs[-1] if r["state"] not in OK_STATES}
            if len(outputs[-1]) == len(rows) and undone == {r.login for r in rows if r.stranger}:
                break
        else:
            pytest.fail(f"seed {seed}: rows still not done after {MAX_RERUNS} reruns: {history}; "
                        f"last results: {outputs[-1]}; last stderr: {stderr}")  # fmt: skip
        accounts = sandbox.accounts()  # settles the deferred creates that are due
        stats = sandbox.stats()
        log = [e for e in sandbox.request_log() if e["method"] == "POST" and e["path"] == CREATE_PATH]
    where = f"seed {seed}, kill {kill}, {history}"
    print(where, stats["faults_injected"], stats["responses_by_status"])  # seen with -s
    by_login: dict[str, list[dict[str, object]]] = {}
    for account in accounts:
        by_login.setdefault(str(account["login_name"]).lower(), []).append(account)
    by_id = {str(a["encoded_account_id"]): a for a in accounts}
    row_of = {r.login: r for r in rows}

    # Every row of ours has exactly one account, with its organization; nothing else was made.
    for row in ours:
        found = by_login.get(row.login.lower(), [])
        assert len(found) == 1, (where, row, found)
        assert organization(found[0]["organization_name"]) == row.organization, (where, row, found)
    assert len(accounts) == len(ours) + len(held), (where, accounts)
    for login, stranger in held.items():  # the strangers' accounts are untouched
        assert by_login[login] == [stranger], (where, login, by_login[login])
    assert stats["deferred_pending"] == 0 and stats["deferred_dropped"] == 0, (where, stats)
    made = int(str(stats["creates_committed"])) + int(str(stats["deferred_created"]))
    assert made == len(ours), (where, stats)

    # Every id any run reported is the sandbox's account of that very row; a stranger's row gets none.
    for run, results in enumerate(outputs):
        for record in results:
            row = row_of[str(record["key"])]
            account_id = record["encoded_account_id"]
            if row.stranger:
                assert record["state"] == "failed" and account_id is None, (where, run, record)
                assert "-> 409" in str(record["error"]), (where, run, record)
            elif account_id is not None:
                theirs = by_id.get(str(account_id))
                assert theirs is not None, (where, run, record)
                assert str(theirs["login_name"]).lower() == row.login.lower(), (where, run, record, theirs)
                assert organization(theirs["organization_name"]) == row.organization, (where, run, record)
            if record["state"] in OK_STATES:
                assert account_id is not None, (where, run, record)

    # The last run reports every row once, each of ours with the sandbox's id, as does the journal.
    final = {str(r["key"]): r for r in outputs[-1]}
    assert sorted(int(str(r["index"])) for r in outputs[-1]) == [r.index for r in rows], where
    last = snapshots[-1]
    for row in ours:
        account_id = by_login[row.login.lower()][0]["encoded_account_id"]
        assert final[row.login]["state"] in OK_STATES, (where, final[row.login])
        assert final[row.login]["encoded_account_id"] == account_id, (where, final[row.login])
        assert last[row.login].state in {"created", "reconciled"}, (where, last[row.login])
        assert last[row.login].account_id == account_id, (where, last[row.login])
    for row in rows:
        if row.stranger:
            assert last[row.login].state == "failed" and last[row.login].account_id is None, (where, row)
            assert "-> 409" in (last[row.login].error or ""), (where, last[row.login])

    # A finished journal entry never changes; a state that says "may have been received" never goes back
    # to queued; a pending one only ever becomes created (or failed: never created).
    for before, after in zip(snapshots, snapshots[1:], strict=False):
        for key, entry in before.items():
            later = after[key]
            if entry.state in FINISHED:
                assert (later.state, later.account_id) == (entry.state, entry.account_id), where
            if entry.state in MAY_HAVE_BEEN_RECEIVED:
                assert later.state != "queued", (where, entry, later)
            if entry.state == "pending":
                assert later.state in {"pending", "created", "failed"}, (where, entry, later)

    # The spy saw exactly the creates the request log holds.
    assert [(e["status"], e["fault"]) for e in log] == [(p.status, p.fault) for p in spy.posts], where

    # No row the journal held finished or pending after a run is POSTed by a later run; a login answered
    # 503 is POSTed again only by a later run, after a kill that came before its journal said pending.
    for run, entries in enumerate(snapshots):
        settled = {k.lower() for k, e in entries.items() if e.state in FINISHED or e.state == "pending"}
        resent = [p for p in spy.posts if p.run > run and p.login.lower() in settled]
        assert not resent, (where, run, resent)
    for i, post in enumerate(spy.posts):
        if post.status != 503:
            continue
        again = [p for p in spy.posts[i + 1 :] if p.login.lower() == post.login.lower()]
        if not again:
            continue
        journaled = snapshots[post.run].get(post.login)
        assert post.run == 0 and killed is not None, (where, post, again)
        assert all(p.run > post.run for p in again), (where, post, again)
        assert journaled is not None and journaled.state == "sent", (where, post, journaled, again)
        assert all(p.status in (409, 429) for p in again), (where, post, again)

    # Liveness: a run that was not killed leaves no row pending or unsettled for want of a look at the
    # list. When it reports one as not listed (the list read to its end), the sandbox must not have held
    # the account (its deferred create due) well before the run ended, within the --pending-wait.
    for run, results in enumerate(outputs):
        if run == 0 and killed:
            continue
        for record in results:
            error = str(record["error"])
            unlisted = error.endswith("not in the account list yet") or "no listed account matches" in error
            listed = by_login.get(str(record["key"]).lower())
            if record["state"] not in ("pending", "unsettled") or not unlisted or not listed:
                continue
            early = ended[run] - dt.datetime.fromisoformat(str(listed[0]["created_at"])).timestamp()
            assert early < LISTED_MARGIN, (
                f"seed {seed}: run {run} (not killed) reported {record['key']} {record['state']} "
                f"({error!r}), but the sandbox held its account from {early:.2f}s before the run ended, "
                f"within its --pending-wait {PENDING_WAIT}: the wait never looked at the list again; {where}"
            )
