"""The :class:`Sandbox`: all the state of one emulator and the introspection tests assert against.

Everything is single-threaded on the event loop: handlers are synchronous between awaits, so no locks.
"""

from __future__ import annotations

from .config import SandboxConfig
from .faults import FaultInjector
from .ledger import Ledger, LogEntry
from .limits import KeyLimiter, TokenBucket
from .outbox import Outbox
from .store import Account, AccountStore
from .tokens import TokenIssuer
from .validation import LOGIN_NAME


class Sandbox:
    """State of one sandbox: accounts, webhooks, tokens, limits, faults, counters and the request log."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.faults = config.faults.copy()
        self.injector = FaultInjector(self.faults, config.seed)
        self.tokens = TokenIssuer()
        self.ledger = Ledger(config.request_log_size)
        self.outbox = Outbox(config, self.ledger, self.injector)
        self._fresh_state()

    def _fresh_state(self) -> None:
        config = self.config
        self.store = AccountStore(config.seed, config.list_order)
        self.store.seed(config.existing_accounts, self.clock())
        self.webhooks: dict[int, str] = {}
        self.outbox.clear()
        self.limiter = KeyLimiter(config.rate_limit, config.daily_quota)
        self.token_buckets: dict[str, TokenBucket] = {}

    # -- the request path -------------------------------------------------------------------------------
    def begin_api_request(self) -> float:
        """Read the clock, carry out due deferred creates, count the request; return the time."""
        now = self.clock()
        if self.store.pending:
            self._settle(now)
        self.ledger.counts["api_requests"] += 1
        return now

    def _settle(self, now: float) -> None:
        created, dropped = self.store.settle(now)
        self.ledger.counts["deferred_created"] += created
        self.ledger.counts["deferred_dropped"] += dropped

    def token_bucket(self, client_id: str) -> TokenBucket:
        """The token endpoint's limiter for one client."""
        bucket = self.token_buckets.get(client_id)
        if bucket is None:
            bucket = self.token_buckets[client_id] = TokenBucket(self.config.token_rate_limit)
        return bucket

    # -- introspection ----------------------------------------------------------------------------------
    def settle(self) -> None:
        """Carry out the deferred creates that are due by the clock."""
        if self.store.pending:
            self._settle(self.clock())

    def accounts(self) -> list[dict[str, object]]:
        """Every account in creation order, with everything known about it (never a password)."""
        self.settle()
        return [account.admin_view() for account in self.store]

    def account(self, encoded_account_id: str) -> dict[str, object] | None:
        """One account's admin view, if it exists."""
        self.settle()
        found = self.store.get(encoded_account_id)
        return None if found is None else found.admin_view()

    def webhook_subscriptions(self) -> dict[str, str]:
        """Subscribed topic ids (as strings) and their callback URIs."""
        return {str(topic): uri for topic, uri in sorted(self.webhooks.items())}

    def notify(self, topic_id: int, event_type: str, url: str, *, test: bool = False) -> bool:
        """Deliver ``event_type`` for ``url`` if ``topic_id`` is subscribed; whether it is."""
        hook_uri = self.webhooks.get(topic_id)
        if hook_uri is None:
            return False
        self.outbox.enqueue(topic_id, event_type, url, hook_uri, test=test)
        return True

    def deliveries(self) -> list[dict[str, object]]:
        """Every webhook delivery with its attempts, oldest first (never the body's API key)."""
        return self.outbox.views()

    def stats(self) -> dict[str, object]:
        """Counters: requests, statuses, operations, faults, creates and tokens."""
        self.settle()
        ledger = self.ledger
        counts = ledger.counts
        return {
            "token_requests": counts["token_requests"],
            "tokens_issued": counts["tokens_issued"],
            "tokens_active": self.tokens.active,
            "token_responses_by_status": dict(ledger.token_statuses),
            "api_requests": counts["api_requests"],
            "responses_by_status": dict(ledger.statuses),
            "requests_by_operation": {k: v for k, v in ledger.operations.items() if k != "token"},
            "faults_injected": dict(ledger.faults),
            "creates_attempted": ledger.operations["create_account"],
            "creates_committed": counts["creates_committed"],
            "creates_deferred": counts["creates_deferred"],
            "deferred_pending": self.store.pending,
            "deferred_created": counts["deferred_created"],
            "deferred_dropped": counts["deferred_dropped"],
            "connections_dropped": ledger.statuses["dropped"],
            "webhook_tests": counts["webhook_tests"],
            "webhook_events": counts["webhook_events"],
            "webhook_attempts": counts["webhook_attempts"],
            "webhooks_delivered": counts["webhooks_delivered"],
            "accounts": len(self.store),
            "quota_used_today": self.limiter.used_today,
        }

    def request_log(self) -> list[LogEntry]:
        """The request log, oldest first (bounded by ``request_log_size``)."""
        return self.ledger.entries()

    # -- control ----------------------------------------------------------------------------------------
    def revoke_tokens(self) -> int:
        """Revoke every issued token (API calls with them get 401); return how many."""
        return self.tokens.revoke_all()

    def reset(self) -> None:
        """Back to a fresh start: no accounts, webhooks, deliveries, deferred creates, counters or log;
        faults and limits as configured; the fault and id generators reseeded. Issued tokens stay valid
        (use :meth:`revoke_tokens` for that), so a client need not hit the token endpoint again."""
        self._fresh_state()
        self.ledger.clear()
        self.faults.assign(self.config.faults)
        self.injector.reseed(self.config.seed)

    def seed_account(self, login_name: str, **fields: object) -> dict[str, object]:
        """Create an account directly (no API call, no faults, not counted). ``ValueError`` if the login
        name is malformed or an account holds it; a pending deferred create does not block it (the
        deferred create is then dropped when it comes due)."""
        if not LOGIN_NAME.fullmatch(login_name):
            raise ValueError(f"bad login_name {login_name!r}")
        if self.store.account_holds(login_name):
            raise ValueError(f"login_name {login_name!r} is taken")
        body = {"contact_email": f"{login_name}@example.com", "country_code": "US", **fields}
        account = self.store.create({**body, "login_name": login_name}, self.clock())
        return account.admin_view()

    def find(self, encoded_account_id: str) -> Account | None:
        """The live account record (for handlers)."""
        return self.store.get(encoded_account_id)
