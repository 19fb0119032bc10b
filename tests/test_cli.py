"""The ``ctct-partner`` command: bulk commands against the sandbox (in process and in a subprocess killed
with SIGKILL), usage errors, secrets, results, progress and the summary."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from ctct_partner_async import cli
from ctct_partner_async._bulk import Outcome, OutcomeState
from ctct_partner_async.cli.progress import Progress, format_duration, format_line, format_progress
from ctct_partner_async.cli.report import Tally, format_summary, format_table, result_record
from ctct_partner_async.journal import Journal
from ctct_partner_async.sandbox import Faults, SandboxConfig, SandboxHandle, run_sandbox

API_KEY = "cli-api-key-4f1c9e"
CLIENT_ID = "cli-client-id"
CLIENT_SECRET = "cli-client-secret-83b2d7"
PASSWORD = "pw-s3cret-77x"
SECRETS = (API_KEY, CLIENT_SECRET, PASSWORD)
ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["login_name", "contact_email", "password", "country_code", "state_code", "organization_name"]


def row(i: int, **changes: str) -> dict[str, str]:
    base = {"login_name": f"cli_user_{i:05d}", "contact_email": f"owner{i}@example.com", "password": PASSWORD,
            "country_code": "US", "state_code": "MA", "organization_name": f"Org {i}"}  # fmt: skip
    return {**base, **changes}


def write_csv(path: Path, rows: Sequence[Mapping[str, str] | str]) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in rows:
        if isinstance(item, str):
            out.write(item + "\n")
        else:
            writer.writerow(item)
    path.write_text(out.getvalue())
    return path


def config(**settings: Any) -> SandboxConfig:
    base: dict[str, Any] = {"rate_limit": 0, "daily_quota": 0, "token_rate_limit": 0, "seed": 5,
                            "api_key": API_KEY, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}  # fmt: skip
    return SandboxConfig(**{**base, **settings})


def flags(handle: SandboxHandle) -> list[str]:
    return ["--base-url", handle.base_url, "--token-url", handle.token_url, "--client-id", CLIENT_ID,
            "--client-secret", CLIENT_SECRET, "--api-key", API_KEY, "--token-jitter", "0"]  # fmt: skip


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(config()) as handle:
        yield handle


# -- the acceptance tests ---------------------------------------------------------------------------


async def wait_for_accounts(handle: SandboxHandle, count: int, proc: asyncio.subprocess.Process) -> None:
    while len(handle.sandbox.accounts()) < count:
        assert proc.returncode is None, "the command ended before it could be killed"
        await asyncio.sleep(0.01)


async def test_provision_killed_with_sigkill_and_run_again_leaves_exactly_one_account_per_row(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """SIGKILL part-way, then the same command again: the sandbox holds exactly N accounts with N distinct
    login names, the run exits 0, and the results and the journal name each row's account id."""
    n = 300
    source = write_csv(tmp_path / "accounts.csv", [row(i) for i in range(n)])
    journal_path, out = tmp_path / "job.sqlite", tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "ctct_partner_async.cli", "provision", str(source), "--journal",
               str(journal_path), "--out", str(out), *flags(sandbox), "--rate-limit", "100", "--concurrency", "8"]  # fmt: skip
    pipe = asyncio.subprocess.PIPE
    first = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=pipe, stderr=pipe)
    try:
        async with asyncio.timeout(30):
            drained = asyncio.gather(first.stdout.read(), first.stderr.read())  # type: ignore[union-attr]
            await wait_for_accounts(sandbox, n // 3, first)
            first.kill()
            await first.wait()
            await drained
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert first.returncode == -signal.SIGKILL
    assert n // 3 <= len(sandbox.sandbox.accounts()) < n
    second = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=pipe, stderr=pipe)
    try:
        async with asyncio.timeout(60):
            stdout, stderr = await second.communicate()
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    assert second.returncode == 0, stderr.decode()
    held = {str(a["login_name"]): a["encoded_account_id"] for a in sandbox.sandbox.accounts()}
    assert len(sandbox.sandbox.accounts()) == n == len(held)
    assert set(held) == {f"cli_user_{i:05d}" for i in range(n)}
    results = read_results(out)
    assert len(results) == n
    assert {r["key"]: r["encoded_account_id"] for r in results} == held
    states = Counter(r["state"] for r in results)
    assert states["skipped"] + states["reconciled"] >= n // 3  # every account made before the kill
    assert set(states) <= {"skipped", "created", "reconciled"}
    with Journal(journal_path, job="provision") as journal:
        entries = journal.entries()
    assert {e.key: e.account_id for e in entries} == held
    assert {e.state for e in entries} <= {"created", "reconciled"}
    assert "provision: 300 rows, all succeeded" in stdout.decode()
    assert_no_secrets(
        stdout.decode(),
        stderr.decode(),
        out.read_text(),
        journal_path.read_bytes().decode("utf-8", "replace"),
    )


