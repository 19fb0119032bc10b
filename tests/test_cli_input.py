"""CLI input safety (#13 items 3, 6, 8): every case of a bulk command's input with its exit status, the
input file's bytes unchanged, and nothing sent when the input is refused; and the CLI's small fixes."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ctct_partner_async import __version__, cli
from ctct_partner_async._bulk import Outcome, OutcomeState
from ctct_partner_async.cli.demo import token_renewals
from ctct_partner_async.cli.report import Tally, format_problems, format_summary
from ctct_partner_async.sandbox import SandboxHandle, run_sandbox

from .test_cli import COLUMNS, assert_no_secrets, config, flags, row, write_csv

FAST = ["--rate-limit", "0", "-q"]


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(config()) as handle:
        yield handle


def requests_seen(handle: SandboxHandle) -> int:
    stats = handle.sandbox.stats()
    api, token = stats["api_requests"], stats["token_requests"]
    assert isinstance(api, int) and isinstance(token, int)
    return api + token


async def run_keeping(paths: list[Path], argv: list[str]) -> int:
    """Run the command and assert that every file in ``paths`` holds the same bytes afterwards."""
    before = {p: p.read_bytes() for p in paths}
    code = await cli.run(argv)
    assert {p: p.read_bytes() for p in paths} == before
    return code


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    """The command's stdin reads ``data`` (a stream without a file descriptor, as a pipe would be)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# -- outputs that would overwrite the input -----------------------------------------------------------


def link(kind: str, target: Path, name: Path) -> Path:
    if kind == "symlink":
        name.symlink_to(target)
    elif kind == "hardlink":
        os.link(target, name)
    else:
        return target
    return name


