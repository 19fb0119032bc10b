"""Safe account creation: never a duplicate, never a lost account, never a stranger's account.

Account creation has no idempotency key. A timeout, a dropped connection or a 5xx after the request was
sent is ambiguous: the account may exist. The client retries such a create (see ``policy.decide``), and
if a retry then meets 409 (login name taken) *after an ambiguous attempt of the same call* (or of an
earlier run: ``previously_attempted``), the ``Reconciler`` looks for the account in the list: found, the
result says ``reconciled``. A 409 with no earlier ambiguous attempt is a real conflict and raises
``ConflictError`` (with ``adopt_existing``, a matching listed account is ``adopted`` instead). If the
retries run out after an ambiguous attempt, or a 2xx comes with an unreadable body, the list is searched
once. Whenever the outcome can't be known yet (the account is not listed yet, the list could not be read
to its end), ``UnconfirmedCreateError`` says so: never "failed" for an account that may exist.

A 503 means the API stored the request and will create the account later: it is never resent. The
result says ``pending``; ``resolve`` waits for the account to appear in the list.

**The matching rule.** The list does not return login names, only ``site_owner_name`` (the account's user
name) and ``organization_name``. A listed account is the row's when its user name equals the login name
(case-insensitively, as the API compares login names) *and* its organization equals the row's, where a
missing or blank organization equals only a missing or blank one (names are compared exactly, after
trimming spaces). A listed account with the login name but another organization is proof that the login
belongs to someone else: ``ConflictError``, never a claim.

**Bounds.** A sweep of the list is shared by every waiter (``SingleFlight``) and stops at a repeated
page link, after ``max_pages`` pages, and when the latest deadline of its waiters has passed; a sweep cut
short gives an incomplete index, and a lookup that found nothing in an incomplete index is unconfirmed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Iterable

import attrs

from . import _errors as errors
from . import _operations as operations
from ._clock import Clock
from ._flight import SingleFlight
from ._models import AccountPage, AccountSummary, CreateResult, CreateStatus, NewAccount
from ._protocol import CallLog, Sender

__all__ = ["AccountIndex", "Reconciler", "create_account", "is_ambiguous", "resolve", "same_organization"]

MAX_PAGES = 10_000
"""A sweep reads at most this many pages (500,000 accounts at 50 a page)."""


def is_ambiguous(error: BaseException) -> bool:
    """Whether a failed create attempt may nonetheless have created the account."""
    if isinstance(error, errors.ServiceUnavailableError):
        return False
    return isinstance(error, errors.ResponseError | errors.ServerError)


def _organization(name: str | None) -> str | None:
    return (name or "").strip() or None


def same_organization(listed: str | None, wanted: str | None) -> bool:
    """The matching rule's organization half: exact after trimming, and "none" equals only "none"."""
    return _organization(listed) == _organization(wanted)


@attrs.frozen
class AccountIndex:
    """The account list, indexed by user name; ``problem`` says why it may be incomplete."""

    by_owner: dict[str, AccountSummary]
    problem: str | None = None

    @classmethod
    def build(cls, accounts: Iterable[AccountSummary], problem: str | None = None) -> AccountIndex:
        return cls({acct.site_owner_name.lower(): acct for acct in accounts if acct.site_owner_name}, problem)

    @property
    def complete(self) -> bool:
        return self.problem is None

    def match(self, login_name: str, organization_name: str | None) -> AccountSummary | None:
        """The account created for ``login_name`` and ``organization_name`` (the matching rule), if listed.

        ``ConflictError`` if the login name is listed under another organization.
        """
        hit = self.by_owner.get(login_name.lower())
        if hit is None:
            return None
        if not same_organization(hit.organization_name, organization_name):
            raise _held_elsewhere(login_name)
        return hit


