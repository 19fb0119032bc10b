"""End to end on loopback: the sandbox sends signed deliveries, ``notification_app`` verifies them, answers,
re-fetches through a real client and calls the handler; the sandbox retries on its own clock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ctct_partner_async import EventType, FakeClock, NewAccount, PartnerClient, Plan
from ctct_partner_async.notifications import (
    DISPATCHER,
    HmacVerifier,
    JwsVerifier,
    PartnerNotification,
    notification_app,
)
from ctct_partner_async.sandbox import SandboxConfig, SandboxHandle, run_sandbox

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SandboxClock:
    """Wall time that stands still until the test moves it (the sandbox's retries run on it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sandbox_clock() -> SandboxClock:
    return SandboxClock()


@pytest.fixture
async def sandbox(sandbox_clock: SandboxClock) -> AsyncIterator[SandboxHandle]:
    config = SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0, clock=sandbox_clock)
    async with run_sandbox(config) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: SandboxHandle) -> AsyncIterator[PartnerClient]:
    config = sandbox.sandbox.config
    async with PartnerClient(
        api_key=config.api_key, client_id=config.client_id, client_secret=config.client_secret,
        base_url=sandbox.base_url, token_url=sandbox.token_url,
    ) as made:  # fmt: skip
        yield made


class Receiver:
    """What the handler saw; ``failures`` answers 500 to that many deliveries first."""

    def __init__(self) -> None:
        self.calls: list[tuple[PartnerNotification, Plan | None]] = []
        self.called = asyncio.Event()
        self.failures = 0
        self.statuses: list[int] = []

    async def on_notification(self, notification: PartnerNotification, plan: Plan | None) -> None:
        self.calls.append((notification, plan))
        self.called.set()

    @web.middleware
    async def flaky(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.failures > 0:
            self.failures -= 1
            self.statuses.append(500)
            return web.Response(status=500)
        answer = await handler(request)
        self.statuses.append(answer.status)
        return answer


@pytest.fixture
async def receiver(
    sandbox: SandboxHandle, client: PartnerClient, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Receiver, web.Application, str]]:
    """``notification_app`` mounted under /hooks of an outer app on loopback, verifying with the sandbox's
    JWKS and the API key; the receiving clock is a FakeClock (the coalescing window waits on it)."""
    got = Receiver()
    window = getattr(request, "param", 0.0)
    async with JwsVerifier(sandbox.jwks_url) as verifier:
        inner = notification_app(
            client, got.on_notification, verifier=verifier, api_key=sandbox.sandbox.config.api_key,
            window=window, clock=FakeClock(),
        )  # fmt: skip
        outer = web.Application(middlewares=[got.flaky])
        outer.add_subapp("/hooks", inner)
        async with TestServer(outer, host="127.0.0.1") as server:
            yield got, inner, str(server.make_url("/hooks/ctct/notifications"))


async def subscribed_account(client: PartnerClient, uri: str, topic: int = 3) -> str:
    await client.webhooks.subscribe(topic, uri)
    made = await client.accounts.create(
        NewAccount(
            contact_email="h@example.com",
            login_name="hook_user_1",
            password="s3cret-pass",
            country_code="US",
            state_code="MA",
        )  # fmt: skip
    )
    assert made.encoded_account_id is not None
    return made.encoded_account_id


def attempts(sb: SandboxHandle) -> list[dict[str, object]]:
    """The attempts of the sandbox's one delivery."""
    (delivery,) = sb.sandbox.deliveries()
    made = delivery["attempts"]
    assert isinstance(made, list)
    return made