@pytest.mark.parametrize("flag", ["--out", "--journal"])
@pytest.mark.parametrize("kind", ["same path", "symlink", "hardlink"])
async def test_an_output_naming_the_input_file_is_a_usage_error_and_the_input_is_untouched(
    sandbox: SandboxHandle, tmp_path: Path, flag: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out or --journal naming the input (its path, a symlink to it, a hard link to it): exit 2, the
    input's bytes unchanged, nothing sent."""
    source = write_csv(tmp_path / "b.csv", [row(i) for i in range(3)])
    output = link(kind, source, tmp_path / "other.csv")
    code = await run_keeping([source], ["provision", str(source), flag, str(output), *FAST, *flags(sandbox)])
    assert code == 2
    assert "is the input file" in capsys.readouterr().err
    assert requests_seen(sandbox) == 0


async def test_out_and_journal_naming_one_file_is_a_usage_error(tmp_path: Path) -> None:
    """--out and --journal on one path would wreck the journal: exit 2 before either is opened."""
    source, both = write_csv(tmp_path / "a.csv", [row(1)]), tmp_path / "job.sqlite"
    code = await run_keeping([source], ["provision", str(source), "--out", str(both), "--journal", str(both)])
    assert code == 2
    assert not both.exists()


async def test_stdin_redirected_from_the_out_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`provision - --out b.csv < b.csv`: stdin is the file --out would overwrite: exit 2, untouched."""
    source = write_csv(tmp_path / "b.csv", [row(1)])
    with source.open("r", encoding="utf-8") as handle:
        monkeypatch.setattr(sys, "stdin", handle)
        assert await run_keeping([source], ["provision", "-", "--out", str(source), "--dry-run"]) == 2
    assert "is the input file stdin" in capsys.readouterr().err


# -- columns -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.csv", "{csv}", "organisation_name (did you mean organization_name?)"),
        ("a.jsonl", "{jsonl}", "organisation_name (did you mean organization_name?)"),
        ("a.json", "{json}", "organisation_name (did you mean organization_name?)"),
        ("b.csv", "login_name,contact_emial,country_code,state_code\nzed_1,z@example.com,US,MA\n",
         "contact_emial (did you mean contact_email?)"),
        ("c.csv", "login_name,contact_email,country_code,state_code,notes\nzed_1,z@example.com,US,MA,x\n",
         "unknown column notes;"),
    ],
)  # fmt: skip
async def test_unknown_columns_are_a_usage_error_with_a_did_you_mean(
    sandbox: SandboxHandle, tmp_path: Path, name: str, content: str, expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A column (CSV header, JSON key) that names no field: exit 2, listing it with the field it probably
    meant, nothing sent, the input untouched."""
    misspelt = {**row(1), "organisation_name": "Org"}
    del misspelt["organization_name"]
    texts = {"{csv}": "login_name,organisation_name,contact_email,country_code,state_code\nzed_1,Org,z@example.com,US,MA\n",
             "{jsonl}": json.dumps(misspelt) + "\n", "{json}": json.dumps([row(2), misspelt])}  # fmt: skip
    source = tmp_path / name
    source.write_text(texts.get(content, content))
    assert await run_keeping([source], ["provision", str(source), *FAST, *flags(sandbox)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "--ignore-unknown-columns" in err
    assert requests_seen(sandbox) == 0


async def test_ignore_unknown_columns_reads_the_file_without_them(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--ignore-unknown-columns: the job runs (exit 0), the unknown column is named on stderr, never sent."""
    source = tmp_path / "a.csv"
    source.write_text(
        "login_name,contact_email,password,country_code,state_code,notes\n"
        "zed_user1,z@example.com,pw-long-enough,US,MA,call on monday\n"
    )
    args = ["provision", str(source), "--ignore-unknown-columns", *FAST, *flags(sandbox)]
    assert await run_keeping([source], args) == 0
    assert "ignoring unknown columns 'notes'" in capsys.readouterr().err
    assert len(sandbox.sandbox.accounts()) == 1


async def test_a_plans_file_given_to_cancel_names_its_columns(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each job knows its own fields: plan columns are unknown to cancel (exit 2)."""
    source = write_jsonl(tmp_path / "p.jsonl", [{"encoded_account_id": "abc123", "plan_type": "GOLD"}])
    assert await run_keeping([source], ["cancel", str(source), *FAST, *flags(sandbox)]) == 2
    assert "unknown column plan_type" in capsys.readouterr().err


# -- empty input, JSON arrays, formats, stdin ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.csv", ""),
        ("header.csv", ",".join(COLUMNS) + "\n"),
        ("empty.jsonl", "\n"),
        ("empty.json", "[]"),
    ],
)
async def test_an_empty_or_header_only_file_exits_1_with_no_rows(
    sandbox: SandboxHandle, tmp_path: Path, name: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No record at all: exit 1 with "no rows" (not "0 rows, all succeeded"), no results file written."""
    source, out = tmp_path / name, tmp_path / "out.jsonl"
    source.write_text(text)
    assert (
        await run_keeping([source], ["provision", str(source), "--out", str(out), *FAST, *flags(sandbox)])
        == 1
    )
    captured = capsys.readouterr()
    assert "no rows" in captured.err
    assert "all succeeded" not in captured.out
    assert not out.exists()
    assert requests_seen(sandbox) == 0


async def test_a_json_array_file_is_provisioned(sandbox: SandboxHandle, tmp_path: Path) -> None:
    """A .json file holding an array of row objects: one account per object, exit 0."""
    source, out = tmp_path / "rows.json", tmp_path / "out.jsonl"
    source.write_text(json.dumps([row(i) for i in range(3)], indent=2))
    assert (
        await run_keeping([source], ["provision", str(source), "--out", str(out), *FAST, *flags(sandbox)])
        == 0
    )
    assert len(sandbox.sandbox.accounts()) == 3


@pytest.mark.parametrize(("text", "message"), [("42", "not a number"), ('{"a": 1', "not valid JSON")])
async def test_a_json_file_that_is_no_array_of_objects_is_a_usage_error_naming_it(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON document that is neither an array nor an object, or invalid JSON: exit 2 naming the file."""
    source = tmp_path / "rows.json"
    source.write_text(text)
    assert await run_keeping([source], ["provision", str(source), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(source) in err


async def test_a_named_pipe_is_read_once_and_its_rows_created(sandbox: SandboxHandle, tmp_path: Path) -> None:
    """A FIFO (as `<(...)` gives) can be read only once: it is copied, checked, then run; exit 0."""
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    text = write_csv(tmp_path / "x.csv", [row(i) for i in range(2)]).read_text()
    writer = threading.Thread(target=fifo.write_text, args=(text,), daemon=True)
    writer.start()
    try:
        assert await cli.run(["provision", str(fifo), *FAST, *flags(sandbox)]) == 0
    finally:
        writer.join(timeout=5)
    assert len(sandbox.sandbox.accounts()) == 2


async def test_format_overrides_the_suffix(sandbox: SandboxHandle, tmp_path: Path) -> None:
    """--format reads a file whatever its name; without it an unknown suffix is exit 2 naming --format."""
    source = tmp_path / "rows.txt"
    source.write_text("".join(json.dumps(row(i)) + "\n" for i in range(2)))
    assert await run_keeping([source], ["provision", str(source), *FAST, *flags(sandbox)]) == 2
    assert (
        await run_keeping([source], ["provision", str(source), "--format", "jsonl", *FAST, *flags(sandbox)])
        == 0
    )
    assert len(sandbox.sandbox.accounts()) == 2


@pytest.mark.parametrize(
    ("data", "extra"),
    [
        ("{csv}", ["--format", "csv"]),
        ("{csv}", []),
        ("{jsonl}", []),
        ("{json}", []),
        ("{jsonl}", ["--format", "jsonl"]),
    ],
)
async def test_dash_reads_rows_from_stdin(
    sandbox: SandboxHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: str, extra: list[str]
) -> None:
    """`-` reads stdin: CSV, JSON Lines or a JSON array, named by --format or sniffed; the rows are created."""
    rows = [row(i) for i in range(3)]
    texts = {"{csv}": write_csv(tmp_path / "x.csv", rows).read_text(),
             "{jsonl}": "".join(json.dumps(r) + "\n" for r in rows), "{json}": json.dumps(rows)}  # fmt: skip
    feed_stdin(monkeypatch, texts[data].encode())
    out = tmp_path / "out.jsonl"
    assert await cli.run(["provision", "-", *extra, "--out", str(out), *FAST, *flags(sandbox)]) == 0
    assert len(sandbox.sandbox.accounts()) == 3
    assert sorted(r["index"] for r in map(json.loads, out.read_text().splitlines())) == [1, 2, 3]


async def test_stdin_with_unknown_columns_or_no_rows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stdin is checked like a file and named "stdin": an unknown column is exit 2, nothing is exit 1."""
    feed_stdin(monkeypatch, b"login_name,organisation_name\nzed_1,Org\n")
    assert await cli.run(["provision", "-", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "stdin: unknown column organisation_name (did you mean organization_name?)" in err
    assert "/tmp" not in err.split("error:", 1)[1]  # never the temporary copy's name
    feed_stdin(monkeypatch, b"")
    assert await cli.run(["provision", "-", "--dry-run"]) == 1
    assert "no rows in stdin" in capsys.readouterr().err


# -- --dry-run -------------------------------------------------------------------------------------------


async def test_dry_run_checks_every_row_and_sends_nothing_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run with no credential anywhere: every row checked (rules, duplicates), a summary of valid and
    invalid, the problems in file order on stderr, each row in the CSV results; exit 1 for any invalid."""
    for var in ("CTCT_API_KEY", "CTCT_CLIENT_ID", "CTCT_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    rows = [row(0), row(1, contact_email="nope"), row(2), row(0, contact_email="x@example.com"), row(4)]
    source, out = write_csv(tmp_path / "a.csv", rows), tmp_path / "check.csv"
    args = ["provision", str(source), "--dry-run", "--out", str(out), "--base-url", "http://127.0.0.1:9/v3"]
    assert await run_keeping([source], args) == 1
    captured = capsys.readouterr()
    summary = captured.out.splitlines()
    assert summary[0] == "provision --dry-run: 5 rows, 2 invalid, nothing sent"
    assert [line.split() for line in summary[2:4]] == [["valid", "3"], ["invalid", "2"]]
    assert summary[4:] == [
        "provision --dry-run: the job would need about 3 requests (3 rows x 1 request); the API key's daily "
        "quota is 10,000 (today's use is not read in a dry run)"
    ]
    problems = captured.err.splitlines()
    assert problems[0].startswith("row 2 (cli_user_00001): invalid: contact_email:")
    assert (
        problems[1]
        == "row 4 (cli_user_00000): invalid: key: duplicate of row 1 (cli_user_00000) in this input"
    )
    with out.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    assert [(r["index"], r["state"]) for r in records] == [
        ("1", "valid"), ("2", "invalid"), ("3", "valid"), ("4", "invalid"), ("5", "valid"),
    ]  # fmt: skip
    assert_no_secrets(captured.out, captured.err, out.read_text())
    good = write_csv(tmp_path / "ok.csv", [row(7)])
    assert await run_keeping([good], ["provision", str(good), "--dry-run"]) == 0


async def test_dry_run_of_plans_and_cancel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """plans and cancel rows are checked by their own rules (a TRIAL target, a reason code) in a dry run."""
    plans = write_jsonl(tmp_path / "p.jsonl", [{"encoded_account_id": "abc123", "plan_type": "GOLD"},
                                               {"encoded_account_id": "abc124", "plan_type": "TRIAL"}])  # fmt: skip
    assert await run_keeping([plans], ["plans", str(plans), "--dry-run"]) == 1
    assert "row 2 (abc124): invalid: plan_type: an account can't be moved to TRIAL" in capsys.readouterr().err
    cancel = tmp_path / "c.csv"
    cancel.write_text("encoded_account_id,reason_id\nabc123,1\n")
    assert await run_keeping([cancel], ["cancel", str(cancel), "--dry-run"]) == 0
    assert "cancel --dry-run: 1 rows, all valid, nothing sent" in capsys.readouterr().out


# -- results as CSV, problems in file order --------------------------------------------------------------


async def test_out_csv_writes_a_csv_of_every_row(sandbox: SandboxHandle, tmp_path: Path) -> None:
    """--out results.csv: a header (index,key,state,encoded_account_id,error) and a line per row; a
    cell a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    source, out = write_csv(tmp_path / "a.csv", [row(1), row(2, login_name="=1+1")]), tmp_path / "results.csv"
    assert (
        await run_keeping([source], ["provision", str(source), "--out", str(out), *FAST, *flags(sandbox)])
        == 1
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "index,key,state,encoded_account_id,error"
    records = {r["index"]: r for r in csv.DictReader(io.StringIO(out.read_text()))}
    assert records["1"]["state"] == "created" and records["1"]["encoded_account_id"]
    assert records["1"]["error"] == ""
    assert records["2"]["state"] == "invalid" and records["2"]["key"] == "'=1+1"
    assert "login_name" in records["2"]["error"]


async def test_problem_rows_are_listed_in_file_order(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows that fail at the API finish after invalid rows later in the file; stderr lists them by row."""
    source = tmp_path / "c.csv"
    source.write_text(
        "encoded_account_id,reason_id\nnosuchacct1,1\nnosuchacct2,1\nbadreason1,99\nbadreason2,99\n"
    )
    assert await run_keeping([source], ["cancel", str(source), *FAST, *flags(sandbox)]) == 1
    rows = [int(m) for m in re.findall(r"^row (\d+) ", capsys.readouterr().err, re.M)]
    assert rows == [1, 2, 3, 4]


def test_the_tally_keeps_the_first_problems_by_row_number() -> None:
    """Outcomes arriving out of order: the problem list holds the lowest row numbers, sorted."""
    tally = Tally()
    for index in [30, 5, 17, *range(40, 60), 2]:
        tally.add(Outcome(index=index, key=f"k{index}", state=OutcomeState.FAILED, error="boom"))
    assert [p.index for p in tally.problems] == [2, 5, 17, 30, 40, 41, 42, 43, 44, 45]
    assert (
        format_problems(tally, None).splitlines()[-1] == "... and 14 more (pass --out PATH to get every row)"
    )


# -- the small wrong things --------------------------------------------------------------------------------


def test_of_which_after_a_503_never_exceeds_created() -> None:
    """Deferred creates that ended pending or failed are not counted as created after a 503."""
    tally = Tally()
    tally.add(Outcome(index=1, key="a", state=OutcomeState.CREATED, encoded_account_id="x", deferred=True))
    tally.add(Outcome(index=2, key="b", state=OutcomeState.PENDING, deferred=True))
    tally.add(Outcome(index=3, key="c", state=OutcomeState.FAILED, error="gone", deferred=True))
    summary = format_summary("provision", tally, retries=0, elapsed=1.0)
    counts = {
        line.rsplit(None, 1)[0].strip(): int(line.rsplit(None, 1)[1]) for line in summary.splitlines()[2:5]
    }
    assert counts == {"created": 1, "of which after a 503": 1, "pending": 1}


def test_token_renewals_add_up() -> None:
    """The renewal count is the sum of the reasons listed; the first token is told apart."""
    assert token_renewals(Counter({"initial": 1, "advisory": 1})) == "1 (advisory 1), after the first token"
    assert token_renewals(Counter({"initial": 1})) == "0, after the first token"
    assert (
        token_renewals(Counter({"initial": 1, "initial (failed)": 2, "advisory": 3, "mandatory": 1}))
        == "4 (advisory 3, mandatory 1), after the first token (3 requests, 2 failed)"
    )


async def test_trial_is_neither_listed_nor_allowed_for_plans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown plan type lists the known ones without TRIAL; --allow-plan-type TRIAL is exit 2."""
    plans = write_jsonl(tmp_path / "p.jsonl", [{"encoded_account_id": "abc123", "plan_type": "PLATINUM"}])
    assert await run_keeping([plans], ["plans", str(plans), "--dry-run"]) == 1
    err = capsys.readouterr().err
    known = re.search(r"must be a known plan type \(([A-Z, ]+)\)", err)
    assert known is not None
    assert "TRIAL" not in known.group(1) and "GOLD" in known.group(1)
    assert await run_keeping([plans], ["plans", str(plans), "--dry-run", "--allow-plan-type", "trial"]) == 2
    assert "TRIAL can't be allowed" in capsys.readouterr().err
    assert (
        await run_keeping([plans], ["plans", str(plans), "--dry-run", "--allow-plan-type", "platinum"]) == 0
    )


@pytest.mark.parametrize("bad", ["0", "5", "42", "nope"])
async def test_a_webhook_topic_outside_1_to_4_is_a_usage_error(
    sandbox: SandboxHandle, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Topics 0, 5, 42 or an unknown name: exit 2 before anything is sent, naming the valid topics."""
    assert await cli.run(["webhooks", "test", bad, *flags(sandbox)]) == 2
    assert "use 1-4 or one of billing-tier-upgrade" in capsys.readouterr().err
    assert requests_seen(sandbox) == 0


async def test_a_control_character_in_an_organization_name_does_not_break_the_table(
    sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newline, a tab or an ESC in a name from the server is escaped: one table line per account."""
    sandbox.sandbox.seed_account("evil_one", organization_name="Evil\nCorp\t\x1b[31mRed")
    sandbox.sandbox.seed_account("plain_two", organization_name="Plain")
    assert await cli.run(["accounts", "list", *flags(sandbox)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 2 + 1  # header, two accounts, the count
    assert any(line.endswith("Evil\\x0aCorp\\x09\\x1b[31mRed") for line in lines)
    assert "\x1b" not in "".join(lines)


def test_version_and_exit_statuses_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version; --help, and a bulk command's --help, list exit statuses 0, 1 and 2."""
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ctct-partner {__version__}"
    for argv in (["--help"], ["provision", "--help"], ["webhooks", "test", "--help"]):
        assert cli.main(argv) == 0
        text = capsys.readouterr().out
        assert "exit status:" in text
        for code in ("0", "1", "2"):
            assert re.search(rf"^  {code}\s+\S", text, re.M), (argv, code)


@pytest.mark.parametrize(
    ("verbose", "levels"), [([], set()), (["-v"], {"INFO"}), (["-vv"], {"INFO", "DEBUG"})]
)
async def test_verbose_logs_the_sdk_loggers_to_stderr(
    sandbox: SandboxHandle, tmp_path: Path, verbose: list[str], levels: set[str],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """-v: INFO records of ctct_partner_async.* on stderr (a token renewal); -vv: DEBUG too (each
    request); neither leaves a handler behind, nor prints a secret."""
    for i, position in enumerate(("before", "after")):
        source = write_csv(tmp_path / f"{position}.csv", [row(i)])
        argv = ["provision", str(source), *FAST, *flags(sandbox)]
        argv = [*verbose, *argv] if position == "before" else [*argv, *verbose]
        assert await cli.run(argv) == 0
        err = capsys.readouterr().err
        seen = set(re.findall(r" (INFO|DEBUG) ctct_partner_async", err))
        assert seen == levels, (position, err)
        if "INFO" in levels:
            assert "INFO ctct_partner_async.auth: partner token renewed (initial)" in err
        if "DEBUG" in levels:
            assert re.search(
                r"DEBUG ctct_partner_async\.cli: POST http://127\.0\.0\.1:\d+/v3/partner/accounts -> 201", err
            )
        assert_no_secrets(err)
    assert logging.getLogger("ctct_partner_async").handlers == []
