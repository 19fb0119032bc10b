"""The pytest plugin's ctct_sandbox fixture, as a user's test suite would use it."""

from __future__ import annotations

import pytest

from ctct_partner_async import NewAccount
from ctct_partner_async.testing import SandboxFixture


async def test_fixture_gives_a_ready_client(ctct_sandbox: SandboxFixture) -> None:
    """The fixture's client talks to the fixture's sandbox with no setup at all."""
    result = await ctct_sandbox.client.accounts.create(
        NewAccount(
            contact_email="a@example.com", login_name="plugin_user", password="s3cret-pass", country_code="GB"
        )
    )
    assert [a["encoded_account_id"] for a in ctct_sandbox.sandbox.accounts()] == [result.encoded_account_id]
    assert ctct_sandbox.handle.url.startswith("http://127.0.0.1:")


@pytest.mark.ctct_sandbox(token_ttl=120, seed=3)
async def test_marker_passes_settings(ctct_sandbox: SandboxFixture) -> None:
    """Settings given with the ctct_sandbox marker reach the sandbox."""
    assert ctct_sandbox.sandbox.config.token_ttl == 120
    assert ctct_sandbox.sandbox.config.seed == 3
    assert ctct_sandbox.sandbox.config.rate_limit == 0
