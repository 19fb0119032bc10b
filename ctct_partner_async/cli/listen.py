"""``webhooks listen``: a local receiver that prints each verified notification and its state.

It serves :func:`~ctct_partner_async.notifications.notification_app` on ``--host``/``--port`` (loopback by
default), verifying with the JWKS (``--jwks-url``, the vendor's by default) or, for v2, the HMAC secret in
the variable ``--hmac-secret-env`` names (never a flag: it would show in ``ps``). The body must name the
command's API key. Each notification, after its state is read through the client, is one JSON line on
stdout: ``{"event_type", "topic", "account_id", "url", "state"}`` (``state`` the plan, or null); the
address it listens on goes to stderr. Runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

import attrs
from aiohttp import web

from .._models import PartnerNotification, Plan
from ..notifications import HmacVerifier, JwsVerifier, NotificationVerifier, notification_app
from ._text import json_line, printable
from .options import UsageError, client_settings, make_client

__all__ = ["notification_record", "webhooks_listen"]


def notification_record(notification: PartnerNotification, plan: Plan | None) -> dict[str, object]:
    """A notification and its re-fetched state as a JSON object (never the body's API key)."""
    return {
        "event_type": notification.event_type,
        "topic": None if notification.topic is None else int(notification.topic),
        "account_id": notification.account_id,
        "url": notification.url,
        "state": None if plan is None else attrs.asdict(plan),
    }


def _verifier(args: argparse.Namespace) -> NotificationVerifier:
    if args.hmac_secret_env:
        secret = os.environ.get(args.hmac_secret_env)
        if not secret:
            raise UsageError(f"--hmac-secret-env: ${args.hmac_secret_env} is not set")
        return HmacVerifier(secret)
    try:
        return JwsVerifier(args.jwks_url)
    except ImportError as exc:
        raise UsageError(str(exc)) from None


def _print(notification: PartnerNotification, plan: Plan | None) -> None:
    print(json_line(notification_record(notification, plan)), flush=True)


async def webhooks_listen(args: argparse.Namespace) -> int:
    """``webhooks listen``: serve the receiver until SIGINT or SIGTERM."""
    api_key = client_settings(args, os.environ)["api_key"]
    verifier = _verifier(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with make_client(args) as client:
        app = notification_app(client, _print, verifier=verifier, api_key=api_key, path=args.path,
                               window=args.window)  # fmt: skip
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, args.host, args.port).start()
            host, port = runner.addresses[0][:2]
            where = (
                f"http://{host}:{port}{args.path}"
                if ":" not in host
                else f"http://[{host}]:{port}{args.path}"
            )
            print(f"listening on {printable(where)} (Ctrl-C to stop)", file=sys.stderr, flush=True)
            await stop.wait()
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
        finally:
            await runner.cleanup()
            if isinstance(verifier, JwsVerifier):
                await verifier.aclose()
    return 0
