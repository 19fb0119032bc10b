"""Issue 12's sandbox acceptance: tokens that survive the token endpoint (blips, outages, many workers).

The first three run ``PartnerClient`` and the sandbox on one fake clock, driven in small steps with a
moment of real time between them for the loopback I/O; the last runs eight ``ctct-partner provision``
processes against one sandbox on the real clock. Each test counts what failed by kind, so a failure reads
as a figure like the issue's ("AuthenticationError: 30" against "ok: 30", "5 of 8 workers failed").
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest

from ctct_partner_async import NewAccount
from ctct_partner_async._auth import TokenSettings
from ctct_partner_async._bulk import Outcome
from ctct_partner_async._client import PartnerClient
from ctct_partner_async._clock import FakeClock
from ctct_partner_async.sandbox import Faults, SandboxConfig, SandboxHandle, run_sandbox

from .test_token_lifecycle import gaps, token_times

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "pw-token-outages"
STEP = 1 / 32  # fake seconds per step of the driver (a binary fraction: sums of steps are exact)
PAUSE = 0.002  # real seconds the driver lets the loop run between steps
IDLE_PAUSES = 25  # pauses with nothing asleep on the fake clock before the driver moves it anyway
FAKE_LIMIT = 110.0  # fake seconds a driven piece of work may take (under the retry policy's 120 s deadline)
REAL_LIMIT = 20.0  # real seconds: a hang guard, never reached when all is well


NO_JITTER = TokenSettings(first_request_jitter=0.0)


def sandbox_config(fake: FakeClock, **values: Any) -> SandboxConfig:
    """A sandbox on ``fake``'s wall clock with no API rate limit or quota (only the token endpoint's)."""
    return SandboxConfig(rate_limit=0, daily_quota=0, clock=fake.time, **values)


@asynccontextmanager
async def sandbox_client(
    config: SandboxConfig, fake: FakeClock, settings: TokenSettings, rate_limit: float | None = None
) -> AsyncIterator[tuple[SandboxHandle, PartnerClient]]:
    """A sandbox and a client of it (client-side ``rate_limit``), both on ``fake``."""
    async with run_sandbox(config) as sb:
        client = PartnerClient(
            api_key=config.api_key, client_id=config.client_id, client_secret=config.client_secret,
            base_url=sb.base_url, token_url=sb.token_url, token_settings=settings, clock=fake,
            rate_limit=rate_limit,
        )  # fmt: skip
        async with client:
            yield sb, client


async def driven(fake: FakeClock, work: Awaitable[T], tick: Callable[[], None] | None = None) -> T:
    """Await ``work``, moving ``fake`` by :data:`STEP` each time it is unfinished after a moment of real
    time (:data:`PAUSE`) and someone sleeps on the clock; while only loopback I/O is in flight, the
    clock stands still (for up to :data:`IDLE_PAUSES`). ``tick`` runs after each step (to script faults
    by the clock)."""
    task = asyncio.ensure_future(work)
    start = fake.monotonic()
    idle = 0
    try:
        async with asyncio.timeout(REAL_LIMIT):
            while not (await asyncio.wait({task}, timeout=PAUSE))[0]:
                idle += 1
                if fake.sleepers == 0 and idle < IDLE_PAUSES:
                    continue
                idle = 0
                if fake.monotonic() - start > FAKE_LIMIT:
                    pytest.fail(f"still running after {FAKE_LIMIT} s of fake time")
                fake.advance(STEP)
                if tick is not None:
                    tick()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return task.result()


@attrs.define
class Outage:
    """The token endpoint down (``token_outage``) while the sandbox clock is in ``[start, end)``."""

    sb: SandboxHandle
    start: float
    end: float

    def __call__(self) -> None:
        self.sb.sandbox.faults.token_outage = self.start <= self.sb.sandbox.clock() < self.end


def tally(results: Sequence[object]) -> Counter[str]:
    """``ok`` per call that returned, else the name of what it raised."""
    return Counter(type(r).__name__ if isinstance(r, BaseException) else "ok" for r in results)


def new_account(login: str) -> NewAccount:
    return NewAccount(contact_email=f"{login}@example.com", login_name=login, password=PASSWORD,
                      country_code="US", state_code="MA", organization_name=f"Org {login}")  # fmt: skip


def row(login: str) -> dict[str, str]:
    return {"login_name": login, "contact_email": f"{login}@example.com", "password": PASSWORD,
            "country_code": "US", "state_code": "MA", "organization_name": f"Org {login}"}  # fmt: skip


def logins_created(sb: SandboxHandle) -> Counter[str]:
    """How many accounts the sandbox holds per login name."""
    return Counter(str(a["login_name"]) for a in sb.sandbox.accounts())


@pytest.mark.parametrize("blips", [1, 2])
async def test_token_503_blip_at_start_up_fails_no_call(blips: int) -> None:
    """The first ``blips`` token requests answer 503 while 30 creates start together: all 30 succeed, after
    exactly ``blips + 1`` token requests, at least ``min_interval`` (1 s) apart: a retry, not a storm."""
    fake = FakeClock()
    config = sandbox_config(fake, faults=Faults(token_fail_next=blips, token_fail_status=503))
    logins = [f"blip{blips}_{i:03d}" for i in range(30)]
    async with sandbox_client(config, fake, NO_JITTER) as (sb, client):
        creates = [client.accounts.create(new_account(login)) for login in logins]
        results = await driven(fake, asyncio.gather(*creates, return_exceptions=True))
        stats, times = sb.sandbox.stats(), token_times(sb)
        created = logins_created(sb)
    assert tally(results) == {"ok": 30}
    assert created == dict.fromkeys(logins, 1)
    assert stats["token_responses_by_status"] == {"503": blips, "200": 1}
    assert stats["token_requests"] == blips + 1
    assert all(gap >= 1.0 for gap in gaps(times)), gaps(times)


async def test_bulk_job_through_an_outage_longer_than_a_token_life_fails_no_row() -> None:
    """60 rows at 5/s, tokens living 6 s, the token endpoint down for 7 s from 2 s into the job (so the held
    token expires in the outage): the job pauses, then goes on; every row is created, each exactly once."""
    fake = FakeClock()
    logins = [f"outage_{i:03d}" for i in range(60)]
    config = sandbox_config(fake, token_ttl=6)
    async with sandbox_client(config, fake, NO_JITTER, rate_limit=5) as (sb, client):
        start = sb.sandbox.clock()
        outage = Outage(sb, start + 2.0, start + 9.0)

        async def job() -> list[Outcome]:
            return [o async for o in client.bulk.create_accounts([row(x) for x in logins])]

        outcomes = await driven(fake, job(), outage)
        stats = sb.sandbox.stats()
        created = logins_created(sb)
    errors = [o.error for o in outcomes if not o.ok]
    assert Counter(str(o.state) for o in outcomes) == {"created": 60}, errors[:1]
    assert created == dict.fromkeys(logins, 1)
    assert stats["creates_attempted"] == 60  # each row POSTed once
    token_statuses = stats["token_responses_by_status"]
    assert isinstance(token_statuses, dict) and token_statuses.get("503", 0) >= 1  # the outage was met


async def test_outage_in_the_mandatory_window_fails_no_call() -> None:
    """Tokens living 8 s, renewed in their last 2 s, sent until their last 1 s (the mandatory window), the
    endpoint down from just before the renewal for 0.7 s, 25 calls every 1/16 s from 3 s before expiry to
    1 s after: no call fails, and none carried an expired token (the sandbox answered only 200s, no 401).
    The held token stays in use while the one failed renewal (one 503) is retried ``min_interval``
    later."""
    fake = FakeClock()
    settings = TokenSettings(advisory_window=2, mandatory_window=1, first_request_jitter=0.0)
    async with sandbox_client(sandbox_config(fake, token_ttl=8), fake, settings) as (sb, client):

        def wave() -> Awaitable[list[object]]:
            return asyncio.gather(*(client.webhooks.get(1) for _ in range(25)), return_exceptions=True)

        results = await driven(fake, wave())
        expiry = token_times(sb)[0] + 8
        outage = Outage(sb, expiry - 2.05, expiry - 1.35)
        waves = 4 * 16
        for k in range(waves + 1):
            target = expiry - 3.0 + k / 16
            if target > sb.sandbox.clock():
                fake.advance(target - sb.sandbox.clock())
            outage()
            results += await driven(fake, wave(), outage)
        stats, times = sb.sandbox.stats(), token_times(sb)
    assert len(results) == 25 * (waves + 2)
    assert tally(results) == {"ok": len(results)}
    assert stats["responses_by_status"] == {"200": len(results)}  # no 401: no expired token was sent
    assert stats["token_responses_by_status"] == {"200": 2, "503": 1}
    assert all(gap >= 1.0 for gap in gaps(times)), gaps(times)


WORKERS = 8
ROWS_PER_WORKER = 5
WORKER_LIMIT = 90.0  # real seconds for all the workers together: a hang guard (the test takes about 15 s)


def write_rows(path: Path, logins: list[str]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, list(row(logins[0])), lineterminator="\n")
    writer.writeheader()
    writer.writerows(row(login) for login in logins)
    path.write_text(out.getvalue())


async def run_workers(sb: SandboxHandle, files: list[Path], logs: Path) -> list[tuple[int | None, str]]:
    """``ctct-partner provision FILE`` per file, all started at once with one client id (from the
    environment): each one's exit status (-9: killed, having outlived :data:`WORKER_LIMIT`) and stderr."""
    config = sb.sandbox.config
    env = {**os.environ, "CTCT_BASE_URL": sb.base_url, "CTCT_TOKEN_URL": sb.token_url,
           "CTCT_API_KEY": config.api_key, "CTCT_CLIENT_ID": config.client_id,
           "CTCT_CLIENT_SECRET": config.client_secret}  # fmt: skip
    procs = []
    for n, path in enumerate(files):
        command = [sys.executable, "-m", "ctct_partner_async.cli", "provision", str(path), "-q"]
        with (logs / f"worker{n}.stderr").open("wb") as stderr:
            procs.append(await asyncio.create_subprocess_exec(
                *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr
            ))  # fmt: skip
    try:
        with contextlib.suppress(TimeoutError):  # a worker still running then is killed, and fails the test
            async with asyncio.timeout(WORKER_LIMIT):
                await asyncio.gather(*(p.wait() for p in procs))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    stderrs = [(logs / f"worker{n}.stderr").read_text(errors="replace") for n in range(len(procs))]
    return [(p.returncode, err) for p, err in zip(procs, stderrs, strict=True)]