async def test_a_cancel_reaches_the_handler_with_the_canceled_plan(
    sandbox: SandboxHandle, client: PartnerClient, receiver: tuple[Receiver, web.Application, str]
) -> None:
    """Subscribe topic 3, cancel: one signed delivery answered 204, and the handler gets account.cancel
    with the Plan read back through the client, billing_status Canceled."""
    got, _, uri = receiver
    account_id = await subscribed_account(client, uri)
    await client.accounts.cancel(account_id)
    async with asyncio.timeout(10):
        await got.called.wait()
    notification, plan = got.calls[0]
    assert notification.event_type == EventType.ACCOUNT_CANCEL and notification.account_id == account_id
    assert plan is not None and plan.billing_status == "Canceled"
    await sandbox.sandbox.outbox.flush()
    assert sandbox.sandbox.deliveries()[0]["state"] == "delivered"
    assert [a["status"] for a in attempts(sandbox)] == [204]
    assert got.statuses == [204]


async def test_a_receiver_answering_500_twice_gets_the_third_delivery(
    sandbox: SandboxHandle,
    client: PartnerClient,
    receiver: tuple[Receiver, web.Application, str],
    sandbox_clock: SandboxClock,
) -> None:
    """The sandbox retries every webhook_retry_interval (60 s) of its clock: 500, 500, then 204 and the
    handler's one call."""
    got, _, uri = receiver
    got.failures = 2
    account_id = await subscribed_account(client, uri)
    await client.accounts.cancel(account_id)
    outbox = sandbox.sandbox.outbox
    await outbox.flush()  # the first attempt has been made (by the background sender or here)
    for _ in range(2):
        assert not got.called.is_set()
        sandbox_clock.now += 60
        assert await outbox.flush() == 1
    async with asyncio.timeout(10):
        await got.called.wait()
    assert got.statuses == [500, 500, 204]
    assert sandbox.sandbox.deliveries()[0]["state"] == "delivered" and len(attempts(sandbox)) == 3
    assert len(got.calls) == 1


async def test_a_delivery_never_answered_2xx_fails_after_the_retry_period(
    sandbox: SandboxHandle,
    client: PartnerClient,
    receiver: tuple[Receiver, web.Application, str],
    sandbox_clock: SandboxClock,
) -> None:
    """61 attempts over the hour (one a minute), then the delivery has failed and nothing more is sent."""
    got, _, uri = receiver
    got.failures = 1000
    await client.accounts.cancel(await subscribed_account(client, uri))
    outbox = sandbox.sandbox.outbox
    await outbox.flush()
    for _ in range(61):
        sandbox_clock.now += 60
        await outbox.flush()
    assert sandbox.sandbox.deliveries()[0]["state"] == "failed" and len(attempts(sandbox)) == 61


@pytest.mark.parametrize("receiver", [2.0], indirect=True)
async def test_two_deliveries_in_the_window_make_one_handler_call(
    sandbox: SandboxHandle, client: PartnerClient, receiver: tuple[Receiver, web.Application, str]
) -> None:
    """Two cancels of one account inside the 2 s window: both answered 204, one re-fetch, one call."""
    got, inner, uri = receiver
    account_id = await subscribed_account(client, uri)
    for _ in range(2):
        await client.accounts.cancel(account_id)
        await sandbox.sandbox.outbox.flush()
    assert got.statuses == [204, 204]
    dispatcher = inner[DISPATCHER]
    assert dispatcher.coalesced == 1 and not got.called.is_set()
    clock = dispatcher._clock
    assert isinstance(clock, FakeClock)
    clock.advance(2.0)
    async with asyncio.timeout(10):
        await got.called.wait()
    await dispatcher.aclose()
    assert len(got.calls) == 1 and dispatcher.calls == 1


async def test_forged_and_malformed_deliveries_are_answered_401_and_400(
    sandbox: SandboxHandle, receiver: tuple[Receiver, web.Application, str]
) -> None:
    """Posting without the sandbox's signature: 401; signed by nobody and not JSON: still 401 (the
    signature is checked first); the handler is never called."""
    got, _, uri = receiver
    async with aiohttp.ClientSession() as http:
        async with http.post(uri, data=b'{"url": "x"}') as answer:
            assert answer.status == 401 and (await answer.json()) == {"error": "missing_signature"}
        bad = {"X-CTCT-WEBHOOK-SIG": "eyJhbGciOiJSUzI1NiJ9..AAAA"}
        async with http.post(uri, data=b"not json", headers=bad) as answer:
            assert answer.status == 401
    assert got.calls == []


