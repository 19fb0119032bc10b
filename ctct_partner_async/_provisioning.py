"""Safe account creation: never a duplicate, never a lost account.

Account creation has no idempotency key. A timeout, a dropped connection or a 5xx after the request was
sent is ambiguous: the account may exist. The client retries such a create (see ``policy.decide``), and
if a retry then meets 409 (login name taken) *after an ambiguous attempt of the same call*, the account
is ours: the ``Reconciler`` finds its id in the account list and the result says ``reconciled``. A 409
with no earlier ambiguous attempt is a real conflict and raises ``ConflictError``. If the retries run
out after an ambiguous attempt, or a 2xx comes with an unreadable body, the list is searched once; an
account found is ``reconciled``, otherwise ``UnconfirmedCreateError`` says the outcome is unknown (never
"failed" for an account that may exist).

A 503 means the API stored the request and will create the account later: it is never resent. The
result says ``pending``; ``resolve`` waits for the account to appear in the list.

The list does not return login names, only ``site_owner_name`` (the account's user name) and
``organization_name``. An account is matched by ``site_owner_name`` equal to its login name (case
insensitive) and, when the new account names an organization, the same ``organization_name``: an
account someone else made under that login for another organization is never claimed.
One sweep of the list at a time serves every waiter (``SingleFlight``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

import attrs

from . import _errors as errors
from . import _operations as operations
from ._clock import Clock
from ._flight import SingleFlight
from ._models import AccountPage, AccountSummary, CreateResult, CreateStatus, NewAccount
from ._protocol import CallLog, Sender

__all__ = ["AccountIndex", "Reconciler", "create_account", "is_ambiguous", "resolve"]


def is_ambiguous(error: BaseException) -> bool:
    """Whether a failed create attempt may nonetheless have created the account."""
    if isinstance(error, errors.ServiceUnavailableError):
        return False
    return isinstance(error, errors.ResponseError | errors.ServerError)


@attrs.frozen
class AccountIndex:
    """The account list, indexed for matching."""

    by_owner: dict[str, AccountSummary]

    @classmethod
    def build(cls, accounts: Iterable[AccountSummary]) -> AccountIndex:
        return cls({acct.site_owner_name.lower(): acct for acct in accounts if acct.site_owner_name})

    def match(self, login_name: str, organization_name: str | None) -> AccountSummary | None:
        """The account created for ``login_name`` (and ``organization_name``, when given), if listed."""
        hit = self.by_owner.get(login_name.lower())
        if hit is not None and organization_name and hit.organization_name not in (None, organization_name):
            return None
        return hit


class Reconciler:
    """Finds accounts in the list, with one sweep at a time shared by every waiter."""

    def __init__(
        self, pages: Callable[[], AsyncIterator[AccountPage]], clock: Clock, *, interval: float = 2.0
    ):
        self._pages = pages
        self._clock = clock
        self._interval = interval
        self._sweep: SingleFlight[AccountIndex] = SingleFlight("account list sweep")
        self.sweeps = 0

    async def find(
        self, login_name: str, organization_name: str | None, *, wait: float
    ) -> AccountSummary | None:
        """The listed account made for ``login_name``, looking every ``interval`` for up to ``wait`` s."""
        deadline = self._clock.monotonic() + wait
        while True:
            index = await self.index(not_before=self._clock.monotonic())
            hit = index.match(login_name, organization_name)
            remaining = deadline - self._clock.monotonic()
            if hit is not None or remaining <= 0:
                return hit
            await self._clock.sleep(min(self._interval, remaining))

    async def index(self, *, not_before: float) -> AccountIndex:
        """An index from a sweep that started at ``not_before`` or later (joining one if it runs)."""
        while True:
            flight = self._sweep
            task = flight.running
            if task is None:
                self.sweeps += 1
                task = flight.start(self._read(), at=self._clock.monotonic())
            started = flight.started_at
            index = await flight.join(task)
            if started >= not_before:
                return index

    async def _read(self) -> AccountIndex:
        return AccountIndex.build([acct async for page in self._pages() for acct in page.accounts])

    async def aclose(self) -> None:
        """Cancel a sweep in flight and wait for it to end."""
        await self._sweep.close()


async def create_account(
    client: Sender,
    reconciler: Reconciler,
    account: NewAccount,
    *,
    previously_attempted: bool = False,
    reconcile_timeout: float = 30.0,
) -> CreateResult:
    """Create ``account`` safely; see the module docstring for the guarantees.

    ``previously_attempted`` says an earlier call may have sent this create already (a bulk job resuming
    after a crash): a 409 is then reconciled rather than reported.
    """
    log = CallLog()
    request = operations.build_create_account(account)
    try:
        response = await client.send(request, log=log)
        created = operations.parse_created_account(response)
    except errors.ConflictError:
        if not (previously_attempted or any(is_ambiguous(f) for f in log.errors)):
            raise
        return await _reconcile(reconciler, account, log.requests, reconcile_timeout)
    except errors.ServiceUnavailableError:
        return CreateResult(
            status=CreateStatus.PENDING,
            login_name=account.login_name,
            organization_name=account.organization_name,
            attempts=log.requests,
        )
    except errors.CtctError as exc:
        if not (isinstance(exc, errors.MalformedResponseError) or any(is_ambiguous(f) for f in log.errors)):
            raise
        return await _confirm(reconciler, account, log.requests, exc)
    return CreateResult(
        status=CreateStatus.CREATED,
        login_name=account.login_name,
        organization_name=account.organization_name,
        encoded_account_id=created.encoded_account_id,
        provision_uuid=created.provision_uuid,
        attempts=log.requests,
    )


async def _confirm(
    reconciler: Reconciler, account: NewAccount, attempts: int, error: errors.CtctError
) -> CreateResult:
    """After an ambiguous failure: the account if one look at the list shows it, else unknown."""
    try:
        return await _reconcile(reconciler, account, attempts, 0.0)
    except errors.CtctError:
        pass
    raise errors.UnconfirmedCreateError(
        f"creating {account.login_name!r} may have succeeded ({type(error).__name__}: {error}) but the "
        "account is not in the list yet; create it again with previously_attempted=True to reconcile"
    ) from error


async def _reconcile(reconciler: Reconciler, account: NewAccount, attempts: int, wait: float) -> CreateResult:
    hit = await reconciler.find(account.login_name, account.organization_name, wait=wait)
    if hit is None:
        raise errors.ConflictError(
            method="POST",
            url="partner/accounts",
            status=409,
            messages=[
                f"login name taken, and no listed account matches {account.login_name!r} after {wait}s"
            ],
        )
    return CreateResult(
        status=CreateStatus.RECONCILED,
        login_name=account.login_name,
        organization_name=account.organization_name,
        encoded_account_id=hit.encoded_account_id,
        attempts=attempts,
    )


async def resolve(reconciler: Reconciler, result: CreateResult, *, wait: float) -> CreateResult:
    """Wait up to ``wait`` seconds for a pending creation to show in the list; the result, resolved or not."""
    if result.status is not CreateStatus.PENDING:
        return result
    hit = await reconciler.find(result.login_name, result.organization_name, wait=wait)
    if hit is None:
        return result
    return attrs.evolve(
        result, status=CreateStatus.CREATED, encoded_account_id=hit.encoded_account_id, deferred=True
    )
