"""One bad row is that row's problem (issue 11, cases 4 and 6): text that can't be UTF-8, control
characters, lengths past the spec's caps and dates with no UTC time are found by validation, named with
their field and rule, and nothing of them is sent; what reaches a terminal holds no escape sequence."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from ctct_partner_async import (
    Journal,
    NewAccount,
    OutcomeState,
    PartnerClient,
    Request,
    Response,
    SsoUser,
    ValidationError,
    cli,
    read_rows,
)
from ctct_partner_async import _operations as ops
from ctct_partner_async._bulk import Outcome
from ctct_partner_async._models import AccountOperation, Cancellation, PlanChange, UnsubscribeRequest
from ctct_partner_async._validation import ACCOUNT_TEXT, check_new_account
from ctct_partner_async.cli._text import json_line, printable
from ctct_partner_async.cli.progress import format_line, format_progress
from ctct_partner_async.cli.report import Tally, format_problems, format_summary, format_table
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox
from ctct_partner_async.testing import MockTransport

from . import spec

LATE = dt.datetime.fromisoformat("9999-12-31T23:59:59-14:00")  # 10000-01-01 in UTC


def created(request: Request) -> Response:
    login = json.loads(request.body or b"{}").get("login_name", "x")
    return Response.from_json(201, {"encoded_account_id": f"id-{login}"})


async def _token() -> str:
    return "jwt"


def client(transport: MockTransport) -> PartnerClient:
    return PartnerClient(api_key="k", token_provider=_token, transport=transport, rate_limit=None)


def row(i: int, **changes: str) -> dict[str, str]:
    return {"contact_email": f"o{i}@example.com", "login_name": f"client_{i:05d}", "password": "s3cret-pass",
            "country_code": "US", "state_code": "MA", "organization_name": f"Org {i}", **changes}  # fmt: skip


async def test_a_lone_surrogate_in_a_jsonl_row_is_that_rows_problem(tmp_path: Path) -> None:
    """A JSONL row holding "\\ud800" is invalid, naming the field; the others are created; the journal
    holds no row of it (nothing was sent)."""
    source = tmp_path / "rows.jsonl"
    lines = [json.dumps(row(1)), json.dumps(row(2)).replace("Org 2", "Org \\ud800"), json.dumps(row(3))]
    source.write_text("\n".join(lines) + "\n")
    transport = MockTransport(created)
    async with client(transport) as c:
        with Journal(tmp_path / "j.sqlite", job="provision") as journal:
            outcomes = [o async for o in c.bulk.create_accounts(read_rows(source), journal=journal)]
            keys = {e.key for e in journal.entries()}
    states = {o.key: o.state for o in outcomes}
    assert states == {"client_00001": OutcomeState.CREATED, "client_00002": OutcomeState.INVALID,
                      "client_00003": OutcomeState.CREATED}  # fmt: skip
    bad = next(o for o in outcomes if o.state is OutcomeState.INVALID)
    assert bad.error is not None and "organization_name" in bad.error and "surrogate" in bad.error
    assert len(transport.requests) == 2
    assert keys == {"client_00001", "client_00003"}


async def test_a_lone_surrogate_in_a_model_is_a_validation_error_before_sending() -> None:
    """The same for one create with a NewAccount (and for a model row of a bulk job): nothing is sent."""
    transport = MockTransport(created)
    bad = NewAccount(**row(1, organization_name="Org \ud800"))  # type: ignore[arg-type]  # a row of strings
    async with client(transport) as c:
        with pytest.raises(ValidationError) as info:
            await c.accounts.create(bad)
        outcomes = [o async for o in c.bulk.create_accounts([bad, NewAccount(**row(2))])]  # type: ignore[arg-type]
    assert info.value.field == "organization_name"
    assert {o.index: o.state for o in outcomes} == {1: OutcomeState.INVALID, 2: OutcomeState.CREATED}
    assert len(transport.requests) == 1


async def test_a_date_with_no_utc_time_is_refused_before_sending() -> None:
    """effective_date 9999-12-31T23:59:59-14:00 overflows in UTC: ValidationError naming it, no request."""
    transport = MockTransport(created)
    async with client(transport) as c:
        with pytest.raises(ValidationError) as info:
            await c.accounts.cancel("a07e1my9tbw0", effective_date=LATE)
    assert info.value.field == "effective_date" and "UTC" in info.value.rule
    assert transport.requests == []


# -- case 6: characters no field may hold, and the lengths the spec caps -------------------------------

GOOD = NewAccount(contact_email="hank@example.com", login_name="hank_smith", password="s3cret-pass",
                  country_code="US", state_code="MA")  # fmt: skip
SECRET = "s3cret\x00pass"

CHARACTER_RULES = [
    ("organization_name", "Org\x00Name", "must not contain control characters (U+0000)"),
    ("organization_name", "Org \x1b[2J", "must not contain control characters (U+001B)"),
    ("first_name", "Jo\nhn", "must not contain control characters (U+000A)"),
    ("last_name", "Smi\tth", "must not contain control characters (U+0009)"),
    ("website", "https://hank.example/\x7f", "must not contain control characters (U+007F)"),
    ("time_zone_id", "US/Eastern\x85", "must not contain control characters (U+0085)"),
    ("partner_account_id", "p\x9b1", "must not contain control characters (U+009B)"),
    ("contact_email", "ha\x00nk@example.com", "must not contain control characters (U+0000)"),
    ("contact_phone", "555-\r0100", "must not contain control characters (U+000D)"),
    ("login_name", "hank\x1bsmith", "must not contain control characters (U+001B)"),
    ("password", SECRET, "must not contain control characters"),
    ("organization_name", "Org \ud800", "must be valid Unicode text (it holds a lone surrogate)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    CHARACTER_RULES,
    ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(CHARACTER_RULES)],
)
def test_control_characters_in_a_model_name_the_field_and_the_code_point(
    field: str, value: str, rule: str
) -> None:
    """No text field of a create holds C0, DEL, C1 or a lone surrogate; the error names the field and the
    rule with at most the code point, and never the value."""
    with pytest.raises(ValidationError) as info:
        check_new_account(_account_with(field, value))
    assert (field, rule) in [(e.field, e.rule) for e in info.value.errors]
    assert f"{field}: {rule}" in str(info.value)
    assert value not in str(info.value)


def test_every_control_character_is_refused_in_every_field() -> None:
    """All 65 of C0, DEL and C1, in each text field of a create (the fast screen misses none)."""
    controls = [*range(0x20), *range(0x7F, 0xA0)]
    assert len(controls) == 65
    for field in ACCOUNT_TEXT:
        for code in controls:
            with pytest.raises(ValidationError) as info:
                check_new_account(_account_with(field, _text_of(field, 8)[:-1] + chr(code)))
            assert any(e.field == field and "control characters" in e.rule for e in info.value.errors)


def test_a_password_rule_never_names_the_character() -> None:
    """A control character in a password is refused like anywhere else, but its code point isn't said."""
    with pytest.raises(ValidationError) as info:
        check_new_account(attrs.evolve(GOOD, password=SECRET))
    assert str(info.value) == "password: must not contain control characters"