class Reconciler:
    """Finds accounts in the list, with one bounded sweep at a time shared by every waiter."""

    def __init__(
        self,
        pages: Callable[[], AsyncGenerator[AccountPage, None]],
        clock: Clock,
        *,
        interval: float = 2.0,
        max_pages: int = MAX_PAGES,
        min_timeout: float = 30.0,
    ):
        self._pages = pages
        self._clock = clock
        self._interval = interval
        self._max_pages = max_pages
        self._min_timeout = min_timeout
        self._sweep: SingleFlight[AccountIndex] = SingleFlight("account list sweep")
        self._sweep_deadline = -float("inf")
        self.sweeps = 0

    async def find(
        self, login_name: str, organization_name: str | None, *, wait: float, within: float | None = None
    ) -> AccountSummary | None:
        """The listed account made for the row, looking every ``interval`` for up to ``wait`` seconds.

        The whole lookup, sweeps included, ends ``within`` seconds (default: ``wait``, at least
        ``min_timeout`` so one sweep can finish). ``None`` if no account matches after ``wait``;
        ``ConflictError`` if another organization's account holds the login name;
        ``UnconfirmedCreateError`` if nothing matched and the list could not be read to its end.
        """
        now = self._clock.monotonic()
        look_until = now + wait
        deadline = now + (max(wait, self._min_timeout) if within is None else max(wait, within))
        while True:
            index = await self.index(not_before=self._clock.monotonic(), deadline=deadline)
            hit = index.match(login_name, organization_name)
            if hit is not None:
                return hit
            now = self._clock.monotonic()
            if now < look_until and now < deadline:
                await self._clock.sleep(min(self._interval, look_until - now))
                now = self._clock.monotonic()
            if now >= look_until or now >= deadline:  # a sweep starts only while there is time to look
                if index.problem is not None:
                    raise errors.UnconfirmedCreateError(
                        f"the account list was not read to its end ({index.problem})"
                    )
                return None

    async def index(self, *, not_before: float, deadline: float) -> AccountIndex:
        """An index from a sweep that started at ``not_before`` or later (joining one if it runs); the
        sweep stops once ``deadline`` (and every other waiter's) has passed."""
        while True:
            flight = self._sweep
            task = flight.running
            if task is None:
                self.sweeps += 1
                self._sweep_deadline = deadline
                task = flight.start(self._read(), at=self._clock.monotonic())
            else:
                self._sweep_deadline = max(self._sweep_deadline, deadline)
            started = flight.started_at
            index = await flight.join(task)
            if started >= not_before or self._clock.monotonic() >= deadline:
                return index

    async def _read(self) -> AccountIndex:
        accounts: list[AccountSummary] = []
        problem: str | None = None
        pages = 0
        try:
            async with contextlib.aclosing(self._pages()) as stream:
                async for page in stream:
                    accounts.extend(page.accounts)
                    pages += 1
                    if pages >= self._max_pages and page.next_href is not None:
                        problem = f"it did not end within {self._max_pages} pages"
                        break
                    if page.next_href is not None and self._clock.monotonic() >= self._sweep_deadline:
                        problem = f"the wait ran out after {pages} pages"
                        break
        except errors.MalformedResponseError as exc:
            problem = str(exc)
        return AccountIndex.build(accounts, problem)

    async def aclose(self) -> None:
        """Cancel a sweep in flight and wait for it to end."""
        await self._sweep.close()


def _held_elsewhere(login_name: str) -> errors.ConflictError:
    return errors.ConflictError(
        method="POST",
        url="partner/accounts",
        status=409,
        messages=[f"the login name {login_name!r} is held by a listed account of another organization"],
    )


def _result(status: CreateStatus, account: NewAccount, attempts: int, account_id: str | None) -> CreateResult:
    return CreateResult(
        status=status,
        login_name=account.login_name,
        organization_name=account.organization_name,
        encoded_account_id=account_id,
        attempts=attempts,
    )


