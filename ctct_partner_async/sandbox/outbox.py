"""Webhook deliveries: what the sandbox POSTs to subscribed hook URIs, and its retries.

An event (a plan change that raises or lowers the tier, a cancel, a test send) on a subscribed topic
makes a delivery of the documented body ``{"url": ".../v3/partner/accounts/{id}/plan", "api_key": ...,
"event_type": ...}``, signed (:mod:`.signing`; the v2 HMAC too when ``webhook_hmac_secret`` is set). An
attempt without a 2xx answer is tried again every ``webhook_retry_interval`` seconds of the sandbox's
clock for ``webhook_retry_for`` seconds after the event; then the delivery has ``failed``. Each attempt
signs anew (``ts`` is the attempt's time). Faults: ``webhook_drop`` loses a delivery before its first
attempt (``dropped``: the receiver never hears of it), ``webhook_delay`` holds the first attempt back
that many seconds of the clock.

Deliveries go to loopback hosts only (``http://127.0.0.1``, ``localhost``, ``[::1]``), unless
``webhook_remote`` is set: any other hook URI is ``skipped``, so a test subscribing
``https://hooks.example/...`` never reaches out. ``flush()`` makes every attempt that is due now (tests
with a fake clock call it after moving the clock); the app runs it in the background, waking on every new
delivery and at least every ``POLL`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp

from .clock import iso_utc
from .config import SandboxConfig
from .faults import FaultInjector
from .ledger import Ledger
from .signing import HMAC_HEADER, SIGNATURE_HEADER, WebhookSigner, hmac_header
from .validation import is_loopback_uri

POLL = 0.25  # real seconds between looks at the clock while deliveries wait (a fake clock moves on its own)
MAX_ANSWER = 64 * 1024
DELIVERY_OPERATION = "webhook_delivery"
logger = logging.getLogger("ctct_partner_async.sandbox")


@dataclass
class Delivery:
    """One notification on its way, with every attempt made."""

    id: int
    topic_id: int
    event_type: str
    url: str
    hook_uri: str
    body: bytes
    created: float
    due: float
    until: float
    test: bool = False
    state: str = "pending"  # pending, delivered, failed, dropped, skipped
    attempts: list[dict[str, object]] = field(default_factory=list)

    def view(self) -> dict[str, object]:
        """JSON-ready, without the body (it holds the API key)."""
        return {
            "id": self.id, "topic_id": self.topic_id, "event_type": self.event_type, "url": self.url,
            "hook_uri": self.hook_uri, "test": self.test, "state": self.state,
            "created_at": iso_utc(self.created),
            "next_attempt_at": iso_utc(self.due) if self.state == "pending" else None,
            "attempts": [dict(attempt) for attempt in self.attempts],
        }  # fmt: skip


class Outbox:
    """Every delivery of one sandbox, and the sending of them."""

    def __init__(self, config: SandboxConfig, ledger: Ledger, injector: FaultInjector) -> None:
        self._config = config
        self._clock: Callable[[], float] = config.clock
        self._ledger = ledger
        self._injector = injector
        self.signer = WebhookSigner()
        self.deliveries: list[Delivery] = []
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._warned_unsigned = False

    def clear(self) -> None:
        """Forget every delivery and number them from 1 again (``reset``)."""
        self.deliveries.clear()
        self._ids = itertools.count(1)

    def enqueue(
        self, topic_id: int, event_type: str, url: str, hook_uri: str, *, test: bool = False
    ) -> Delivery:
        """A new delivery of ``event_type`` for ``url`` to ``hook_uri``."""
        now = self._clock()
        body = json.dumps({"url": url, "api_key": self._config.api_key, "event_type": event_type}).encode()
        faults = self._injector.faults
        delivery = Delivery(
            next(self._ids), topic_id, event_type, url, hook_uri, body, now,
            due=now + faults.webhook_delay, until=now + self._config.webhook_retry_for, test=test,
        )  # fmt: skip
        if not (self._config.webhook_remote or is_loopback_uri(hook_uri)):
            delivery.state = "skipped"  # not a loopback host: nothing leaves this machine
        elif self._injector.hit(faults.webhook_drop, DELIVERY_OPERATION):
            delivery.state = "dropped"
            self._ledger.faults["webhook_drop"] += 1
        self.deliveries.append(delivery)
        self._ledger.count("webhook_events")
        self._wake.set()
        return delivery

    def views(self) -> list[dict[str, object]]:
        """Every delivery, oldest first."""
        return [delivery.view() for delivery in self.deliveries]

    def _due(self, now: float) -> list[Delivery]:
        return [d for d in self.deliveries if d.state == "pending" and d.due <= now]

    async def flush(self) -> int:
        """Make every attempt due by the clock now (at the same time); return how many were made."""
        async with self._lock:
            due = self._due(self._clock())
            await asyncio.gather(*(self._attempt(delivery) for delivery in due))
            return len(due)

    async def _attempt(self, delivery: Delivery) -> None:
        now = self._clock()
        headers = {"Content-Type": "application/json", "User-Agent": "ctct-partner-sandbox"}
        if self.signer.available():
            headers[SIGNATURE_HEADER] = self.signer.sign(delivery.body, int(now))
        elif not self._warned_unsigned:
            self._warned_unsigned = True
            logger.warning(
                "webhook deliveries go unsigned: install ctct-partner-async[webhooks] to sign them"
            )
        if self._config.webhook_hmac_secret:
            headers[HMAC_HEADER] = hmac_header(self._config.webhook_hmac_secret, delivery.body)
        status: int | None = None
        error: str | None = None
        try:
            status = await self._post(delivery, headers)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = type(exc).__name__
        delivery.attempts.append({"time": iso_utc(now), "status": status, "error": error})
        self._ledger.count("webhook_attempts")
        if status is not None and 200 <= status < 300:
            delivery.state = "delivered"
            self._ledger.count("webhooks_delivered")
        elif now + self._config.webhook_retry_interval <= delivery.until:
            delivery.due = now + self._config.webhook_retry_interval
        else:
            delivery.state = "failed"

    async def _post(self, delivery: Delivery, headers: dict[str, str]) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self._config.webhook_timeout)
        post = self._session.post(
            delivery.hook_uri, data=delivery.body, headers=headers, timeout=timeout, allow_redirects=False
        )
        async with post as answer:
            await answer.content.read(MAX_ANSWER)
            return answer.status

    def _next_wait(self) -> float | None:
        pending = [d.due for d in self.deliveries if d.state == "pending"]
        if not pending:
            return None
        return max(0.0, min(POLL, min(pending) - self._clock()))

    async def run(self) -> None:
        """Send deliveries as they come due, until cancelled."""
        while True:
            self._wake.clear()
            await self.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_wait())

    async def aclose(self) -> None:
        """Close the sending session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


@contextlib.asynccontextmanager
async def sending(outbox: Outbox) -> AsyncIterator[None]:
    """Run ``outbox`` in the background for as long as the block lasts."""
    task = asyncio.get_running_loop().create_task(outbox.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await outbox.aclose()