def test_letters_of_any_script_pass() -> None:
    """Accents, CJK, emoji and a no-break space are text, not control characters."""
    check_new_account(attrs.evolve(GOOD, organization_name="Café Zoë 日本 🍎", first_name="Zoë\u00a0Ann",
                                   last_name="Ærø", website="https://bäckerei.example/ß"))  # fmt: skip


def _text_of(field: str, length: int) -> str:
    if field == "contact_email":
        return "h" * (length - len("@example.com")) + "@example.com"
    if field == "country_code":
        return "GBRX"[:length]
    return ("5" if field.endswith("phone") else "x") * length


def _account_with(field: str, value: str) -> NewAccount:
    external: dict[str, Any] = {"external_id": "e1", "external_provider": "Yahoo", "password": None}
    extra = external if field in ("external_id", "external_provider") else {}
    return attrs.evolve(GOOD, **{**extra, field: value})


def _spec_lengths(definition: str) -> list[tuple[str, int | None, int | None]]:
    properties = spec.load()["definitions"][definition]["properties"]
    return [(name, p.get("minLength"), p.get("maxLength")) for name, p in properties.items()
            if "minLength" in p or "maxLength" in p]  # fmt: skip


PROVISION_LENGTHS = _spec_lengths("Provision")


@pytest.mark.parametrize(
    ("field", "low", "high"), PROVISION_LENGTHS, ids=[f for f, _, _ in PROVISION_LENGTHS]
)
def test_every_length_the_spec_caps_on_a_create_is_enforced(
    field: str, low: int | None, high: int | None
) -> None:
    """For each minLength/maxLength of the spec's Provision: the bounds pass, one past them is refused, and
    the rule names the spec's numbers."""
    assert high is not None
    check_new_account(_account_with(field, _text_of(field, high)))
    outside = [high + 1] + ([low - 1] if low else [])
    if low:
        check_new_account(_account_with(field, _text_of(field, low)))
    for length in outside:
        with pytest.raises(ValidationError) as info:
            check_new_account(_account_with(field, _text_of(field, length)))
        rules = [e.rule for e in info.value.errors if e.field == field]
        assert rules and str(high) in rules[0] and (not low or str(low) in rules[0])