async def test_a_failing_handler_is_logged_without_secrets_and_answered_204(
    sandbox: SandboxHandle, client: PartnerClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The sender gets its 204 however the handler fares; the failure is one ERROR record, and no DEBUG
    record of the whole exchange holds the API key, the client secret or the JWT."""
    failed = asyncio.Event()

    def broken(notification: PartnerNotification, plan: Plan | None) -> None:
        failed.set()
        raise RuntimeError("the billing database is down")

    caplog.set_level(logging.DEBUG)
    async with JwsVerifier(sandbox.jwks_url) as verifier:
        app = notification_app(client, broken, verifier=verifier, window=0)
        async with TestServer(app, host="127.0.0.1") as server:
            account_id = await subscribed_account(client, str(server.make_url("/ctct/notifications")))
            await client.accounts.cancel(account_id)
            async with asyncio.timeout(10):
                await failed.wait()
            await app[DISPATCHER].aclose()
    await sandbox.sandbox.outbox.flush()
    assert [a["status"] for a in attempts(sandbox)] == [204]
    assert app[DISPATCHER].handler_errors == 1
    assert any(
        r.levelno == logging.ERROR and "on_notification failed" in r.getMessage() for r in caplog.records
    )
    config = sandbox.sandbox.config
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    jwt = await client.token_provider.get_token()
    for secret in (config.api_key, config.client_secret, jwt):
        assert secret not in text


async def test_v2_hmac_deliveries_end_to_end_and_no_secret_in_debug_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sandbox with webhook_hmac_secret signs v2 style too: HmacVerifier accepts its real test send
    (delivered for the topic's event type), and no DEBUG record holds the HMAC secret or the API key."""
    caplog.set_level(logging.DEBUG)
    secret = "v2-hmac-secret-for-the-test"
    config = SandboxConfig(rate_limit=0, daily_quota=0, token_rate_limit=0, webhook_hmac_secret=secret)
    async with run_sandbox(config) as sb:
        async with PartnerClient(
            api_key=config.api_key, client_id=config.client_id, client_secret=config.client_secret,
            base_url=sb.base_url, token_url=sb.token_url,
        ) as client:  # fmt: skip
            got = Receiver()
            app = notification_app(client, got.on_notification, verifier=HmacVerifier(secret), window=0)
            async with TestServer(app, host="127.0.0.1") as server:
                await client.webhooks.subscribe(4, str(server.make_url("/ctct/notifications")))
                await client.webhooks.send_test(4)
                async with asyncio.timeout(10):
                    await got.called.wait()
                await app[DISPATCHER].aclose()
        notification, plan = got.calls[0]
        assert (
            notification.event_type == EventType.ACCOUNT_DISABLE and plan is None
        )  # no account: nothing to read
        assert [a["status"] for a in attempts(sb)] == [204]
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert secret not in text and config.api_key not in text


async def test_a_dropped_delivery_never_reaches_the_receiver(
    sandbox: SandboxHandle, client: PartnerClient, receiver: tuple[Receiver, web.Application, str]
) -> None:
    """The webhook_drop fault loses the delivery before its first attempt: state dropped, nothing sent."""
    got, _, uri = receiver
    sandbox.sandbox.faults.webhook_drop = 1.0
    await client.accounts.cancel(await subscribed_account(client, uri))
    assert await sandbox.sandbox.outbox.flush() == 0
    assert sandbox.sandbox.deliveries()[0]["state"] == "dropped" and attempts(sandbox) == []
    assert got.statuses == []


async def test_a_hook_uri_off_loopback_is_never_called(sandbox: SandboxHandle, client: PartnerClient) -> None:
    """An https hook URI on another host is kept (the API accepts it) but its delivery is skipped."""
    await client.webhooks.subscribe(3, "https://hooks.example/ctct")
    await client.webhooks.send_test(3)
    assert await sandbox.sandbox.outbox.flush() == 0
    assert sandbox.sandbox.deliveries()[0]["state"] == "skipped"
