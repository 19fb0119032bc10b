"""v3 partner webhook subscriptions: four topics, at most one callback URI each.

Choices where the spec is silent: a topic id other than 1..4 (or not a number) is a 404; the collection
lists all four topics and carries ``hook_uri`` only on subscribed ones (the schema has no null);
``DELETE`` of an unsubscribed topic is a 204 too (idempotent); a test send on an unsubscribed topic is a
400 (there is no callback URI to send to). Nothing is ever delivered: test sends are only counted.
"""

from __future__ import annotations

from .pipeline import Call, Route, reader, writer
from .replies import Reply, invalid, not_found
from .state import Sandbox
from .validation import check_hook

TOPICS = {
    1: ("Billing Tier Upgrade", "Executes when an account's billing tier is upgraded."),
    2: ("Billing Tier Downgrade", "Executes when an account's billing tier is downgraded."),
    3: ("Account Cancelled", "Executes when an account is cancelled."),
    4: ("Account Disabled", "Executes when an account is disabled."),
}


def topic_view(sandbox: Sandbox, topic_id: int) -> dict[str, object]:
    """``{topic_id, hook_uri?, topic_name, topic_description}``."""
    name, description = TOPICS[topic_id]
    view: dict[str, object] = {"topic_id": topic_id}
    uri = sandbox.webhooks.get(topic_id)
    if uri is not None:
        view["hook_uri"] = uri
    view["topic_name"] = name
    view["topic_description"] = description
    return view


def require_topic(call: Call) -> int:
    """The topic id of the path, or a 404."""
    raw = call.params["topic_id"]
    topic = int(raw) if raw.isdigit() else 0
    if topic not in TOPICS:
        raise not_found(f"Webhook topic {raw}")
    return topic


def list_topics(sandbox: Sandbox, call: Call) -> Reply:
    """``GET /partner/webhooks/subscriptions``."""
    return Reply(200, [topic_view(sandbox, topic) for topic in TOPICS])


def get_topic(sandbox: Sandbox, call: Call) -> Reply:
    """``GET .../subscriptions/{topic_id}``."""
    return Reply(200, topic_view(sandbox, require_topic(call)))


def subscribe(sandbox: Sandbox, call: Call) -> Reply:
    """``PUT .../subscriptions/{topic_id}``: subscribe or change the callback URI."""
    topic = require_topic(call)
    body = call.checked(check_hook)
    sandbox.webhooks[topic] = str(body["hook_uri"])
    return Reply(200, {"topic_id": topic, "hook_uri": sandbox.webhooks[topic]})


def unsubscribe(sandbox: Sandbox, call: Call) -> Reply:
    """``DELETE .../subscriptions/{topic_id}``: 204."""
    sandbox.webhooks.pop(require_topic(call), None)
    return Reply(204)


def test_send(sandbox: Sandbox, call: Call) -> Reply:
    """``POST .../subscriptions/{topic_id}/tests``: 201 with the topic, 400 if not subscribed."""
    topic = require_topic(call)
    if topic not in sandbox.webhooks:
        raise invalid([f"Webhook topic {topic} has no subscription to send a test to"])
    sandbox.ledger.counts["webhook_tests"] += 1
    return Reply(201, topic_view(sandbox, topic))


_TOPIC = "/partner/webhooks/subscriptions/{topic_id}"
ROUTES: list[Route] = [
    ("GET", "/partner/webhooks/subscriptions", reader("list_webhooks", list_topics)),
    ("GET", _TOPIC, reader("get_webhook", get_topic)),
    ("PUT", _TOPIC, writer("subscribe_webhook", subscribe)),
    ("DELETE", _TOPIC, writer("unsubscribe_webhook", unsubscribe, body="none")),
    ("POST", f"{_TOPIC}/tests", writer("test_webhook", test_send, body="none")),
]
