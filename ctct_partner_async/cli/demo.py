"""``ctct-partner demo``: a bulk run against an in-process sandbox with faults switched on.

It generates accounts (deterministic for a seed), provisions them, moves about 30% to paid plans,
cancels about 5%, lists the accounts and prints what happened. No credentials, no network: the sandbox
listens on an ephemeral loopback port inside this process.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs

from .._auth import INITIAL, TokenRefresh, TokenSettings
from .._bulk import Outcome
from .._client import PartnerClient
from .._models import CancelReason, PlanType
from ..sandbox import Faults, SandboxConfig, SandboxHandle, run_sandbox
from .jobs import run_rows
from .logs import log_response
from .progress import Progress
from .report import Tally, format_summary, format_table

__all__ = ["demo_command", "demo_config", "generate_accounts", "run_demo"]

RATE = 200.0
TOKEN_TTL = 5.0
CONCURRENCY = 32
PAID_SHARE = 0.30
CANCEL_SHARE = 0.05
DEFERRED_SHARE = 0.05  # creates answered 503: stored by the API, done DEFERRED_DELAY seconds later
DEFERRED_DELAY = 1.0
THROTTLED_SHARE = 0.005  # requests answered 429 throttled
FAULTED_OPERATIONS = ("create_account", "update_plan")
FIRST = "ada alan barbara claude donald edsger frances grace hedy ivan john katherine linus margaret".split()
LAST = "lovelace turing liskov shannon knuth dijkstra allen hopper lamarr sutherland backus johnson".split()
PLACES = [
    ("US", "MA"),
    ("US", "NY"),
    ("US", "CA"),
    ("US", "TX"),
    ("US", "WA"),
    ("US", "IL"),
    ("US", "CO"),
    ("CA", "ON"),
    ("CA", "QC"),
    ("GB", ""),
]


def demo_config(seed: int) -> SandboxConfig:
    """The sandbox the demo runs against: a rate limit, short-lived tokens and some faults."""
    faults = Faults(
        create_503=DEFERRED_SHARE,
        deferred_delay=DEFERRED_DELAY,
        throttle_429=THROTTLED_SHARE,
        fault_operations=FAULTED_OPERATIONS,
    )
    return SandboxConfig(rate_limit=RATE, daily_quota=0, token_ttl=TOKEN_TTL, seed=seed, faults=faults)


def generate_accounts(count: int, seed: int) -> Iterator[dict[str, str]]:
    """``count`` account rows, as a CSV would give them; the same seed gives the same rows."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        country, state = rng.choice(PLACES)
        yield {
            "login_name": f"{first}.{last}.{i:05d}",
            "contact_email": f"{first}.{last}.{i}@example.com",
            "password": f"Demo-{rng.randrange(10**8):08d}",
            "country_code": country,
            "state_code": state,
            "first_name": first.title(),
            "last_name": last.title(),
            "organization_name": f"{last.title()} & Co {i}",
        }


def plan_rows(account_ids: list[str], seed: int) -> list[dict[str, str]]:
    """Move about 30% of the accounts to a paid plan."""
    rng = random.Random(seed + 1)  # noqa: S311
    chosen = rng.sample(account_ids, round(len(account_ids) * PAID_SHARE))
    paid = [PlanType.BRONZE, PlanType.SILVER, PlanType.GOLD]
    return [
        {
            "encoded_account_id": i,
            "plan_type": rng.choice(paid),
            "billing_day_of_month": str(rng.randint(1, 28)),
        }
        for i in chosen
    ]


def cancel_rows(account_ids: list[str], seed: int) -> list[dict[str, str]]:
    """Cancel about 5% of the accounts, now, with a documented reason."""
    rng = random.Random(seed + 2)  # noqa: S311
    chosen = rng.sample(account_ids, max(1, round(len(account_ids) * CANCEL_SHARE))) if account_ids else []
    return [{"encoded_account_id": i, "reason_id": str(int(rng.choice(list(CancelReason))))} for i in chosen]


@attrs.define
class PhaseResult:
    """One bulk phase: its tally, the ids it reported, its time and retries."""

    name: str
    tally: Tally
    ids: list[str]
    elapsed: float
    retries: int


async def run_phase(
    client: PartnerClient,
    name: str,
    rows: list[dict[str, str]] | Iterator[dict[str, str]],
    total: int,
    quiet: bool,
) -> PhaseResult:
    """Run one bulk job over ``rows`` with a progress line."""
    tally, ids = Tally(), []
    progress = Progress(name, total, enabled=not quiet)

    def record(outcome: Outcome) -> None:
        tally.add(outcome)
        progress.advance()
        if outcome.ok and outcome.encoded_account_id:
            ids.append(outcome.encoded_account_id)

    retries, started = client.retries, time.monotonic()
    await run_rows(name, client.bulk, iter(rows), record, journal=None, concurrency=CONCURRENCY)
    progress.finish()
    return PhaseResult(name, tally, ids, time.monotonic() - started, client.retries - retries)


ONE_PROCESS = TokenSettings(first_request_jitter=0)
"""The demo is the only user of the sandbox's client id: its first token request needn't wait."""