def test_the_spec_caps_the_fields_we_check_and_no_others() -> None:
    """The spec caps exactly these create fields (website, time_zone_id, state_code and billing_locale
    carry no length in it) and the SSO user fields the SDK checks."""
    assert {f: (lo, hi) for f, lo, hi in PROVISION_LENGTHS} == {
        "contact_email": (None, 80), "contact_phone": (5, 25), "country_code": (2, 3),
        "organization_name": (1, 50), "organization_phone": (5, 25), "login_name": (6, 50),
        "password": (8, 80), "first_name": (2, 80), "last_name": (2, 80), "partner_account_id": (None, 80),
        "external_id": (None, 255), "external_provider": (None, 80),
    }  # fmt: skip
    sso = SsoUser(first_name="Jo", last_name="Lang", role_name="campaign_creator", contact_email="j@example.com",
                  login_name="josie.lang", external_id="1", external_provider="Yahoo")  # fmt: skip
    for field, _, high in _spec_lengths("SSOUser"):
        assert high is not None
        value = _text_of(field, high + 1)
        with pytest.raises(ValidationError) as info:
            ops.build_create_sso_user("abc", attrs.evolve(sso, **{field: value}))
        assert (field, f"must be at most {high} characters") in [(e.field, e.rule) for e in info.value.errors]


OTHER_RULES = [
    (lambda: ops.build_update_plan("abc", PlanChange(plan_type="GO\x1bLD")), "plan_type",
     "must not contain control characters (U+001B)"),
    (lambda: ops.build_update_plan("abc", PlanChange(plan_type="GOLD", plan_group_id=2**31)), "plan_group_id",
     "must be -2147483648 to 2147483647 (int32)"),
    (lambda: ops.build_update_plan("abc", PlanChange(plan_type="GOLD", billing_day_of_month="5")),  # type: ignore[arg-type]
     "billing_day_of_month", "must be 1 to 31"),
    (lambda: ops.build_cancel("abc", Cancellation(reason_id=2**31)), "reason_id", "must be 1 to 2147483647 (int32)"),
    (lambda: ops.build_create_sso_user("abc", SsoUser(first_name="Jo", last_name="Lang", role_name="campaign_creator\r",
        contact_email="j@example.com", login_name="josie.lang", external_id="1", external_provider="Yahoo")),
     "role_name", "must not contain control characters (U+000D)"),
    (lambda: ops.build_unsubscribe_contacts("abc", UnsubscribeRequest(email_addresses=["a\x00@b.example"],
        update_source="Account")), "email_addresses[0]", "must not contain control characters (U+0000)"),
    (lambda: ops.build_unsubscribe_contacts("abc", UnsubscribeRequest(email_addresses=["a@b.example"],
        update_source="Account", opt_out_reason="no\x07")), "opt_out_reason",
     "must not contain control characters other than tab and line breaks (U+0007)"),
    (lambda: ops.build_operate("abc", AccountOperation(method="GET", url="/emails",
        headers={"X-Trace": "1\r\nX-Injected: yes"})), "headers.X-Trace", "must not contain control characters (U+000D)"),
    (lambda: ops.build_operate("abc", AccountOperation(method="GET", url="/emails", query_params={"a\nb": "1"})),
     "query_params", "names must not contain control characters (U+000A)"),
    (lambda: ops.build_operate("abc", AccountOperation(method="GET", url="/emails\x00")), "url",
     "must not contain control characters (U+0000)"),
    (lambda: ops.build_subscribe_webhook(1, "https://hooks.example/\x1b"), "hook_uri",
     "must not contain control characters (U+001B)"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "field", "rule"), OTHER_RULES, ids=[f for _, f, _ in OTHER_RULES])