async def test_bad_rows_exit_1_are_reported_with_their_reason_and_nothing_is_sent_for_them(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file with bad rows: exit status 1, each bad row is in the results as invalid with its reason, the
    good rows are created, and no request is sent for a bad row."""
    bad: list[tuple[dict[str, str] | str, str]] = [
        (row(100, login_name=""), "login_name: is required"),
        (row(101, contact_email="not-an-email"), "contact_email: must be an email address"),
        (row(102, state_code=""), "state_code: is required when country_code is US"),
        (row(103, password="short"), "password: must be 8 to 80 characters"),
        ("only,three,fields", "fields, the header has"),
        (row(0, contact_email="again@example.com"), "duplicate of row 1"),
    ]
    items: list[dict[str, str] | str] = [row(0)]
    for i, (item, _) in enumerate(bad, 1):
        items += [item, row(i)]
    source, out = write_csv(tmp_path / "accounts.csv", items), tmp_path / "out.jsonl"
    code = await cli.run(
        ["provision", str(source), "--out", str(out), "--rate-limit", "0", "-q", *flags(sandbox)]
    )
    assert code == 1
    results = sorted(read_results(out), key=lambda r: r["index"])
    assert len(results) == 13
    invalid = [r for r in results if r["state"] == "invalid"]
    assert [r["index"] for r in invalid] == [2, 4, 6, 8, 10, 12]
    for record, (_, reason) in zip(invalid, bad, strict=True):
        assert reason in record["error"]
        assert record["encoded_account_id"] is None
    assert [r["state"] for r in results if r not in invalid] == ["created"] * 7
    assert sandbox.sandbox.stats()["creates_attempted"] == 7
    assert len(sandbox.sandbox.accounts()) == 7
    captured = capsys.readouterr()
    assert "provision: 13 rows, 6 not done" in captured.out
    assert "row 4 (owner101@example.com)" not in captured.err
    assert "row 4 (cli_user_00101): invalid: contact_email: must be an email address" in captured.err
    assert_no_secrets(captured.out, captured.err, out.read_text())


# -- the other commands -----------------------------------------------------------------------------


async def provision(handle: SandboxHandle, tmp_path: Path, count: int) -> list[str]:
    source, out = write_csv(tmp_path / "new.csv", [row(i) for i in range(count)]), tmp_path / "new.jsonl"
    assert (
        await cli.run(
            ["provision", str(source), "--out", str(out), "--rate-limit", "0", "-q", *flags(handle)]
        )
        == 0
    )
    return [r["encoded_account_id"] for r in sorted(read_results(out), key=lambda r: r["index"])]


async def test_plans_and_cancel_commands_from_jsonl(sandbox: SandboxHandle, tmp_path: Path) -> None:
    """plans reads JSONL and cancel CSV; an unknown plan type is invalid unless --allow-plan-type admits it
    (then the API decides); a row for an unknown account fails; either way exit 1."""
    ids = await provision(sandbox, tmp_path, 4)
    plans = tmp_path / "plans.jsonl"
    plans.write_text("\n".join(json.dumps(r) for r in [
        {"encoded_account_id": ids[0], "plan_type": "gold", "billing_day_of_month": 12},
        {"encoded_account_id": ids[1], "plan_type": "PLATINUM"},
    ]) + "\n")  # fmt: skip
    out = tmp_path / "plans-out.jsonl"
    args = ["plans", str(plans), "--out", str(out), "--rate-limit", "0", "-q", *flags(sandbox)]
    assert await cli.run(args) == 1
    assert sorted(r["state"] for r in read_results(out)) == ["invalid", "updated"]
    assert await cli.run([*args, "--allow-plan-type", "platinum"]) == 1
    allowed = {r["key"]: r for r in read_results(out)}
    assert allowed[ids[1]]["state"] == "failed"  # sent this time: the sandbox's plan group has no PLATINUM
    assert "400" in allowed[ids[1]]["error"]
    assert sandbox.sandbox.account(ids[0])["plan_type"] == "GOLD"  # type: ignore[index]
    cancel = tmp_path / "cancel.csv"
    cancel.write_text(f"encoded_account_id,reason_id\n{ids[2]},1\n{ids[3]},2\nnosuchacct1,1\n")
    out = tmp_path / "cancel-out.jsonl"
    assert (
        await cli.run(["cancel", str(cancel), "--out", str(out), "--rate-limit", "0", "-q", *flags(sandbox)])
        == 1
    )
    states = {r["key"]: r["state"] for r in read_results(out)}
    assert states == {ids[2]: "canceled", ids[3]: "canceled", "nosuchacct1": "failed"}
    assert sandbox.sandbox.account(ids[2])["billing_status"] == "Canceled"  # type: ignore[index]


async def test_accounts_list_as_table_and_json(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """accounts list prints a table with a count, or one JSON object per account with --json."""
    ids = await provision(sandbox, tmp_path, 3)
    capsys.readouterr()
    assert await cli.run(["accounts", "list", *flags(sandbox)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ACCOUNT", "ID", "STATUS", "SITE", "OWNER", "ORGANIZATION"]
    assert table[-1] == "3 accounts"
    assert all(any(i in line for line in table) for i in ids)
    assert await cli.run(["accounts", "list", "--json", *flags(sandbox)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["encoded_account_id"] for r in records} == set(ids)
    assert {r["billing_status"] for r in records} == {"Trial"}


async def test_webhooks_commands(sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]) -> None:
    """webhooks subscribe, list, test and unsubscribe act on the partner's topics; a bad topic is exit 2."""
    uri = "https://hooks.example/ctct"
    assert await cli.run(["webhooks", "subscribe", "billing-tier-upgrade", uri, *flags(sandbox)]) == 0
    assert sandbox.sandbox.webhook_subscriptions() == {"1": uri}
    assert await cli.run(["webhooks", "test", "1", *flags(sandbox)]) == 0
    assert await cli.run(["webhooks", "list", "--json", *flags(sandbox)]) == 0
    listed = capsys.readouterr().out
    assert f"sent to {uri}" in listed
    assert {"topic_id": 1, "hook_uri": uri} in [{k: json.loads(line)[k] for k in ("topic_id", "hook_uri")}
                                                for line in listed.splitlines() if line.startswith("{")]  # fmt: skip
    assert await cli.run(["webhooks", "unsubscribe", "1", *flags(sandbox)]) == 0
    assert sandbox.sandbox.webhook_subscriptions() == {}
    assert await cli.run(["webhooks", "subscribe", "7-up", uri, *flags(sandbox)]) == 2
    assert await cli.run(["webhooks", "subscribe", "1", "http://insecure.example", *flags(sandbox)]) == 2


async def test_quota_exceeded_fails_the_remaining_rows_fast(tmp_path: Path) -> None:
    """Once the daily quota is spent, the rows not yet sent fail at once with the same error: exit 1,
    every row is in the results, and hardly any request is sent after the first refusal."""
    async with run_sandbox(config(daily_quota=20)) as handle:
        source, out = write_csv(tmp_path / "a.csv", [row(i) for i in range(100)]), tmp_path / "out.jsonl"
        args = ["provision", str(source), "--out", str(out), "--rate-limit", "0", "--concurrency", "4", "-q"]
        assert await cli.run([*args, *flags(handle)]) == 1
        requests = handle.sandbox.stats()["api_requests"]
    assert isinstance(requests, int)
    results = read_results(out)
    assert len(results) == 100
    states = Counter(r["state"] for r in results)
    assert states == {"created": 20, "failed": 80}
    assert all("quota" in r["error"] for r in results if r["state"] == "failed")
    assert requests <= 20 + 4  # the quota, and at most one refused request per slot


async def test_refused_credentials_fail_every_row_without_sending_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong client secret: the first refusal stops the job, every row is reported failed with the
    authentication error, and the API sees no request at all."""
    async with run_sandbox(config()) as handle:
        source, out = write_csv(tmp_path / "a.csv", [row(i) for i in range(50)]), tmp_path / "out.jsonl"
        wrong = [("wrong-secret-123" if a == CLIENT_SECRET else a) for a in flags(handle)]
        args = [
            "provision",
            str(source),
            "--out",
            str(out),
            "--rate-limit",
            "0",
            "--concurrency",
            "4",
            *wrong,
        ]
        assert await cli.run(args) == 1
        stats = handle.sandbox.stats()
    results = read_results(out)
    assert sorted(r["index"] for r in results) == list(range(1, 51))
    assert {r["state"] for r in results} == {"failed"}
    assert stats["api_requests"] == 0
    token_requests = stats["token_requests"]
    assert isinstance(token_requests, int)
    assert token_requests <= 4
    captured = capsys.readouterr()
    assert "stopped early" in captured.err
    assert "wrong-secret-123" not in captured.out + captured.err + out.read_text()


async def test_a_job_that_stops_while_resolving_deferred_creates_reports_them_for_a_rerun(
    tmp_path: Path,
) -> None:
    """Every create deferred (503) and the quota spent before they can be looked up: each row is reported
    pending with the reason, the exit status is 1, and the journal keeps them pending for reconciliation."""
    settings = {"daily_quota": 10, "faults": Faults(create_503=1.0, deferred_delay=0.0)}
    async with run_sandbox(config(**settings)) as handle:
        source, out, journal = (
            write_csv(tmp_path / "a.csv", [row(i) for i in range(10)]),
            tmp_path / "out.jsonl",
            tmp_path / "j.sqlite",
        )
        args = [
            "provision",
            str(source),
            "--out",
            str(out),
            "--journal",
            str(journal),
            "--rate-limit",
            "0",
            "-q",
            *flags(handle),
        ]
        assert await cli.run(args) == 1
        assert handle.sandbox.stats()["creates_deferred"] == 10
    results = read_results(out)
    assert [r["index"] for r in results] == list(range(1, 11))
    assert all(r["state"] == "pending" and "not in the account list yet" in r["error"] for r in results)
    with Journal(journal, job="provision") as j:
        assert j.counts() == {"pending": 10}


# -- usage errors and secrets -----------------------------------------------------------------------


async def test_missing_credentials_are_a_usage_error_naming_flag_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No API key or client secret in flags or environment: exit 2, naming each flag and variable."""
    for var in ("CTCT_API_KEY", "CTCT_CLIENT_ID", "CTCT_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CTCT_CLIENT_ID", CLIENT_ID)
    source = write_csv(tmp_path / "a.csv", [row(1)])
    assert await cli.run(["provision", str(source)]) == 2
    err = capsys.readouterr().err
    assert "missing --api-key (or $CTCT_API_KEY), --client-secret (or $CTCT_CLIENT_SECRET)" in err
    assert "--client-id" not in err.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["provision", "{missing}"], "No such file or directory"),
        (["provision", "{dir}/rows.txt"], "unknown file type"),
        (["provision", "{csv}", "--rate-limit", "fast"], "expected a number of requests per second"),
        (["provision", "{csv}", "--concurrency", "0"], "must be at least 1"),
        (["provision", "{csv}", "--journal", "{dir}/no/such/dir/j.sqlite"], "--journal"),
        (["provision", "{csv}", "--out", "{dir}/no/such/dir/out.jsonl"], "--out"),
        (["provision", "{csv}", "--base-url", "http://api.example/v3"], "base_url"),
        (["frobnicate"], "invalid choice"),
        (["accounts"], "required"),
    ],
)
async def test_usage_errors_exit_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Bad arguments, an unreadable file, an unusable journal or results path or a bad URL: exit 2."""
    for var, value in (
        ("CTCT_API_KEY", API_KEY),
        ("CTCT_CLIENT_ID", CLIENT_ID),
        ("CTCT_CLIENT_SECRET", CLIENT_SECRET),
    ):
        monkeypatch.setenv(var, value)
    (tmp_path / "rows.txt").write_text("x\n")
    source = write_csv(tmp_path / "a.csv", [row(1)])
    names = {"missing": str(tmp_path / "missing.csv"), "dir": str(tmp_path), "csv": str(source)}
    assert await cli.run([a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert_no_secrets(err)


async def test_credentials_from_the_environment_and_no_secret_anywhere(
    sandbox: SandboxHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Credentials and endpoints come from CTCT_* variables; no secret reaches stdout, stderr, the results
    or the journal, even when rows fail."""
    for var, value in (("CTCT_API_KEY", API_KEY), ("CTCT_CLIENT_ID", CLIENT_ID), ("CTCT_CLIENT_SECRET", CLIENT_SECRET),
                       ("CTCT_BASE_URL", sandbox.base_url), ("CTCT_TOKEN_URL", sandbox.token_url)):  # fmt: skip
        monkeypatch.setenv(var, value)
    source = write_csv(
        tmp_path / "a.csv", [row(i) for i in range(5)] + [row(9, password="has space " + PASSWORD)]
    )
    journal, out = tmp_path / "j.sqlite", tmp_path / "out.jsonl"
    assert (
        await cli.run(
            ["provision", str(source), "--journal", str(journal), "--out", str(out), "--rate-limit", "0"]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert len(sandbox.sandbox.accounts()) == 5
    assert_no_secrets(
        captured.out, captured.err, out.read_text(), journal.read_bytes().decode("utf-8", "replace")
    )
    with contextlib.closing(sqlite3.connect(journal)) as db:
        assert db.execute("SELECT COUNT(*) FROM rows").fetchone() == (5,)  # the invalid row is not journaled


async def test_sandbox_command_runs_the_sandbox_with_its_own_options(tmp_path: Path) -> None:
    """`ctct-partner sandbox --port 0 --ready-file F` serves until SIGTERM and exits 0."""
    ready = tmp_path / "ready"
    command = [sys.executable, "-m", "ctct_partner_async.cli", "sandbox", "--port", "0", "--ready-file", str(ready),
               "--fault", "create_503=0.5"]  # fmt: skip
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=pipe, stderr=pipe)
    try:
        async with asyncio.timeout(20):
            while not ready.exists():
                assert proc.returncode is None
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            stdout, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert f"PORT={ready.read_text().strip()}" in stdout.decode()


def test_main_returns_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    """main() returns 0 for --help and 2 for a bad command, rather than raising SystemExit."""
    assert cli.main(["--help"]) == 0
    assert "provision" in capsys.readouterr().out
    assert cli.main(["provision"]) == 2
    assert cli.main(["sandbox", "--port", "nope"]) == 2
    assert cli.main(["sandbox", "--fault", "no_such_fault=1"]) == 2


# -- progress, results and summary (pure) -----------------------------------------------------------


def test_progress_line_shows_count_rate_and_eta() -> None:
    """The terminal line has the bar, done/total, percent, rows/s and the ETA."""
    line = format_progress("provision", 250, 1000, 10.0)
    assert line.startswith("provision [######..................]  250/1000   25%")
    assert "25.0 rows/s" in line
    assert line.endswith("ETA 0:30")
    assert format_line("plans", 0, 10, 0.0) == "plans: 0/10 rows (0%), 0.0 rows/s, ETA --:--"
    assert format_line("cancel", 10, 10, 2.0) == "cancel: 10/10 rows (100%), 5.0 rows/s, ETA 0:00"
    assert [format_duration(s) for s in (None, 59.4, 61, 3725)] == ["--:--", "0:59", "1:01", "1:02:05"]


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_plain_progress_writes_a_line_every_tenth_or_every_few_seconds() -> None:
    """Not a terminal: a plain line per tenth of the rows, or after 5 s without one, and a final line."""
    now = [0.0]
    stream = FakeStream(tty=False)
    progress = Progress("provision", 100, stream=stream, clock=lambda: now[0])
    for _ in range(25):
        now[0] += 0.01
        progress.advance()
    now[0] += 6.0
    progress.advance()
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["10/100", "20/100", "26/100"]
    assert "\r" not in stream.getvalue()


def test_terminal_progress_redraws_one_line() -> None:
    """On a terminal the line is redrawn in place (carriage return), at most every 0.1 s, and ends with a newline."""
    now = [0.0]
    stream = FakeStream(tty=True)
    progress = Progress("plans", 50, stream=stream, clock=lambda: now[0])
    for _ in range(50):
        now[0] += 0.01
        progress.advance()
    progress.finish()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert 5 <= text.count("\r") <= 8
    assert "50/50" in text.rsplit("\r", 1)[1]


def test_result_lines_and_summary() -> None:
    """A result line has exactly index, key, state, account id and error; the summary counts per state."""
    outcomes = [Outcome(index=1, key="a", state=OutcomeState.CREATED, encoded_account_id="acct1", deferred=True),
                Outcome(index=2, key="b", state=OutcomeState.INVALID, error="login_name: is required"),
                Outcome(index=3, key="c", state=OutcomeState.PENDING)]  # fmt: skip
    assert result_record(outcomes[0]) == {"index": 1, "key": "a", "state": "created",
                                          "encoded_account_id": "acct1", "error": None}  # fmt: skip
    assert "--journal" in str(result_record(outcomes[2])["error"])
    tally = Tally()
    for outcome in outcomes:
        tally.add(outcome)
    summary = format_summary("provision", tally, retries=4, elapsed=2.0).splitlines()
    assert summary[0] == "provision: 3 rows, 2 not done"
    assert [line.split()[0] for line in summary[2:]] == [
        "created",
        "of",
        "pending",
        "invalid",
        "retries",
        "elapsed",
        "rows/s",
    ]
    assert summary[-1].split() == ["rows/s", "1.5"]
    assert format_table(("A", "N"), [("x", 1), ("long", 10)], numeric=1) == [
        "A      N",
        "x      1",
        "long  10",
    ]
