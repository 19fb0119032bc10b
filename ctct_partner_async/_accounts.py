"""``client.accounts``: create, list, plan changes, cancellation and acting on client accounts.

Every operation takes ``timeout=``: seconds each request it sends may take (each attempt, each page of a
list), in place of the client's ``Timeouts.total``; ``None``, the default, keeps the client's. A bad one
is a ``ValidationError`` before anything is sent.
"""

# ``timeout=`` on every operation is the API (as in openai-python): it bounds each request the operation
# sends, where the pipeline applies it; a caller's own ``asyncio.timeout`` bounds the whole call instead.
# ruff: noqa: ASYNC109

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from . import _errors as errors
from . import _operations as operations
from . import _provisioning as provisioning
from ._clock import SYSTEM_CLOCK, Clock
from ._models import (
    AccountOperation,
    AccountPage,
    AccountSummary,
    Cancellation,
    CancelReason,
    CreateResult,
    NewAccount,
    Plan,
    PlanChange,
    SsoUser,
    UnsubscribeRequest,
)
from ._observe import Observer
from ._protocol import CallLog, Request, Response, Sender

__all__ = ["Accounts"]


class Accounts:
    """Client accounts under the partner account."""

    def __init__(self, client: Sender, clock: Clock = SYSTEM_CLOCK) -> None:
        self._client = client
        self.clock = clock
        self.reconciler = provisioning.Reconciler(self._read_page, clock)
        self.observer: Observer | None = None
        """Hears each create as one operation (``telemetry.instrument`` sets it)."""

    async def aclose(self) -> None:
        """Cancel an account-list sweep in flight (the client calls this when it closes)."""
        await self.reconciler.aclose()

    async def pages(
        self, *, account_type: str = "all", page_size: int = 50, timeout: float | None = None
    ) -> AsyncGenerator[AccountPage, None]:
        """Every page of the account list, following ``_links.next.href`` to the end.

        ``MalformedResponseError`` if a page links to one already read or the list goes on past
        ``MAX_PAGES`` pages (it would never end).
        """
        request: Request | None = operations.build_list_accounts(
            account_type=account_type, page_size=page_size
        )
        seen: set[str] = set()
        while request is not None:
            page = operations.parse_account_page(await self._client.send(request, timeout=timeout))
            yield page
            href = page.next_href
            if href is None:
                return
            if href in seen:
                raise errors.MalformedResponseError(
                    f"the account list links back to a page already read after {len(seen) + 1} pages"
                )
            if len(seen) + 1 >= provisioning.MAX_PAGES:
                raise errors.MalformedResponseError(
                    f"the account list did not end within {provisioning.MAX_PAGES} pages"
                )
            seen.add(href)
            request = _next_page(href)

    async def _read_page(self, href: str | None, until: float) -> AccountPage:
        """One page for the reconciler, the first (``href`` None) or a next one; retries end at ``until``."""
        request = operations.build_list_accounts() if href is None else _next_page(href)
        return operations.parse_account_page(await self._client.send(request, until=until))

    async def list(
        self, *, account_type: str = "all", page_size: int = 50, timeout: float | None = None
    ) -> AsyncIterator[AccountSummary]:
        """Every client account (``all``, ``managed`` or ``unmanaged``), page by page (10..50 a page)."""
        async for page in self.pages(account_type=account_type, page_size=page_size, timeout=timeout):
            for account in page.accounts:
                yield account

    def create(
        self,
        account: NewAccount,
        *,
        previously_attempted: bool = False,
        reconcile_timeout: float = 30.0,
        adopt_existing: bool = False,
        on_sent: Callable[[], None] | None = None,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, CreateResult]:
        """Create a client account; it starts as a 60-day trial (plan ``TRIAL``, status ``Trial``).

        Never creates a duplicate and never reports an account that exists as failed: the result is
        ``created``, ``reconciled`` (an earlier ambiguous attempt of this call created it; its id is
        looked up), ``adopted`` (``adopt_existing``: the login name was taken by a listed account that
        matches this one) or ``pending`` (the API stored the request with a 503; see ``resolve``). Any
        other outcome raises: ``ConflictError`` for a login name that is someone else's,
        ``UnconfirmedCreateError`` when the account may exist but can't be found yet. Set
        ``previously_attempted`` when an earlier run may have sent this create. ``reconcile_timeout``
        bounds every look at the account list, sweeps included. ``on_sent`` is called just before the
        request is first handed to the transport (where a journal records that it may have been received).
        ``timeout`` bounds each attempt of the create request; the looks at the list are bounded by
        ``reconcile_timeout`` alone.

        (A plain function returning the coroutine: one await level less on the hot path.)
        """
        return provisioning.create_account(
            self._client if timeout is None else _Timed(self._client, timeout),
            self.reconciler,
            account,
            previously_attempted=previously_attempted,
            reconcile_timeout=reconcile_timeout,
            adopt_existing=adopt_existing,
            on_sent=on_sent,
            observer=self.observer,
        )

    async def resolve(self, result: CreateResult, *, wait: float = 60.0) -> CreateResult:
        """Wait up to ``wait`` seconds for a ``pending`` creation to appear; other results pass through.

        No ``timeout``: ``wait`` bounds the whole look, and the list is read by sweeps that every caller
        waiting for an account shares, so one caller's timeout can't bound their requests.
        ``ConflictError`` if another organization's account holds the login name; ``UnconfirmedCreateError``
        if the list could not be read to its end.
        """
        return await provisioning.resolve(self.reconciler, result, wait=wait)

    async def get_plan(self, account_id: str, *, timeout: float | None = None) -> Plan:
        """The account's billing plan, tiers and status."""
        response = await self._client.send(operations.build_get_plan(account_id), timeout=timeout)
        return operations.parse_plan(response)

    async def update_plan(
        self,
        account_id: str,
        *,
        plan_type: str,
        billing_day_of_month: int | None = None,
        plan_group_id: int | None = None,
        timeout: float | None = None,
    ) -> Plan:
        """Change the billing plan. ``billing_day_of_month`` only counts on the move off ``TRIAL``."""
        change = PlanChange(
            plan_type=plan_type, billing_day_of_month=billing_day_of_month, plan_group_id=plan_group_id
        )
        request = operations.build_update_plan(account_id, change)
        return operations.parse_plan(await self._client.send(request, timeout=timeout))

    async def reactivate(
        self,
        account_id: str,
        *,
        plan_type: str,
        plan_group_id: int | None = None,
        timeout: float | None = None,
    ) -> Plan:
        """Reopen a canceled account by moving it to a paid (non-``TRIAL``) plan."""
        return await self.update_plan(
            account_id, plan_type=plan_type, plan_group_id=plan_group_id, timeout=timeout
        )

    async def cancel(
        self,
        account_id: str,
        *,
        reason: CancelReason | int | None = None,
        effective_date: dt.datetime | None = None,
        timeout: float | None = None,
    ) -> Cancellation:
        """Cancel the account, now or at ``effective_date`` (timezone-aware)."""
        request = operations.build_cancel(
            account_id, Cancellation(reason_id=reason, effective_date=effective_date)
        )
        return operations.parse_cancellation(await self._client.send(request, timeout=timeout))

    async def operate(
        self,
        account_id: str,
        method: str,
        url: str,
        *,
        path_params: Mapping[str, str] | None = None,
        query_params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        payload: str | Mapping[str, Any] | Sequence[Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Make a v3 call on behalf of the client account and return its JSON answer.

        ``url`` keeps its parameter names (``/contacts/{contact_id}``) and ``path_params`` fills them.
        A ``payload`` that isn't a string is JSON-encoded, as the API wants the inner body as a string.
        """
        operation = AccountOperation(
            method=method.upper(),
            url=url,
            payload=payload if payload is None or isinstance(payload, str) else json.dumps(payload),
            path_params=dict(path_params or {}),
            query_params=dict(query_params or {}),
            headers=dict(headers or {}),
        )
        response = await self._client.send(operations.build_operate(account_id, operation), timeout=timeout)
        return operations.parse_operation_result(response)

    async def create_sso_user(self, account_id: str, user: SsoUser, *, timeout: float | None = None) -> None:
        """Add a user to an SSO-enabled client account."""
        await self._client.send(operations.build_create_sso_user(account_id, user), timeout=timeout)

    async def unsubscribe_contacts(
        self,
        account_id: str,
        email_addresses: Sequence[str],
        *,
        update_source: str = "Account",
        opt_out_reason: str | None = None,
        delete_contacts: bool | None = None,
        global_unsubscribe: bool | None = None,
        timeout: float | None = None,
    ) -> int:
        """Unsubscribe up to 500 contacts; returns how many were unsubscribed."""
        request = UnsubscribeRequest(
            email_addresses=list(email_addresses),
            update_source=update_source,
            opt_out_reason=opt_out_reason,
            delete_contacts=delete_contacts,
            global_unsubscribe=global_unsubscribe,
        )
        built = operations.build_unsubscribe_contacts(account_id, request)
        return operations.parse_unsubscribe_result(
            await self._client.send(built, timeout=timeout)
        ).unsubscribed_count


class _Timed:
    """A ``Sender`` that gives every request a ``timeout`` (for ``create``, whose requests are sent by
    ``_provisioning``). The timeout is checked by the client's ``send``, before anything is sent."""

    __slots__ = ("_sender", "_timeout")

    def __init__(self, sender: Sender, timeout: float) -> None:
        self._sender = sender
        self._timeout = timeout

    def send(
        self,
        request: Request,
        *,
        log: CallLog | None = None,
        until: float | None = None,
        timeout: float | None = None,
    ) -> Awaitable[Response]:
        return self._sender.send(
            request, log=log, until=until, timeout=self._timeout if timeout is None else timeout
        )


def _next_page(href: str) -> Request:
    """The request for a ``next`` link; ``MalformedResponseError`` if the server's link leaves the host."""
    try:
        return operations.build_list_accounts_next(href)
    except errors.ValidationError:
        raise errors.MalformedResponseError(
            "the account list's next link is not a path on the API host"
        ) from None