def test_the_other_bodies_refuse_control_characters_and_int32_overflow(
    build: Callable[[], object], field: str, rule: str
) -> None:
    """Plan changes, cancellations, SSO users, unsubscribes, account operations and webhook URIs: the same
    character rules, and the spec's int32 for its integers."""
    with pytest.raises(ValidationError) as info:
        build()
    assert (field, rule) in [(e.field, e.rule) for e in info.value.errors]


def test_free_text_keeps_its_line_breaks() -> None:
    """An opt-out reason and an operation's JSON payload may hold tab and line breaks."""
    ops.build_unsubscribe_contacts("abc", UnsubscribeRequest(email_addresses=["a@b.example"],
                                   update_source="Account", opt_out_reason="moved\r\nto\tanother tool"))  # fmt: skip
    ops.build_operate("abc", AccountOperation(method="POST", url="/emails", payload='{\n\t"name": "x"\n}'))


def _sandbox_client(sb: SandboxHandle) -> PartnerClient:
    cfg = sb.sandbox.config
    return PartnerClient(api_key=cfg.api_key, client_id=cfg.client_id, client_secret=cfg.client_secret,
                         base_url=sb.base_url, token_url=sb.token_url, rate_limit=None)  # fmt: skip


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0, seed=3)) as handle:
        yield handle


BAD_ROWS = [
    ({"organization_name": "Org\x00Two"}, "organization_name: must not contain control characters (U+0000)"),
    ({"first_name": "Jo\x1b[31mhn"}, "first_name: must not contain control characters (U+001B)"),
    ({"login_name": "client\x7f00003"}, "login_name: must not contain control characters (U+007F)"),
    ({"website": "https://x.example/\x9b"}, "website: must not contain control characters (U+009B)"),
    ({"password": "pass\x00word1"}, "password: must not contain control characters"),
    ({"organization_name": "O" * 51}, "organization_name: must be 1 to 50 characters"),
    ({"contact_phone": "5" * 26}, "contact_phone: must be 5 to 25 characters"),
    ({"first_name": "Line\nbreak", "contact_phone": "123"},
     "first_name: must not contain control characters (U+000A)"),
]  # fmt: skip


def _write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    if path.suffix == ".csv":
        columns = sorted({k for r in rows for k in r})
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
async def test_bad_rows_of_a_file_are_invalid_with_field_and_rule_and_the_rest_are_created(
    sandbox: SandboxHandle, tmp_path: Path, suffix: str
) -> None:
    """Through client.bulk.create_accounts against the sandbox: each bad row is invalid naming its field
    and rule (every rule it breaks, at once), nothing is sent for it, the good rows are created."""
    rows = [row(0)]
    for i, (changes, _) in enumerate(BAD_ROWS, 1):
        rows += [row(2 * i - 1, **changes), row(2 * i)]
    source = _write_rows(tmp_path / f"rows{suffix}", rows)
    async with _sandbox_client(sandbox) as c:
        with Journal(tmp_path / "j.sqlite", job="provision") as journal:
            outcomes = [o async for o in c.bulk.create_accounts(read_rows(source), journal=journal)]
            journaled = {e.key for e in journal.entries()}
    by_index = {o.index: o for o in outcomes}
    for i, (_, rule) in enumerate(BAD_ROWS, 1):
        bad = by_index[2 * i]  # 1-based: row 0 is index 1
        assert bad.state is OutcomeState.INVALID, bad
        assert bad.error is not None and rule in bad.error
        assert "pass\x00word1" not in bad.error
    assert "contact_phone: must be 5 to 25 characters" in str(by_index[2 * len(BAD_ROWS)].error)
    good = [o for o in outcomes if o.state is not OutcomeState.INVALID]
    assert len(good) == len(BAD_ROWS) + 1 and all(o.state is OutcomeState.CREATED for o in good)
    assert sandbox.sandbox.stats()["creates_attempted"] == len(good) == len(sandbox.sandbox.accounts())
    assert journaled == {o.key for o in good}


