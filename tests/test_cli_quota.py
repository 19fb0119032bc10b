"""The bulk commands' quota estimate: before the first request a job's requests (the rows it will send
times the requests per row) are compared with what the API key has left today, by the count shared in
Redis or this process's; beyond it, one warning line on stderr and the job runs; a key stopped by a
``quota_exceeded`` is said so and the job ends with nothing sent; ``--dry-run`` prints the estimate; the
summary ends with the day's count."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from ctct_partner_async import cli
from ctct_partner_async._budget import QuotaStatus
from ctct_partner_async.cli.jobs import REQUESTS_PER_ROW, bulk_command, rows_to_send
from ctct_partner_async.cli.report import Estimate, format_until, quota_rows, quota_warning
from ctct_partner_async.journal import Journal
from ctct_partner_async.sandbox import SandboxHandle, run_sandbox

from .test_cli import config, flags, read_results, row, write_csv

IN = r"in (\d+h\d\dm|\d+m)"  # the wait until 00:00 UTC, whenever the test runs


async def run_cli(argv: list[str], *, daily_quota: int | None = None) -> int:
    """``cli.run``, with ``--daily-quota`` when given."""
    args = cli.parse(argv if daily_quota is None else [*argv, "--daily-quota", str(daily_quota)])
    assert isinstance(args, argparse.Namespace)
    return await cli.execute(args)


def quiet(handle: SandboxHandle, *more: str) -> list[str]:
    return [*flags(handle), "--rate-limit", "0", "-q", *more]


def summary_row(out: str, label: str) -> str:
    """The value of the summary table's row ``label``."""
    for line in out.splitlines():
        if line.strip().startswith(label + "  "):
            return line.strip()[len(label) :].strip()
    raise AssertionError(f"no {label!r} row in:\n{out}")


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(config()) as handle:
        yield handle


# -- against the sandbox and a real redis-server ------------------------------------------------------------


