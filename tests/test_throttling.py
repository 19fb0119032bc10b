"""Throttling never fails rows: a client with no limit of its own, against a sandbox admitting 4 requests a
second, learns the limit from the 429s and paces its retries, through ``PartnerClient`` and through
``ctct-partner provision --rate-limit 0``. Sandbox and client share one fake clock that ticks with the
event loop (compressed real time: a run of ten sandbox seconds takes a fraction of a real one)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ctct_partner_async import NewAccount, PartnerClient, cli
from ctct_partner_async._auth import TokenSettings
from ctct_partner_async._clock import FakeClock
from ctct_partner_async._hooks import ResponseDetails
from ctct_partner_async._models import CreateStatus
from ctct_partner_async.cli import jobs, options
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox

from .test_resilience import ticking

RATE = 4  # the sandbox's per-key limit, a second (burst of 4)
ROWS = 40
PASSWORD = "s3cret-pass"


def account(i: int) -> NewAccount:
    return NewAccount(contact_email=f"owner{i}@example.com", login_name=f"throttled_{i:05d}", password=PASSWORD,
                      country_code="US", state_code="MA", organization_name=f"Org {i}")  # fmt: skip


def limiting_sandbox(clock: FakeClock) -> contextlib.AbstractAsyncContextManager[SandboxHandle]:
    return run_sandbox(SandboxConfig(rate_limit=RATE, daily_quota=0, token_rate_limit=0, clock=clock.time))


def client_for(
    sb: SandboxHandle, clock: FakeClock, rate_limit: float | None, **settings: Any
) -> PartnerClient:
    cfg = sb.sandbox.config
    return PartnerClient(api_key=cfg.api_key, client_id=cfg.client_id, client_secret=cfg.client_secret,
                         base_url=sb.base_url, token_url=sb.token_url, clock=clock, rate_limit=rate_limit,
                         token_settings=TokenSettings(first_request_jitter=0), **settings)  # fmt: skip


def created_once(sb: SandboxHandle) -> bool:
    logins = Counter(str(a["login_name"]) for a in sb.sandbox.accounts())
    return set(logins.values()) == {1}


async def test_forty_concurrent_creates_with_no_client_limit_fail_none() -> None:
    """40 creates at once against 4/s, from a client with rate_limit=None: every one is created, exactly
    once; the client learned a limit near the server's and the job took about what the server allows."""
    clock = FakeClock()
    statuses: Counter[int | None] = Counter()

    def count(details: ResponseDetails) -> None:
        statuses[details.status] += 1

    async with limiting_sandbox(clock) as sb, client_for(sb, clock, None, on_response=count) as client:
        async with ticking(clock):
            started = clock.monotonic()
            results = await asyncio.gather(*(client.accounts.create(account(i)) for i in range(ROWS)),
                                           return_exceptions=True)  # fmt: skip
            elapsed = clock.monotonic() - started
        limiter = client.limiter
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed == []
    assert [r.status for r in results if not isinstance(r, BaseException)] == [CreateStatus.CREATED] * ROWS
    assert len(sb.sandbox.accounts()) == ROWS and created_once(sb)
    assert statuses[201] == ROWS
    assert statuses[429] > 0  # the server did throttle: the client had to learn
    assert limiter.learned and limiter.rate is not None and limiter.rate < 3 * RATE
    assert (ROWS - RATE) / RATE - 1 <= elapsed <= 2 * ROWS / RATE  # paced at about the server's rate


async def test_provision_with_rate_limit_0_fails_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``provision --rate-limit 0`` on 40 rows against a 4/s sandbox: exit 0, 40 created, none failed."""
    clock = FakeClock()
    real_make_client = options.make_client

    def make_client(args: Any, environ: Mapping[str, str] | None = None, **extra: Any) -> PartnerClient:
        return real_make_client(args, environ, clock=clock, **extra)  # the command on the sandbox's clock

    monkeypatch.setattr(jobs, "make_client", make_client)
    source, out = tmp_path / "rows.csv", tmp_path / "out.jsonl"
    with source.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["login_name", "contact_email", "password", "country_code", "state_code"])
        writer.writeheader()
        for i in range(ROWS):
            writer.writerow({"login_name": f"cli_throttled_{i:03d}", "contact_email": f"o{i}@example.com",
                             "password": PASSWORD, "country_code": "US", "state_code": "MA"})  # fmt: skip
    async with limiting_sandbox(clock) as sb:
        cfg = sb.sandbox.config
        flags = ["--base-url", sb.base_url, "--token-url", sb.token_url, "--client-id", cfg.client_id,
                 "--client-secret", cfg.client_secret, "--api-key", cfg.api_key, "--token-jitter", "0"]  # fmt: skip
        async with ticking(clock):
            code = await cli.run(
                ["provision", str(source), "--out", str(out), "--rate-limit", "0", "-q", *flags]
            )
        stats = sb.sandbox.stats()
    captured = capsys.readouterr()
    states = Counter(json.loads(line)["state"] for line in out.read_text().splitlines())
    assert code == 0, captured.err
    assert states == {"created": ROWS}
    assert len(sb.sandbox.accounts()) == ROWS and created_once(sb)
    assert stats["creates_committed"] == ROWS
    by_status = stats["responses_by_status"]
    assert isinstance(by_status, dict) and by_status.get("201") == ROWS and by_status.get("429", 0) > 0


async def test_a_client_at_the_servers_rate_meets_no_throttle() -> None:
    """The same 40 creates from a client limited to the sandbox's 4/s: no 429 at all (the baseline the
    learned limit approaches)."""
    clock = FakeClock()
    statuses: Counter[int | None] = Counter()

    def count(details: ResponseDetails) -> None:
        statuses[details.status] += 1

    async with limiting_sandbox(clock) as sb, client_for(sb, clock, RATE, on_response=count) as client:
        async with ticking(clock):
            await asyncio.gather(*(client.accounts.create(account(i)) for i in range(ROWS)))
    assert statuses == {201: ROWS}