async def test_bad_plan_and_cancel_rows_are_invalid_and_never_journaled(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """Plan rows with a control character or an int32 overflow, and a cancel row whose date has no UTC
    time, are invalid before anything is sent (no journal entry); the good rows go on."""
    ids = [str(sandbox.sandbox.seed_account(f"seeded_{i:03d}")["encoded_account_id"]) for i in range(4)]
    plans = [{"encoded_account_id": ids[0], "plan_type": "GOLD"},
             {"encoded_account_id": ids[1], "plan_type": "GO\x1bLD"},
             {"encoded_account_id": ids[2], "plan_type": "GOLD", "plan_group_id": "99999999999"},
             {"encoded_account_id": ids[3], "plan_type": "TRIAL", "billing_day_of_month": "40"}]  # fmt: skip
    cancels = [{"encoded_account_id": ids[0], "reason_id": "1"},
               {"encoded_account_id": ids[1], "effective_date": LATE.isoformat()}]  # fmt: skip
    async with _sandbox_client(sandbox) as c:
        with Journal(tmp_path / "p.sqlite", job="plans") as journal:
            plan_outcomes = [o async for o in c.bulk.change_plans(plans, journal=journal)]
            plan_keys = {e.key for e in journal.entries()}
        with Journal(tmp_path / "c.sqlite", job="cancel") as journal:
            cancel_outcomes = [o async for o in c.bulk.cancel_accounts(cancels, journal=journal)]
            cancel_keys = {e.key for e in journal.entries()}
    plan_errors = {o.key: (o.state, o.error or "") for o in plan_outcomes}
    assert plan_errors[ids[0]][0] is OutcomeState.UPDATED
    assert "plan_type: must not contain control characters (U+001B)" in plan_errors[ids[1]][1]
    assert "plan_group_id: must be -2147483648 to 2147483647 (int32)" in plan_errors[ids[2]][1]
    both = plan_errors[ids[3]][1]  # every rule at once
    assert (
        "plan_type: an account can't be moved to TRIAL" in both
        and "billing_day_of_month: must be 1 to 31" in both
    )
    assert plan_keys == {ids[0]}
    states = {o.key: (o.state, o.error or "") for o in cancel_outcomes}
    assert states[ids[0]][0] is OutcomeState.CANCELED
    assert (
        states[ids[1]][0] is OutcomeState.INVALID
        and "effective_date: must be a time that exists in UTC" in states[ids[1]][1]
    )
    assert cancel_keys == {ids[0]}


# -- the terminal gets no escape sequence ---------------------------------------------------------------


def test_printable_escapes_what_a_terminal_obeys_and_keeps_letters() -> None:
    """C0 (tab and newline too), DEL, C1, lone surrogates, line separators and bidi overrides are escaped;
    letters of any script are kept; json_line stays JSON that reads back to the same text."""
    assert printable("a\x1b[2Jb\tc\nd\x7fe\x9bf") == "a\\x1b[2Jb\\x09c\\x0ad\\x7fe\\x9bf"
    assert printable("x\u2028y\u202ez\ud800") == "x\\u2028y\\u202ez\\ud800"
    assert printable("Café Zoë 日本 🍎 \\x1b") == "Café Zoë 日本 🍎 \\x1b"
    assert printable(None) == "None"
    value = {"name": "Org\x1b]0;owned\x07 \x9b2J \u2028é\ud800"}
    line = json_line(value)
    assert printable(line) == line and "é" in line
    assert json.loads(line) == value


def test_progress_and_summary_lines_are_printable() -> None:
    """The progress line, the summary and the problem lines escape whatever their parts hold."""
    assert "\x1b" not in format_progress("jo\x1bb", 1, 2, 1.0)
    assert "\x1b" not in format_line("jo\x1bb", 1, 2, 1.0)
    tally = Tally()
    tally.add(Outcome(index=1, key="evil\x1b]0;t\x07", state=OutcomeState.FAILED, error="boom\x1b[2J\nfake"))
    text = format_summary("provision", tally, retries=0, elapsed=1.0) + format_problems(tally, None)
    assert "\x1b" not in text and "\x07" not in text
    assert "row 1 (evil\\x1b]0;t\\x07): failed: boom\\x1b[2J\\x0afake" in text
    assert format_table(("A",), [("x\x1by",)]) == ["A", "x\\x1by"]


CLI_FLAGS = ["--rate-limit", "0", "-q"]


def cli_flags(handle: SandboxHandle) -> list[str]:
    cfg = handle.sandbox.config
    return ["--base-url", handle.base_url, "--token-url", handle.token_url, "--client-id", cfg.client_id,
            "--client-secret", cfg.client_secret, "--api-key", cfg.api_key]  # fmt: skip


async def test_cli_output_escapes_control_characters_from_rows_and_from_the_server(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A login name with ESC in a file, and an organization name or callback with ESC from the server,
    reach the terminal as \\x1b; --json lines are JSON that reads back to the server's text."""
    source = _write_rows(tmp_path / "rows.csv", [row(1), row(2, login_name="evil\x1b]0;owned\x07")])
    out = tmp_path / "out.jsonl"
    assert await cli.run(["provision", str(source), "--out", str(out), *CLI_FLAGS, *cli_flags(sandbox)]) == 1
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err and "\x07" not in captured.err
    assert "row 2 (evil\\x1b]0;owned\\x07): invalid: login_name:" in captured.err
    assert {json.loads(line)["key"] for line in out.read_text().splitlines()} == {
        "client_00001", "evil\x1b]0;owned\x07"}  # fmt: skip
    hostile = "Org \x1b[2J\x9b31m\u202e"
    sandbox.sandbox.seed_account("seeded_evil", organization_name=hostile)
    sandbox.sandbox.webhooks[1] = "https://hooks.example/\x1b]8;;x\x07"
    assert await cli.run(["accounts", "list", *cli_flags(sandbox)]) == 0
    assert await cli.run(["webhooks", "list", *cli_flags(sandbox)]) == 0
    table = capsys.readouterr().out
    assert "Org \\x1b[2J\\x9b31m\\u202e" in table and "hooks.example/\\x1b]8;;x\\x07" in table
    assert not set(table) & {"\x1b", "\x9b", "\u202e", "\x07"}
    assert await cli.run(["accounts", "list", "--json", *cli_flags(sandbox)]) == 0
    assert await cli.run(["webhooks", "list", "--json", *cli_flags(sandbox)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not set("".join(lines)) & {"\x1b", "\x9b", "\u202e", "\x07"}
    records = [json.loads(line) for line in lines]
    assert hostile in {r.get("organization_name") for r in records}
    assert "https://hooks.example/\x1b]8;;x\x07" in {r.get("hook_uri") for r in records}


async def test_a_lone_surrogate_in_a_row_key_is_reported_not_a_crash(
    sandbox: SandboxHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSONL login name holding "\\ud800": the row is invalid, the results file holds it as a JSON
    escape (the write does not fail) and the terminal line shows the escape."""
    source = tmp_path / "rows.jsonl"
    source.write_text(
        json.dumps(row(1)) + "\n" + json.dumps(row(2)).replace("client_00002", "client_\\ud800") + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert await cli.run(["provision", str(source), "--out", str(out), *CLI_FLAGS, *cli_flags(sandbox)]) == 1
    records = {r["index"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert records[2]["key"] == "client_\ud800" and records[2]["state"] == "invalid"
    assert "lone surrogate" in records[2]["error"] and records[1]["state"] == "created"
    assert "row 2 (client_\\ud800): invalid: login_name:" in capsys.readouterr().err
