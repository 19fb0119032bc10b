"""``ctct-partner webhooks listen`` as a real process: a signed delivery from the sandbox comes out as one
JSON line with the re-fetched state, and SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from ctct_partner_async import NewAccount, PartnerClient
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0)) as sb:
        yield sb


def environment(sb: SandboxHandle) -> dict[str, str]:
    config = sb.sandbox.config
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTCT_") and "proxy" not in k.lower()}
    env.update({"CTCT_BASE_URL": sb.base_url, "CTCT_TOKEN_URL": sb.token_url, "CTCT_API_KEY": config.api_key,
                "CTCT_CLIENT_ID": config.client_id, "CTCT_CLIENT_SECRET": config.client_secret})  # fmt: skip
    return env


async def test_listen_prints_each_verified_notification_with_its_state(sandbox: SandboxHandle) -> None:
    """A cancel on a subscribed topic: one JSON line with account.cancel and the Canceled plan; nothing
    secret on either stream; exit status 0 on SIGTERM."""
    argv = [sys.executable, "-m", "ctct_partner_async.cli", "webhooks", "listen", "--port", "0",
            "--jwks-url", sandbox.jwks_url, "--window", "0"]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, env=environment(sandbox), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            banner = (await proc.stderr.readline()).decode()
            assert banner.startswith("listening on http://127.0.0.1:"), banner
            hook = banner.split()[2]
            config = sandbox.sandbox.config
            async with PartnerClient(api_key=config.api_key, client_id=config.client_id,
                                     client_secret=config.client_secret, base_url=sandbox.base_url,
                                     token_url=sandbox.token_url) as client:  # fmt: skip
                await client.webhooks.subscribe(3, hook)
                made = await client.accounts.create(NewAccount(
                    contact_email="l@example.com", login_name="listen_user_1", password="s3cret-pass",
                    country_code="US", state_code="MA"))  # fmt: skip
                assert made.encoded_account_id is not None
                await client.accounts.cancel(made.encoded_account_id)
            record = json.loads(await proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert record["event_type"] == "account.cancel" and record["topic"] == 3
    assert record["account_id"] == made.encoded_account_id
    assert record["state"]["billing_status"] == "Canceled"
    text = json.dumps(record) + out.decode() + err.decode()
    assert config.api_key not in text and config.client_secret not in text


async def test_listen_with_an_unset_hmac_secret_variable_is_a_usage_error(sandbox: SandboxHandle) -> None:
    """--hmac-secret-env naming an unset variable: exit status 2, nothing served."""
    argv = [sys.executable, "-m", "ctct_partner_async.cli", "webhooks", "listen", "--port", "0",
            "--hmac-secret-env", "CTCT_TEST_UNSET_SECRET"]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, env=environment(sandbox), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 2 and b"CTCT_TEST_UNSET_SECRET is not set" in err