async def test_eight_workers_on_one_client_id_all_get_a_token(tmp_path: Path) -> None:
    """Eight ``ctct-partner provision`` processes on one client id, started together against one sandbox
    whose token endpoint admits 1 request/s, 5 rows each: every worker exits 0 and every row is created
    exactly once, with one token issued per worker. (Real clock and real processes: the jitter and
    backoff under test are each process's own.)"""
    files, logins = [], []
    for n in range(WORKERS):
        mine = [f"worker{n}_row{i}" for i in range(ROWS_PER_WORKER)]
        files.append(tmp_path / f"worker{n}.csv")
        write_rows(files[-1], mine)
        logins += mine
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=1)) as sb:
        ended = await run_workers(sb, files, tmp_path)
        stats = sb.sandbox.stats()
        created = logins_created(sb)
    codes = [code for code, _ in ended]
    failed = [err for code, err in ended if code != 0]
    summary = f"{len(failed)} of {WORKERS} workers failed, {len(created)} of {len(logins)} rows created"
    assert not [err for err in failed if "Traceback" in err], f"a worker crashed; {summary}"
    assert codes == [0] * WORKERS, f"{summary}; the first one said: {failed[0][:400] if failed else ''}"
    assert created == dict.fromkeys(logins, 1)
    assert stats["tokens_issued"] == WORKERS
