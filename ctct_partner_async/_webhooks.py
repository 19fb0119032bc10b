"""``client.webhooks``: the partner webhook topics and their callbacks.

Every operation takes ``timeout=``: seconds each request it sends may take, in place of the client's
``Timeouts.total``; a bad one is a ``ValidationError`` before anything is sent.
"""

# ``timeout=`` on every operation is the API (as in openai-python): it bounds each request the operation
# sends, where the pipeline applies it; a caller's own ``asyncio.timeout`` bounds the whole call instead.
# ruff: noqa: ASYNC109

from __future__ import annotations

import builtins

from . import _operations as operations
from ._models import WebhookSubscription, WebhookTopic
from ._protocol import Sender

__all__ = ["Webhooks"]


class Webhooks:
    """Partner webhook subscriptions (topics 1-4, see ``WebhookTopic``)."""

    def __init__(self, client: Sender) -> None:
        self._client = client

    async def list(self, *, timeout: float | None = None) -> builtins.list[WebhookSubscription]:
        """Every topic with its callback URI, if subscribed."""
        response = await self._client.send(operations.build_list_webhooks(), timeout=timeout)
        return operations.parse_webhooks(response)

    async def get(self, topic_id: WebhookTopic | int, *, timeout: float | None = None) -> WebhookSubscription:
        """One topic."""
        response = await self._client.send(operations.build_get_webhook(topic_id), timeout=timeout)
        return operations.parse_webhook(response)

    async def subscribe(
        self, topic_id: WebhookTopic | int, hook_uri: str, *, timeout: float | None = None
    ) -> WebhookSubscription:
        """Subscribe to a topic, or change its callback (``https://``, at most 512 characters)."""
        request = operations.build_subscribe_webhook(topic_id, hook_uri)
        return operations.parse_webhook(await self._client.send(request, timeout=timeout))

    async def unsubscribe(self, topic_id: WebhookTopic | int, *, timeout: float | None = None) -> None:
        """Stop notifications for a topic."""
        await self._client.send(operations.build_unsubscribe_webhook(topic_id), timeout=timeout)

    async def send_test(
        self, topic_id: WebhookTopic | int, *, timeout: float | None = None
    ) -> WebhookSubscription:
        """Ask the API to send a test notification for a topic right away."""
        request = operations.build_send_webhook_test(topic_id)
        return operations.parse_webhook(await self._client.send(request, timeout=timeout))