def demo_client(handle: SandboxHandle, renewals: Counter[str]) -> PartnerClient:
    """A client for the sandbox that sends at the sandbox's rate and counts token renewals."""
    config = handle.sandbox.config

    def heard(detail: TokenRefresh) -> None:
        renewals[detail.reason if detail.outcome == "ok" else f"{detail.reason} (failed)"] += 1

    return PartnerClient(
        api_key=config.api_key,
        client_id=config.client_id,
        client_secret=config.client_secret,
        base_url=handle.base_url,
        token_url=handle.token_url,
        rate_limit=RATE,
        max_concurrency=CONCURRENCY,
        on_token_refresh=heard,
        on_response=log_response,
        token_settings=ONE_PROCESS,
    )


def intro(count: int, seed: int) -> str:
    """What the demo is about to do."""
    sandbox = f"{RATE:g} requests/s per key, tokens live {TOKEN_TTL:g} s"
    deferred = f"{DEFERRED_SHARE:.1%} answer 503 (stored, done {DEFERRED_DELAY:g} s later)"
    faults = f"{deferred}, {THROTTLED_SHARE:.1%} answer 429"
    client = f"{RATE:g} requests/s, halved on a 429, recovering over 10 s; {CONCURRENCY} rows in flight"
    return (
        f"ctct-partner demo: {count} accounts against an in-process sandbox (seed {seed})\n"
        f"  sandbox: {sandbox}\n  faults on creates and plan changes: {faults}\n  client: {client}\n"
    )


def token_renewals(requests: Counter[str]) -> str:
    """The token requests after the first token, by reason (they add up), then the first token's."""
    later = sorted((k, n) for k, n in requests.items() if not k.startswith(INITIAL))
    first = {k: n for k, n in requests.items() if k.startswith(INITIAL)}
    text = str(sum(n for _, n in later))
    if later:
        text += f" ({', '.join(f'{reason} {n}' for reason, n in later)})"
    if first:
        failed = sum(n for k, n in first.items() if k != INITIAL)
        detail = f" ({sum(first.values())} requests, {failed} failed)" if failed else ""
        text += f", after the first token{detail}"
    return text


def report(
    phases: list[PhaseResult],
    listing: Counter[str],
    stats: dict[str, Any],
    client: PartnerClient,
    renewals: Counter[str],
    elapsed: float,
    check: str,
) -> str:
    """Every phase's summary, the account list by status, and the totals."""
    parts = [format_summary(p.name, p.tally, retries=p.retries, elapsed=p.elapsed) for p in phases]
    statuses = ", ".join(f"{n} {status}" for status, n in listing.most_common())
    parts.append(f"accounts list: {listing.total()} accounts ({statuses})")
    requests = int(stats["api_requests"])
    statuses_seen = ", ".join(f"{k}: {v}" for k, v in sorted(stats["responses_by_status"].items()))
    rows = [
        ("API requests", f"{requests} ({requests / elapsed:.1f}/s)"),
        ("responses", statuses_seen),
        ("faults injected", ", ".join(f"{k}: {v}" for k, v in sorted(stats["faults_injected"].items()))),
        ("retries", str(client.retries)),
        ("token renewals", token_renewals(renewals)),
        ("check", check),
        ("wall time", f"{elapsed:.1f} s"),
    ]
    parts.append("\n".join(["what happened", *("  " + line for line in format_table(None, rows))]))
    return "\n\n".join(parts)


def check_sandbox(handle: SandboxHandle, count: int) -> tuple[bool, str]:
    """Whether the sandbox holds exactly one account per generated row."""
    held = handle.sandbox.accounts()
    logins = {str(a["login_name"]).lower() for a in held}
    ok = len(held) == count == len(logins)
    verdict = "none lost, none twice" if ok else "MISMATCH"
    return ok, f"the sandbox holds {len(held)} accounts, {len(logins)} distinct login names: {verdict}"


async def run_demo(count: int, seed: int, *, quiet: bool = False) -> int:
    """Run the demo and print its report; 0 if every row succeeded and the sandbox holds them exactly."""
    print(intro(count, seed), flush=True)
    renewals: Counter[str] = Counter()
    async with run_sandbox(demo_config(seed)) as handle, demo_client(handle, renewals) as client:
        started = time.monotonic()
        provision = await run_phase(client, "provision", generate_accounts(count, seed), count, quiet)
        plans = plan_rows(sorted(provision.ids), seed)
        upgraded = await run_phase(client, "plans", plans, len(plans), quiet)
        cancels = cancel_rows(sorted(provision.ids), seed)
        canceled = await run_phase(client, "cancel", cancels, len(cancels), quiet)
        listing = Counter([a.billing_status or "?" async for a in client.accounts.list()])
        elapsed = time.monotonic() - started
        ok, check = check_sandbox(handle, count)
        phases = [provision, upgraded, canceled]
        print(report(phases, listing, handle.sandbox.stats(), client, renewals, elapsed, check))
    return 0 if ok and all(p.tally.ok for p in phases) else 1


async def demo_command(args: argparse.Namespace) -> int:
    """``demo``: see the module docstring."""
    return await run_demo(args.accounts, args.seed, quiet=args.quiet)
