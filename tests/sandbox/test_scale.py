"""The sandbox at scale: an existing account base seeded at start, and the list's three orders."""

from __future__ import annotations

from typing import Any

import pytest

from ctct_partner_async.sandbox import SandboxConfig
from ctct_partner_async.sandbox.cli import build_parser, config_from_args
from ctct_partner_async.sandbox.state import Sandbox
from tests.sandbox.support import Api


async def walk(api: Api, **params: str) -> list[dict[str, Any]]:
    """Every entry of the list, page by page through the next links."""
    entries: list[dict[str, Any]] = []
    path: str | None = "/partner/accounts"
    query: dict[str, str] | None = {"limit": "50", **params}
    while path is not None:
        page = await api.call("GET", path, params=query)
        assert page.status == 200, page.body
        entries += page.body["site_owner_list"]
        href = page.body.get("_links", {}).get("next", {}).get("href")
        path, query = (href.removeprefix("/v3"), None) if href else (None, None)
    return entries


async def test_existing_accounts_are_listed_once_each(start_sandbox: Any) -> None:
    """``existing_accounts=N`` starts with N accounts (``seeded_000001``, organization ``Seeded 1``), each
    listed exactly once, in creation order; a new account comes last."""
    api = await start_sandbox(existing_accounts=120)
    new_id = await api.create_ok("new_after_seed")
    entries = await walk(api)
    assert len(entries) == 121 == len({e["encoded_account_id"] for e in entries})
    assert entries[0]["site_owner_name"] == "seeded_000001" and entries[0]["organization_name"] == "Seeded 1"
    assert entries[-1]["encoded_account_id"] == new_id


async def test_reverse_order_lists_new_accounts_first(start_sandbox: Any) -> None:
    api = await start_sandbox(existing_accounts=60, list_order="reverse")
    new_id = await api.create_ok("newest_account")
    entries = await walk(api)
    assert entries[0]["encoded_account_id"] == new_id
    assert [e["site_owner_name"] for e in entries[1:3]] == ["seeded_000060", "seeded_000059"]
    assert entries[-1]["site_owner_name"] == "seeded_000001" and len(entries) == 61


async def test_shuffled_order_is_stable_per_seed_and_complete(start_sandbox: Any) -> None:
    """The same seed gives the same order; another seed another; every account is listed once, and a new
    one lands somewhere in the list (not necessarily at the end); the managed filter keeps the order."""
    one: Api = await start_sandbox(existing_accounts=200, list_order="shuffled", seed=1)
    same: Api = await start_sandbox(existing_accounts=200, list_order="shuffled", seed=1)
    other: Api = await start_sandbox(existing_accounts=200, list_order="shuffled", seed=2)
    orders = [[e["site_owner_name"] for e in await walk(api)] for api in (one, same, other)]
    assert orders[0] == orders[1] != orders[2]
    assert sorted(orders[0]) == [f"seeded_{n:06d}" for n in range(1, 201)]
    for n in range(20):
        await one.create_ok(f"new_shuffled_{n}")
    after = [e["site_owner_name"] for e in await walk(one)]
    assert len(after) == 220 and set(after) >= set(orders[0])
    assert [n for n in after if n.startswith("seeded")] == orders[0]  # the old ones keep their order
    assert after[-20:] != [f"new_shuffled_{n}" for n in range(20)]
    managed = [e["site_owner_name"] for e in await walk(one, account_type="managed")]
    assert managed == after


def test_100_000_existing_accounts_and_a_page_at_the_end_stay_cheap() -> None:
    """100,000 accounts are seeded directly (no request path); the last page is a slice, not a scan."""
    sandbox = Sandbox(SandboxConfig(existing_accounts=100_000, rate_limit=0, daily_quota=0))
    page, total = sandbox.store.page(None, 99_990, 50)
    assert total == 100_000 and [a.login_name for a in page][-1] == "seeded_100000" and len(page) == 10


def test_the_command_line_sets_the_account_base_and_the_order() -> None:
    args = build_parser().parse_args(["--existing-accounts", "500", "--list-order", "reverse"])
    config = config_from_args(args)
    assert (config.existing_accounts, config.list_order) == (500, "reverse")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--list-order", "random"])
    with pytest.raises(ValueError, match="list_order"):
        SandboxConfig(list_order="random")
    with pytest.raises(ValueError, match="existing_accounts"):
        SandboxConfig(existing_accounts=-1)
