"""The command line: ``python -m ctct_partner_async.sandbox [--port 8911] ...``.

Prints the three URLs and the three credentials (well-known sandbox defaults, printed on purpose), then a
``PORT=<n>`` line; with ``--ready-file PATH`` also writes the port there once listening. Runs until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path

from .config import LIST_ORDERS, Faults, SandboxConfig, parse_fault_assignment
from .server import SandboxHandle, run_sandbox

DEFAULT_PORT = 8911


def build_parser() -> argparse.ArgumentParser:
    """The sandbox's argument parser (reused by the ``ctct-partner sandbox`` command)."""
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="python -m ctct_partner_async.sandbox",
        description="Run a local emulator of the Constant Contact partner API.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)")
    add("--client-id", default=defaults.client_id, help="token endpoint / v2 Basic username")
    add("--client-secret", default=defaults.client_secret, help="token endpoint / v2 Basic password")
    add("--api-key", default=defaults.api_key, help="x-api-key (v3) and api_key (v2)")
    add("--token-ttl", type=float, default=defaults.token_ttl, help="token lifetime in seconds")
    add("--rate-limit", type=float, default=defaults.rate_limit, help="requests/s per API key (0: off)")
    add("--daily-quota", type=int, default=defaults.daily_quota, help="requests/day per API key (0: off)")
    add("--token-rate-limit", type=float, default=defaults.token_rate_limit,
        help="token requests/s per client (0: off)")  # fmt: skip
    add("--seed", type=int, default=defaults.seed, help="seed for faults and ids")
    add("--existing-accounts", type=int, default=defaults.existing_accounts, metavar="N",
        help="start with N accounts (seeded_000001, ...), as a partner's account base")  # fmt: skip
    add("--list-order", choices=LIST_ORDERS, default=defaults.list_order,
        help="the account list's order: creation (new ones last; default), reverse or shuffled")  # fmt: skip
    fault_names = ", ".join(Faults().as_dict())
    add("--fault", action="append", default=[], metavar="NAME=VALUE",
        help=f"set a fault, e.g. create_503=0.2 (repeatable); names: {fault_names}")  # fmt: skip
    add("--ready-file", type=Path, help="write the listening port to this file once ready")
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The config the parsed arguments describe; ``ValueError`` if one is bad."""
    faults = Faults()
    faults.update(dict(parse_fault_assignment(text) for text in args.fault))
    return SandboxConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        api_key=args.api_key,
        token_ttl=args.token_ttl,
        rate_limit=args.rate_limit,
        daily_quota=args.daily_quota,
        token_rate_limit=args.token_rate_limit,
        seed=args.seed,
        faults=faults,
        existing_accounts=args.existing_accounts,
        list_order=args.list_order,
    )


def banner(handle: SandboxHandle) -> str:
    """What the sandbox prints once listening."""
    config = handle.sandbox.config
    return "\n".join([
        f"Sandbox listening on {handle.url}",
        f"  API (v3)        {handle.base_url}",
        f"  token endpoint  {handle.token_url}",
        f"  legacy (v2)     {handle.legacy_url}",
        f"  admin           {handle.admin_url}",
        f"  client id       {config.client_id}",
        f"  client secret   {config.client_secret}",
        f"  API key         {config.api_key}",
        f"PORT={handle.port}",
    ])  # fmt: skip


def write_ready_file(path: Path, port: int) -> None:
    """Write ``port`` to ``path`` atomically (a reader never sees a half-written file)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{port}\n")
    Path(temp).replace(path)


async def serve(config: SandboxConfig, host: str, port: int, ready_file: Path | None) -> None:
    """Run until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with run_sandbox(config, host, port) as handle:
        if ready_file is not None:
            write_ready_file(ready_file, handle.port)  # before the banner: PORT= implies the file exists
        print(banner(handle), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the sandbox; 0 on a clean stop, 2 on bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(serve(config, args.host, args.port, args.ready_file))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