async def test_a_job_beyond_what_the_shared_count_leaves_warns_and_still_runs(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first job spends 20 of a 30-request day in Redis (no warning); a second job of 15 rows is told on
    stderr that it needs about 15 and about 10 are left, and still creates every row."""
    async with run_sandbox(config()) as handle:
        shared = quiet(handle, "--redis-url", redis_url)
        first = write_csv(tmp_path / "first.csv", [row(i) for i in range(20)])
        assert await run_cli(["provision", str(first), *shared], daily_quota=30) == 0
        captured = capsys.readouterr()
        assert "warning" not in captured.err
        assert summary_row(captured.out, "quota used today (shared)") == "20"
        assert summary_row(captured.out, "quota left today") == "10"
        second = write_csv(tmp_path / "second.csv", [row(i) for i in range(20, 35)])
        assert await run_cli(["provision", str(second), *shared], daily_quota=30) == 0
        captured = capsys.readouterr()
        requests = handle.sandbox.stats()["api_requests"]
        accounts = len(handle.sandbox.accounts())
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert re.fullmatch(
        r"provision: warning: this job needs about 15 requests \(15 rows x 1 request\); the API key has "
        r"about 10 left today \(20 of 30 used, by the count shared in Redis; resets 00:00 UTC, "
        + IN
        + r"\): rows beyond that will stop with quota_exceeded",
        warnings[0],
    ), warnings[0]
    assert "provision: 15 rows, all succeeded" in captured.out
    assert summary_row(captured.out, "quota used today (shared)") == "35"
    assert summary_row(captured.out, "quota left today") == "0"
    assert accounts == 35 == requests


async def test_a_quota_stop_seen_by_one_run_stops_the_next_with_no_request_sent(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sandbox's quota runs out under a first run, which stops the key in Redis; a second run (another
    client) says the key is stopped, fails every row with the quota error and sends no request at all."""
    async with run_sandbox(config(daily_quota=4)) as handle:
        shared = quiet(handle, "--redis-url", redis_url, "--concurrency", "1")
        first = write_csv(tmp_path / "first.csv", [row(i) for i in range(10)])
        assert await run_cli(["provision", str(first), *shared]) == 1
        before = handle.sandbox.stats()
        capsys.readouterr()
        second, out = (
            write_csv(tmp_path / "second.csv", [row(i) for i in range(10, 15)]),
            tmp_path / "out.jsonl",
        )
        assert await run_cli(["provision", str(second), "--out", str(out), *shared]) == 1
        after = handle.sandbox.stats()
    assert before["api_requests"] == 5  # 4 created, 1 refused with quota_exceeded
    assert after["api_requests"] == before["api_requests"]
    assert after["token_requests"] == before["token_requests"]
    captured = capsys.readouterr()
    assert re.search(
        r"^provision: the API key's daily quota is spent: a quota_exceeded answer stopped every process "
        r"on the key until 00:00 UTC, " + IN + r"; no request will be sent$",
        captured.err,
        re.MULTILINE,
    ), captured.err
    assert "warning" not in captured.err
    assert "provision: stopped early" in captured.err
    results = read_results(out)
    assert [r["state"] for r in results] == ["failed"] * 5
    assert all("quota" in r["error"] for r in results)
    assert summary_row(captured.out, "quota left today") == "0 (stopped)"


# -- against the sandbox, counted by this process -------------------------------------------------------------


async def test_a_job_within_the_quota_prints_no_warning(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five rows against the default 10,000 a day: no warning, and the summary counts the five."""
    source = write_csv(tmp_path / "a.csv", [row(i) for i in range(5)])
    assert await run_cli(["provision", str(source), *quiet(sandbox)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert summary_row(captured.out, "quota used today") == "5"
    assert summary_row(captured.out, "quota left today") == "9,995"


async def test_without_redis_a_job_beyond_the_daily_quota_warns_and_runs(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without Redis, 8 rows against a daily quota of 5: a warning that names the daily quota and
    ``--redis-url``; all 8 rows are created (the server decides)."""
    source = write_csv(tmp_path / "a.csv", [row(i) for i in range(8)])
    assert await run_cli(["provision", str(source), *quiet(sandbox)], daily_quota=5) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(
        r"provision: warning: this job needs about 8 requests \(8 rows x 1 request\); the API key has at "
        r"most 5 left today \(the daily quota of 5; what other processes sent today is counted only with "
        r"--redis-url; resets 00:00 UTC, " + IN + r"\): rows beyond that will stop with quota_exceeded\n",
        captured.err,
    ), captured.err
    assert len(sandbox.sandbox.accounts()) == 8
    assert summary_row(captured.out, "quota used today") == "8"


async def test_the_estimate_counts_only_the_rows_the_job_will_send(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invalid rows, duplicates and rows the journal holds as finished are not counted: 5 rows left of
    19 records fit a quota of 5 (no warning), and the next 5 of 25 records exceed a quota of 4."""
    journal = ["--journal", str(tmp_path / "job.sqlite")]
    bad: list[Mapping[str, str] | str] = [row(900, login_name=""), row(901, contact_email="nope"),
                                          "only,three,fields", row(3)]  # fmt: skip  # dup: row 3
    first = write_csv(tmp_path / "first.csv", [row(i) for i in range(10)])
    assert await run_cli(["provision", str(first), *journal, *quiet(sandbox)]) == 0
    capsys.readouterr()
    second = write_csv(tmp_path / "second.csv", [*(row(i) for i in range(15)), *bad])
    assert await run_cli(["provision", str(second), *journal, *quiet(sandbox)], daily_quota=5) == 1
    assert "warning" not in capsys.readouterr().err
    third = write_csv(tmp_path / "third.csv", [*(row(i) for i in range(20)), *bad])
    assert await run_cli(["provision", str(third), *journal, *quiet(sandbox)], daily_quota=4) == 1
    assert "this job needs about 5 requests (5 rows x 1 request)" in capsys.readouterr().err
    assert len(sandbox.sandbox.accounts()) == 20


async def test_each_job_sends_the_requests_per_row_its_estimate_counts(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """The table has an entry for every bulk command, and each job sends the sandbox exactly rows times
    its requests per row: provision 6 rows, plans 4, cancel 3."""
    choices = cli.build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert isinstance(choices, dict)
    commands: dict[str, argparse.ArgumentParser] = choices
    assert set(REQUESTS_PER_ROW) == {n for n, p in commands.items() if p.get_default("run") is bulk_command}

    def sent() -> int:
        count = sandbox.sandbox.stats()["api_requests"]
        assert isinstance(count, int)
        return count

    out = tmp_path / "new.jsonl"
    source = write_csv(tmp_path / "new.csv", [row(i) for i in range(6)])
    assert await run_cli(["provision", str(source), "--out", str(out), *quiet(sandbox)]) == 0
    assert sent() == 6 * REQUESTS_PER_ROW["provision"]
    ids = [r["encoded_account_id"] for r in sorted(read_results(out), key=lambda r: r["index"])]
    plans = tmp_path / "plans.csv"
    plans.write_text("encoded_account_id,plan_type\n" + "".join(f"{i},GOLD\n" for i in ids[:4]))
    assert await run_cli(["plans", str(plans), *quiet(sandbox)]) == 0
    assert sent() == 6 + 4 * REQUESTS_PER_ROW["plans"]
    cancel = tmp_path / "cancel.csv"
    cancel.write_text("encoded_account_id,reason_id\n" + "".join(f"{i},1\n" for i in ids[3:]))
    assert await run_cli(["cancel", str(cancel), *quiet(sandbox)]) == 0
    assert sent() == 10 + 3 * REQUESTS_PER_ROW["cancel"]


# -- without a sandbox ---------------------------------------------------------------------------------------


async def test_dry_run_prints_the_estimate_without_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--dry-run`` prints the valid rows times the requests per row against the configured daily quota
    (no credentials, no Redis), and the warning when the estimate exceeds it."""
    for var in ("CTCT_API_KEY", "CTCT_CLIENT_ID", "CTCT_CLIENT_SECRET", "CTCT_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    source = write_csv(tmp_path / "a.csv", [*(row(i) for i in range(7)), row(99, login_name="")])
    assert await run_cli(["provision", str(source), "--dry-run"]) == 1
    captured = capsys.readouterr()
    assert (
        "provision --dry-run: the job would need about 7 requests (7 rows x 1 request); the API key's daily "
        "quota is 10,000 (today's use is not read in a dry run)" in captured.out.splitlines()
    )
    assert "warning" not in captured.err
    assert await run_cli(["provision", str(source), "--dry-run"], daily_quota=6) == 1
    captured = capsys.readouterr()
    assert "daily quota is 6 (today's use is not read in a dry run)" in captured.out
    assert captured.err.splitlines()[0] == (
        "provision --dry-run: warning: the job would need about 7 requests (7 rows x 1 request), more than "
        "the API key's daily quota of 6: rows beyond that would stop with quota_exceeded"
    )


def test_rows_to_send_leaves_out_what_the_journal_finished() -> None:
    """A plans row whose account the journal holds as updated is not counted; one that failed is."""
    rows = [{"encoded_account_id": f"acct{i:04d}", "plan_type": "GOLD"} for i in range(4)]
    with Journal(job="plans") as journal:
        journal.record("acct0000", 1, "updated")
        journal.record("acct0001", 2, "failed", error="400")
        assert rows_to_send("plans", rows, {"GOLD"}, journal) == 3
    assert rows_to_send("plans", [*rows, {"encoded_account_id": "x"}], {"GOLD"}, None) == 4


def test_the_warning_says_nothing_when_the_estimate_fits_or_the_quota_is_unknown() -> None:
    """No line for an estimate within what is left, nor without a daily quota; one once it is exceeded,
    with the time until the reset."""
    reset = dt.datetime(2030, 1, 2, tzinfo=dt.UTC)
    now = reset.timestamp() - (5 * 3600 + 12 * 60 + 30)
    quota = QuotaStatus(used=9_200, limit=10_000, reset_at=reset, shared=True)
    assert quota_warning("plans", Estimate(800, 1), quota, now=now) is None
    assert (
        quota_warning("plans", Estimate(10**6, 1), QuotaStatus(used=0, limit=None, reset_at=reset), now=now)
        is None
    )
    warning = quota_warning("plans", Estimate(1_230, 1), quota, now=now)
    assert warning == (
        "plans: warning: this job needs about 1,230 requests (1,230 rows x 1 request); the API key has about "
        "800 left today (9,200 of 10,000 used, by the count shared in Redis; resets 00:00 UTC, in 5h12m): "
        "rows beyond that will stop with quota_exceeded"
    )
    assert [format_until(s) for s in (-5, 59, 61, 3600, 86_399)] == ["0m", "0m", "1m", "1h00m", "23h59m"]
    assert quota_rows(QuotaStatus(used=3, limit=None, reset_at=reset)) == [("quota used today", "3")]
