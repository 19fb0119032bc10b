"""Shared benchmark plumbing: the sandbox in its own pinned process, clients for it, the rows."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Final, TypedDict

from benchmarks.bench_sandbox import ROOT, available_cores, pin, server_process
from ctct_partner_async import NewAccount, PartnerClient, TokenSettings

__all__ = ["CLIENT", "ROOT", "client", "rows", "sandbox"]


class Credentials(TypedDict):
    """The sandbox's fixed credentials, as ``PartnerClient`` keyword arguments."""

    api_key: str
    client_id: str
    client_secret: str


CLIENT: Final[Credentials] = {
    "api_key": "sandbox-api-key",
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
}


@contextlib.contextmanager
def sandbox(*flags: str) -> Iterator[str]:
    """Run the sandbox in its own process on its own core (this process on the others); yield its URL."""
    cores = available_cores()
    server_core = max(cores)
    argv = [
        "-m",
        "ctct_partner_async.sandbox",
        "--port",
        "0",
        "--daily-quota",
        "0",
        "--token-rate-limit",
        "0",
        *flags,
    ]
    pin(os.getpid(), (cores - {server_core}) or cores)
    try:
        with server_process(argv, server_core if len(cores) > 1 else None) as (_, port):
            yield f"http://127.0.0.1:{port}"
    finally:
        pin(os.getpid(), cores)


def client(base: str, **options: Any) -> PartnerClient:
    """A ``PartnerClient`` for the sandbox at ``base``."""
    options.setdefault("token_settings", TokenSettings(first_request_jitter=0))  # one process
    return PartnerClient(base_url=base + "/v3", token_url=base + "/oauth2/token", **CLIENT, **options)


def rows(count: int, tag: str) -> Iterator[NewAccount]:
    """``count`` distinct accounts, generated lazily."""
    for i in range(count):
        yield NewAccount(contact_email=f"bench{i}@example.com", login_name=f"{tag}_{i:08d}", password="s3cret-pass",
                         country_code="US", state_code="MA", organization_name=f"Bench {i}")  # fmt: skip
