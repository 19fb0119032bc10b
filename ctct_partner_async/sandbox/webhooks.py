"""v3 partner webhook subscriptions: four topics, at most one callback URI each.

Choices where the spec is silent: a topic id other than 1..4 (or not a number) is a 404; the collection
lists all four topics and carries ``hook_uri`` only on subscribed ones (the schema has no null);
``DELETE`` of an unsubscribed topic is a 204 too (idempotent); a test send on an unsubscribed topic is a
400 (there is no callback URI to send to). A hook URI is https, or http on a loopback host (for a local
receiver; the real API wants https).

Events (:func:`plan_changed`, :func:`canceled`) and test sends are delivered by the :mod:`.outbox`: a
plan change to a dearer plan is topic 1 ``tier.increase``, to a cheaper one topic 2 ``tier.decrease``
(the same price, as on a reactivation: none), a cancel topic 3 ``account.cancel``. A test send delivers
its topic's event type for the first account (``a0000test0000`` when there is none).
"""

from __future__ import annotations

from . import plans
from .pipeline import Call, Route, reader, writer
from .replies import Reply, invalid, not_found
from .state import Sandbox
from .store import Account
from .validation import check_hook

TOPICS = {
    1: ("Billing Tier Upgrade", "Executes when an account's billing tier is upgraded."),
    2: ("Billing Tier Downgrade", "Executes when an account's billing tier is downgraded."),
    3: ("Account Cancelled", "Executes when an account is cancelled."),
    4: ("Account Disabled", "Executes when an account is disabled."),
}

EVENT_TYPES = {1: "tier.increase", 2: "tier.decrease", 3: "account.cancel", 4: "account.disable"}
TEST_ACCOUNT = "a0000test0000"


def plan_url(call: Call, account_id: str) -> str:
    """The pointer a notification carries: this sandbox's v3 plan URL of the account."""
    return f"{call.request.url.origin()}/v3/partner/accounts/{account_id}/plan"


def plan_changed(sandbox: Sandbox, call: Call, account: Account, old_plan: str) -> None:
    """Topic 1 or 2 when the change moved the account to a dearer or cheaper plan."""
    old, new = plans.price(old_plan), plans.price(account.plan_type)
    if new != old:
        topic = 1 if new > old else 2
        sandbox.notify(topic, EVENT_TYPES[topic], plan_url(call, account.encoded_account_id))


def canceled(sandbox: Sandbox, call: Call, account: Account) -> None:
    """Topic 3."""
    sandbox.notify(3, EVENT_TYPES[3], plan_url(call, account.encoded_account_id))


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
    first = next(iter(sandbox.store), None)
    account_id = first.encoded_account_id if first is not None else TEST_ACCOUNT
    sandbox.notify(topic, EVENT_TYPES[topic], plan_url(call, account_id), test=True)
    return Reply(201, topic_view(sandbox, topic))


_TOPIC = "/partner/webhooks/subscriptions/{topic_id}"
ROUTES: list[Route] = [
    ("GET", "/partner/webhooks/subscriptions", reader("list_webhooks", list_topics)),
    ("GET", _TOPIC, reader("get_webhook", get_topic)),
    ("PUT", _TOPIC, writer("subscribe_webhook", subscribe)),
    ("DELETE", _TOPIC, writer("unsubscribe_webhook", unsubscribe, body="none")),
    ("POST", f"{_TOPIC}/tests", writer("test_webhook", test_send, body="none")),
]
