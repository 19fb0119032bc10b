"""The single-call commands: ``accounts list|sync`` and ``webhooks list|subscribe|unsubscribe|test``.

``accounts sync --journal J`` reads the account list into the journal's account index (the whole list the
first time, its tail afterwards), so bulk jobs with that journal start warm; ``accounts list
--from-journal J`` prints that index without a request (and without credentials).

Server data reaches the terminal only through :func:`printable` (tables, messages) or :func:`json_line`
(``--json``), so an organization name holding an ESC sequence shows as ``\\x1b[...``, never runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

import attrs

from .._models import AccountSummary, WebhookSubscription, WebhookTopic
from ..journal import Journal, JournalError
from ._text import json_line, printable
from .options import UsageError, make_client
from .report import format_table

__all__ = ["account_record", "accounts_list", "accounts_sync", "webhook_record", "webhooks_command"]

ACCOUNT_COLUMNS = ("encoded_account_id", "billing_status", "site_owner_name", "organization_name")


def account_record(account: AccountSummary) -> dict[str, object]:
    """An account as a JSON object (dates in ISO 8601)."""
    record = attrs.asdict(account)
    if account.last_login_date is not None:
        record["last_login_date"] = account.last_login_date.isoformat()
    return record


def webhook_record(sub: WebhookSubscription) -> dict[str, object]:
    """A webhook topic as a JSON object."""
    return {**attrs.asdict(sub), "topic_id": int(sub.topic_id)}


def _topic_label(topic_id: int) -> str:
    try:
        return WebhookTopic(topic_id).name.lower().replace("_", "-")
    except ValueError:
        return str(topic_id)


def account_lines(accounts: list[AccountSummary]) -> list[str]:
    """The accounts as a table, with a count at the end."""
    rows = [[getattr(a, column) for column in ACCOUNT_COLUMNS] for a in accounts]
    headers = ("ACCOUNT ID", "STATUS", "SITE OWNER", "ORGANIZATION")
    return [*format_table(headers, rows), f"{len(accounts)} accounts"]


def _journal(path: str) -> Journal:
    try:
        return Journal(path, job="accounts")
    except JournalError as exc:
        raise UsageError(f"--journal {exc}") from None


async def accounts_sync(args: argparse.Namespace) -> int:
    """``accounts sync --journal J``: the account list into the journal's index; prints how many."""
    with _journal(args.journal) as journal:
        async with make_client(args) as client:
            reconciler = client.accounts.reconciler
            stored = journal.account_index(reconciler.owner)
            before = len(stored[0])
            reconciler.warm(*stored)
            total = await reconciler.refresh(full=args.full, within=args.within)
            journal.save_account_index(reconciler.index.accounts(), reconciler.index.tail, reconciler.owner)
        read = "the whole list" if reconciler.full_sweeps else "the list's tail"
        print(f"{total} accounts in {printable(args.journal)} ({total - before} new; read {read}, "
              f"{client.accounts.reconciler.sweeps} sweep)")  # fmt: skip
    return 0


async def accounts_list(args: argparse.Namespace) -> int:
    """``accounts list``: every client account as a table, or one JSON object a line with ``--json``;
    with ``--from-journal``, the journal's index (id, user name, organization) without a request."""
    if args.from_journal is not None:
        with _journal(args.from_journal) as journal:
            accounts, _ = journal.account_index(None)
        if args.json:
            for account in accounts:
                print(json_line(account_record(account)))
        else:
            print("\n".join(account_lines(accounts)))
        return 0
    async with make_client(args) as client:
        listing = client.accounts.list(account_type=args.type)
        if args.json:
            async for account in listing:
                print(json_line(account_record(account)), flush=True)
        else:
            print("\n".join(account_lines([a async for a in listing])))
    return 0


def webhook_lines(subs: Iterable[WebhookSubscription]) -> list[str]:
    """The webhook topics as a table."""
    rows = [(int(s.topic_id), _topic_label(int(s.topic_id)), s.hook_uri or "(not subscribed)") for s in subs]
    return format_table(("TOPIC", "NAME", "CALLBACK"), rows)


async def webhooks_command(args: argparse.Namespace) -> int:
    """``webhooks list|subscribe|unsubscribe|test``."""
    async with make_client(args) as client:
        hooks = client.webhooks
        if args.action == "list":
            subs = await hooks.list()
            lines = [json_line(webhook_record(s)) for s in subs] if args.json else webhook_lines(subs)
            print("\n".join(lines))
        elif args.action == "subscribe":
            sub = await hooks.subscribe(args.topic, args.uri)
            uri = printable(sub.hook_uri or args.uri)
            print(f"topic {args.topic} ({_topic_label(args.topic)}) now calls {uri}")
        elif args.action == "unsubscribe":
            await hooks.unsubscribe(args.topic)
            print(f"topic {args.topic} ({_topic_label(args.topic)}) unsubscribed")
        else:
            sub = await hooks.send_test(args.topic)
            label = f"topic {args.topic} ({_topic_label(args.topic)})"
            print(f"test notification for {label} sent to {printable(sub.hook_uri)}")
    return 0
