"""The ``ctct-partner`` command: bulk jobs from files, account and webhook commands, the sandbox, a demo.

``main(argv)`` returns the exit status (``EXIT_STATUS``, also shown by ``--help``): 0 when every row
(or the command) succeeded, 1 when some rows failed, the file held none or the API refused the command,
2 on a usage error (bad arguments, a missing credential, an unreadable file, an unknown column, an
output naming the input), 130 when interrupted. ``run(argv)`` does the same inside an already running
event loop (for tests and embedding; it cannot run ``sandbox``, which owns its loop). ``-v`` and
``-vv``, before or after the command's name, send the SDK's log records to stderr (see ``logs``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence

from .._errors import CtctError, ValidationError
from .._models import PlanType
from .._version import __version__
from ..notifications import DEFAULT_JWKS_URL
from ..sandbox import cli as sandbox_cli
from ._text import printable
from .commands import accounts_list, accounts_sync, webhooks_command
from .demo import demo_command
from .jobs import bulk_command
from .listen import webhooks_listen
from .logs import logging_to_stderr, verbosity, verbosity_options
from .options import (
    UsageError,
    bulk_options,
    connection_options,
    plan_type_name,
    positive_int,
    seconds,
    topic,
)

__all__ = ["build_parser", "main", "run"]

Command = Callable[[argparse.Namespace], Awaitable[int]]
PROG = "ctct-partner"
DESCRIPTION = "Bulk jobs, accounts and webhooks on the Constant Contact partner API; a local sandbox; a demo."
EXIT_STATUS = """exit status:
  0    every row (or the command) succeeded
  1    some rows failed, are invalid or not settled yet; the file holds no rows;
       the API refused the command
  2    usage error: bad arguments, a missing credential, an unreadable file, an
       unknown column, --out or --journal naming the input, a journal in use
  130  interrupted (a bulk job resumes from its --journal)"""


def _sub(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    command: Command | None,
    help_text: str,
    parents: Sequence[argparse.ArgumentParser] = (),
    add_help: bool = True,
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        parents=parents,
        add_help=add_help,
        allow_abbrev=False,
        epilog=EXIT_STATUS if command is not None else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=command, parser=parser)
    return parser


def _add_bulk(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parents = [bulk_options(), connection_options()]
    provision = _sub(
        subparsers, "provision", bulk_command, "create an account per row (never twice)", parents=parents
    )
    provision.add_argument(
        "--pending-wait",
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for creates the API deferred with a 503 (default 60)",
    )
    provision.add_argument(
        "--reconcile-timeout",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long a create may look for its account in the account list, when it may exist "
        "(default 30; a sweep reads 50 accounts a request, so raise it for a large account base)",
    )
    provision.add_argument(
        "--adopt-existing",
        action="store_true",
        help="a row whose login name is taken by a listed account with the same user name and "
        "organization is reported 'adopted' instead of failed (to recover a lost journal)",
    )
    plans = _sub(
        subparsers,
        "plans",
        bulk_command,
        "change the plan per row: encoded_account_id, plan_type, billing_day_of_month",
        parents=parents,
    )
    plans.add_argument(
        "--allow-plan-type",
        action="append",
        type=plan_type_name,
        default=[],
        metavar="NAME",
        help=f"accept this plan_type besides the known ones ({', '.join(sorted(PlanType.PAID))}; "
        "never TRIAL: no account goes back to it) (repeatable)",
    )
    _sub(
        subparsers,
        "cancel",
        bulk_command,
        "cancel the account per row: encoded_account_id, reason_id, effective_date",
        parents=parents,
    )


def _add_accounts(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    accounts = _sub(subparsers, "accounts", None, "client accounts")
    actions = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _sub(
        actions, "list", accounts_list, "list every client account", parents=[connection_options()]
    )
    listing.add_argument("--type", choices=("all", "managed", "unmanaged"), default="all")
    listing.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    listing.add_argument(
        "--from-journal",
        metavar="PATH",
        help="the account index kept in this journal: no request, no credentials",
    )
    sync = _sub(
        actions, "sync", accounts_sync, "read the account list into a journal's index (bulk jobs with that "
        "journal then read only its tail)", parents=[connection_options()],
    )  # fmt: skip
    sync.add_argument("--journal", metavar="PATH", required=True, help="the SQLite journal to keep it in")
    sync.add_argument("--full", action="store_true", help="read the whole list even if the index has a tail")
    sync.add_argument("--within", type=float, default=600.0, metavar="SECONDS",
                      help="give up after this long (default 600; a request reads 50 accounts)")  # fmt: skip


def _add_webhooks(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhooks = _sub(subparsers, "webhooks", None, "partner webhook topics")
    actions = webhooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    parents = [connection_options()]
    listing = _sub(actions, "list", webhooks_command, "every topic and its callback", parents=parents)
    listing.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    subscribe = _sub(
        actions, "subscribe", webhooks_command, "subscribe a topic to a callback URI", parents=parents
    )
    subscribe.add_argument("topic", type=topic, metavar="TOPIC", help="1-4 or a name (billing-tier-upgrade)")
    subscribe.add_argument("uri", metavar="URI", help="https callback, at most 512 characters")
    for name, text in (
        ("unsubscribe", "stop notifications for a topic"),
        ("test", "send a test notification"),
    ):
        parser = _sub(actions, name, webhooks_command, text, parents=parents)
        parser.add_argument("topic", type=topic, metavar="TOPIC", help="1-4 or a name (account-cancelled)")
    listen = _sub(
        actions, "listen", webhooks_listen,
        "receive webhooks here: print each verified notification and its re-fetched state as a JSON line",
        parents=parents,
    )  # fmt: skip
    listen.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    listen.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks one)")
    listen.add_argument("--path", default="/ctct/notifications", help="the hook's path (default %(default)s)")
    listen.add_argument(
        "--window", type=seconds, default=2.0, metavar="SECONDS",
        help="deliveries of one url and event type within it make one line (default 2)",
    )  # fmt: skip
    proof = listen.add_mutually_exclusive_group()
    proof.add_argument(
        "--jwks-url", default=DEFAULT_JWKS_URL, metavar="URL",
        help="v3: the JWKS that checks X-CTCT-WEBHOOK-SIG (default: the vendor's)",
    )  # fmt: skip
    proof.add_argument(
        "--hmac-secret-env", metavar="VAR",
        help="v2: check x-ctct-hmac-sha256 with the secret in this environment variable",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``ctct-partner`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        allow_abbrev=False,
        description=DESCRIPTION,
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[verbosity_options()],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_bulk(subparsers)
    _add_accounts(subparsers)
    _add_webhooks(subparsers)
    _sub(
        subparsers,
        "sandbox",
        None,
        "run the local sandbox (the partner API emulator)",
        parents=[sandbox_cli.build_parser()],
        add_help=False,
    )
    demo = _sub(
        subparsers,
        "demo",
        demo_command,
        "a bulk run against an in-process sandbox with faults on",
        parents=[verbosity_options("command_verbose")],
    )
    demo.add_argument("--accounts", type=positive_int, default=1000, metavar="N", help="default 1000")
    demo.add_argument("--seed", type=int, default=1, help="the same seed gives the same run (default 1)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return parser


def parse(argv: list[str]) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status when argparse stopped (``--help``: 0, an error: 2)."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2


async def execute(args: argparse.Namespace) -> int:
    """Run a parsed command in the running loop and map its errors to an exit status."""
    parser: argparse.ArgumentParser = args.parser
    command: Command = args.run
    try:
        with logging_to_stderr(verbosity(args)):
            return await command(args)
    except (UsageError, ValidationError) as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except CtctError as exc:
        print(f"{parser.prog}: {printable(str(exc))}", file=sys.stderr)
        return 1


async def run(argv: list[str]) -> int:
    """Like ``main`` but inside a running event loop."""
    args = parse(argv)
    if isinstance(args, int):
        return args
    if args.command == "sandbox":
        print(f"{PROG} sandbox: run it with main(), it owns its event loop", file=sys.stderr)
        return 2
    return await execute(args)


def run_sandbox_command(argv: list[str]) -> int:
    """``sandbox``: the sandbox's own command line, which owns its event loop and signal handling."""
    try:
        return sandbox_cli.main(argv)
    except SystemExit as exc:  # its parser rejected a value (a bad --fault)
        return exc.code if isinstance(exc.code, int) else 2


def main(argv: list[str] | None = None) -> int:
    """The ``ctct-partner`` entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    if isinstance(args, int):
        return args
    if args.command == "sandbox":
        return run_sandbox_command(argv[argv.index("sandbox") + 1 :])
    try:
        return asyncio.run(execute(args))
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted (a bulk job resumes from its --journal)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
