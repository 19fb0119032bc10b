"""``client.webhooks``: the partner webhook topics and their callbacks."""

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

    async def list(self) -> builtins.list[WebhookSubscription]:
        """Every topic with its callback URI, if subscribed."""
        return operations.parse_webhooks(await self._client.send(operations.build_list_webhooks()))

    async def get(self, topic_id: WebhookTopic | int) -> WebhookSubscription:
        """One topic."""
        return operations.parse_webhook(await self._client.send(operations.build_get_webhook(topic_id)))

    async def subscribe(self, topic_id: WebhookTopic | int, hook_uri: str) -> WebhookSubscription:
        """Subscribe to a topic, or change its callback (``https://``, at most 512 characters)."""
        request = operations.build_subscribe_webhook(topic_id, hook_uri)
        return operations.parse_webhook(await self._client.send(request))

    async def unsubscribe(self, topic_id: WebhookTopic | int) -> None:
        """Stop notifications for a topic."""
        await self._client.send(operations.build_unsubscribe_webhook(topic_id))

    async def send_test(self, topic_id: WebhookTopic | int) -> WebhookSubscription:
        """Ask the API to send a test notification for a topic right away."""
        return operations.parse_webhook(await self._client.send(operations.build_send_webhook_test(topic_id)))