async def create_account(
    client: Sender,
    reconciler: Reconciler,
    account: NewAccount,
    *,
    previously_attempted: bool = False,
    reconcile_timeout: float = 30.0,
    adopt_existing: bool = False,
    on_sent: Callable[[], None] | None = None,
) -> CreateResult:
    """Create ``account`` safely; see the module docstring for the guarantees.

    ``previously_attempted`` says an earlier call may have sent this create already (a bulk job resuming
    after a crash): a 409 is then reconciled rather than reported. ``on_sent`` is called just before the
    request is first handed to the transport.
    """
    log = CallLog(on_sent)
    request = operations.build_create_account(account)
    try:
        response = await client.send(request, log=log)
        created = operations.parse_created_account(response)
    except errors.ConflictError:
        if previously_attempted or any(is_ambiguous(f) for f in log.errors):
            return await _reconcile(reconciler, account, log.requests, reconcile_timeout)
        if adopt_existing:
            return await _adopt(reconciler, account, log.requests, reconcile_timeout)
        raise
    except errors.ServiceUnavailableError:
        return _result(CreateStatus.PENDING, account, log.requests, None)
    except errors.CtctError as exc:
        ambiguous = previously_attempted or any(is_ambiguous(f) for f in log.errors)
        if not (ambiguous or isinstance(exc, errors.MalformedResponseError)):
            raise
        return await _confirm(reconciler, account, log.requests, exc, reconcile_timeout)
    return CreateResult(
        status=CreateStatus.CREATED,
        login_name=account.login_name,
        organization_name=account.organization_name,
        encoded_account_id=created.encoded_account_id,
        provision_uuid=created.provision_uuid,
        attempts=log.requests,
    )


async def _confirm(
    reconciler: Reconciler, account: NewAccount, attempts: int, error: errors.CtctError, within: float
) -> CreateResult:
    """After an ambiguous failure: the account if one look at the list shows it, else unknown."""
    try:
        hit = await reconciler.find(account.login_name, account.organization_name, wait=0.0, within=within)
    except (errors.ConflictError, errors.ClientClosedError):
        raise  # another organization holds the login name: this create never made an account
    except errors.CtctError as exc:
        reason = _lookup_failure(exc)
    else:
        if hit is not None:
            return _result(CreateStatus.RECONCILED, account, attempts, hit.encoded_account_id)
        reason = "the account is not in the list yet"
    raise errors.UnconfirmedCreateError(
        f"creating {account.login_name!r} may have succeeded ({type(error).__name__}: {error}); {reason}. "
        "Create it again with previously_attempted=True to reconcile"
    ) from error


def _lookup_failure(exc: errors.CtctError) -> str:
    if isinstance(exc, errors.UnconfirmedCreateError):
        return str(exc)
    return f"the account list could not be searched ({type(exc).__name__}: {exc})"


async def _reconcile(reconciler: Reconciler, account: NewAccount, attempts: int, wait: float) -> CreateResult:
    """A 409 after an attempt that may have landed: ours if the list shows it, by the matching rule."""
    cause: errors.CtctError | None = None
    try:
        hit = await reconciler.find(account.login_name, account.organization_name, wait=wait, within=wait)
    except (errors.ConflictError, errors.ClientClosedError):
        raise
    except errors.CtctError as exc:
        reason, cause = _lookup_failure(exc), exc
    else:
        if hit is not None:
            return _result(CreateStatus.RECONCILED, account, attempts, hit.encoded_account_id)
        reason = f"no listed account matches it after {wait:g}s (the list may lag)"
    raise errors.UnconfirmedCreateError(
        f"the login name {account.login_name!r} is taken, perhaps by an earlier attempt of ours; {reason}; "
        "run again to settle it"
    ) from cause


async def _adopt(reconciler: Reconciler, account: NewAccount, attempts: int, within: float) -> CreateResult:
    """A plain 409 with ``adopt_existing``: the listed account that matches the row, or the conflict."""
    hit = await reconciler.find(account.login_name, account.organization_name, wait=0.0, within=within)
    if hit is None:
        raise errors.ConflictError(
            method="POST",
            url="partner/accounts",
            status=409,
            messages=[
                f"the login name {account.login_name!r} is taken and no listed account matches the row"
            ],
        )
    return _result(CreateStatus.ADOPTED, account, attempts, hit.encoded_account_id)


async def resolve(reconciler: Reconciler, result: CreateResult, *, wait: float) -> CreateResult:
    """Wait up to ``wait`` seconds for a pending creation to show in the list; the result, resolved or not.

    ``ConflictError`` if another organization's account holds the login name (the stored request can
    never become an account); ``UnconfirmedCreateError`` if the list could not be read to its end.
    """
    if result.status is not CreateStatus.PENDING:
        return result
    hit = await reconciler.find(result.login_name, result.organization_name, wait=wait)
    if hit is None:
        return result
    return attrs.evolve(
        result, status=CreateStatus.CREATED, encoded_account_id=hit.encoded_account_id, deferred=True
    )
