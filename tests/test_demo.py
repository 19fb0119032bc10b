"""``ctct-partner demo``: a small run end to end, and the generated data."""

from __future__ import annotations

import re

import pytest

from ctct_partner_async import cli
from ctct_partner_async._rows import cancellation_from_row, new_account_from_row, plan_change_from_row
from ctct_partner_async.cli.demo import cancel_rows, demo_config, generate_accounts, plan_rows


async def test_demo_runs_every_phase_and_reports_what_happened(capsys: pytest.CaptureFixture[str]) -> None:
    """A 60-account demo exits 0: every phase succeeds, the sandbox holds exactly 60 accounts, and the
    report shows counts per outcome, retries, token renewals, requests per second and the wall time."""
    assert await cli.run(["demo", "--accounts", "60", "--seed", "3", "-q"]) == 0
    out = capsys.readouterr().out
    assert "provision: 60 rows, all succeeded" in out
    assert "plans: 18 rows, all succeeded" in out
    assert "cancel: 3 rows, all succeeded" in out
    assert re.search(r"accounts list: 60 accounts \(.*3 Canceled", out)
    assert "the sandbox holds 60 accounts, 60 distinct login names: none lost, none twice" in out
    for label in ("API requests", "retries", "token renewals", "faults injected", "wall time"):
        assert label in out
    assert re.search(r"API requests\s+\d+ \(\d+\.\d/s\)", out)


def test_generated_accounts_are_valid_unique_and_deterministic() -> None:
    """Generated rows pass every create rule, have distinct login names, and repeat for the same seed."""
    rows = list(generate_accounts(500, seed=11))
    accounts = [new_account_from_row(r) for r in rows]
    assert len({a.login_name.lower() for a in accounts}) == 500
    assert rows == list(generate_accounts(500, seed=11))
    assert rows != list(generate_accounts(500, seed=12))


def test_plan_and_cancel_rows_are_valid_shares_of_the_accounts() -> None:
    """About 30% of the accounts get a paid plan and 5% a cancellation, each a valid row."""
    ids = [f"acct{i:04d}" for i in range(200)]
    plans, cancels = plan_rows(ids, seed=1), cancel_rows(ids, seed=1)
    assert len(plans) == 60
    assert len(cancels) == 10
    assert all(plan_change_from_row(r)[1].plan_type in {"BRONZE", "SILVER", "GOLD"} for r in plans)
    assert all(cancellation_from_row(r)[1].reason_id is not None for r in cancels)
    assert cancel_rows([], seed=1) == []


def test_demo_sandbox_has_faults_and_short_tokens() -> None:
    """The demo's sandbox defers some creates, throttles some requests and issues tokens for a few seconds."""
    config = demo_config(seed=1)
    assert config.token_ttl <= 10
    assert config.faults.create_503 > 0
    assert config.faults.throttle_429 > 0
    assert config.daily_quota == 0
