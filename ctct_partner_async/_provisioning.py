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

**The index.** The reconciler keeps every account it has read (``Reconciler.index``) and the href of the
list's last page. A look first reads the *tail*: that last page again and any page after it, where
accounts created since are appended (in the sandbox, as the docs' offsets suggest), so a later look
costs a page or two instead of the whole list. Only a full sweep proves an account absent: a look that
must answer "not there" (its last one) and did not find the account in the tail reads the whole list,
once, and a cold reconciler's first look is a full sweep that learns the tail. Correctness never depends
on the order: in any other order the tail misses, full sweeps happen again, and only the cost rises.

**Bounds.** One sweep of the list at a time is shared by every waiter. A waiter sees each page as it
arrives (a match ends its wait at once) and leaves at its own deadline, at the first page boundary after
it; ``reconcile_timeout`` is a create's deadline for every look at the list. A sweep stops when nobody
waits on it any more, at a page that links back to one already read and after ``MAX_PAGES``; a page's
retries end at the latest deadline of its waiters. A look that found nothing in a sweep cut short is
unconfirmed, never "not there".
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import attrs

from . import _errors as errors
from . import _operations as operations
from ._clock import Clock
from ._models import AccountPage, AccountSummary, CreateResult, CreateStatus, NewAccount
from ._observe import Observer, Sweep
from ._protocol import CallLog, Sender

__all__ = [
    "AccountIndex",
    "Reconciler",
    "check_seconds",
    "create_account",
    "is_ambiguous",
    "resolve",
    "same_organization",
]

UNREADABLE_LIST = (errors.QuotaExceededError, errors.AuthenticationError, errors.WrongEventLoopError)
"""Errors after which the account list can't be read either."""

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


@attrs.define
class AccountIndex:
    """The account list as far as it was read, by user name, and where a read of its tail starts:
    ``tail``, the href of the last page read if it was the list's last, else of the first page not read
    yet (``None``: the first page, so a full sweep)."""

    by_owner: dict[str, AccountSummary] = attrs.Factory(dict)
    tail: str | None = None

    def accounts(self) -> list[AccountSummary]:
        """Every account read so far."""
        return list(self.by_owner.values())

    def add(self, accounts: Iterable[AccountSummary]) -> None:
        for acct in accounts:
            if acct.site_owner_name:
                self.by_owner[acct.site_owner_name.lower()] = acct

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


ReadPage = Callable[[str | None, float], Awaitable[AccountPage]]
"""Reads one page of the list: the first (``None``) or the one at a ``next`` href, retrying until a time."""


class _Sweep:
    """One read of the list, shared: from the first page (``full``) or from the tail, who waits on it,
    and when it ended; ``problem`` says why it may have stopped before the end."""

    __slots__ = ("changed", "deadlines", "done", "error", "full", "number", "observed", "pages", "problem",
                 "task")  # fmt: skip

    def __init__(self, number: int, full: bool) -> None:
        self.number = number
        self.full = full
        self.problem: str | None = None
        self.pages = 0
        self.done = False
        self.error: BaseException | None = None
        self.changed = asyncio.Event()
        self.deadlines: Counter[float] = Counter()
        self.task: asyncio.Task[None] | None = None
        self.observed: Sweep | None = None  # the observer's view of it, if one is installed

    def notify(self) -> None:
        """Wake every waiter (a page was read, or the sweep ended)."""
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def first_deadline(self, now: float) -> float:
        """The earliest deadline of those still waiting (``now`` if nobody waits)."""
        return min(self.deadlines, default=now)


class Reconciler:
    """Finds accounts in the list, with one bounded sweep at a time shared by every waiter.

    A waiter sees the accounts as each page arrives (a match ends its wait at once) and leaves at its
    own deadline: a page's retries end at the earliest deadline of the waiters, who are then woken (and
    those whose time is up leave), and the page is tried again for the others. The sweep goes on while
    anyone waits, and stops when nobody does, at a page that links back, or after ``max_pages``.
    """

    def __init__(
        self,
        read_page: ReadPage,
        clock: Clock,
        *,
        interval: float = 2.0,
        max_pages: int = MAX_PAGES,
        min_timeout: float = 30.0,
    ):
        self._read_page = read_page
        self._clock = clock
        self.interval = interval
        self._max_pages = max_pages
        self._min_timeout = min_timeout
        self._sweep: _Sweep | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.index = AccountIndex()
        self.owner = ""
        """Whose list this is (a fingerprint of the API key and base URL, set by the client): an index
        kept elsewhere is taken only from the same owner."""
        self.sweeps = 0
        self.full_sweeps = 0
        self.batch_interval = 1.0
        """Seconds between two reads of the list's tail: the looks that come meanwhile wait for the next
        one and share it (a full sweep, needed to prove an account absent, is never held back)."""
        self._next_tail_at = -math.inf
        self.observer: Observer | None = None
        """Hears every sweep (``telemetry.instrument`` sets it)."""

    def warm(self, accounts: Iterable[AccountSummary], tail: str | None) -> None:
        """Start from an index kept elsewhere (a journal): ``accounts`` and the list's ``tail``, unless
        this reconciler has read a tail of its own already."""
        self.index.add(accounts)
        if self.index.tail is None:
            self.index.tail = tail

    async def refresh(self, *, full: bool = False, within: float = 600.0) -> int:
        """Read the list into the index: its tail (the whole list while the index is cold, or with
        ``full``), to the end, within ``within`` seconds; how many accounts the index holds then.

        ``UnconfirmedCreateError`` if the list could not be read to its end (the index keeps what was)."""
        check_seconds("within", within)
        deadline = self._clock.monotonic() + within
        while True:
            sweep = self._sweep
            if sweep is None or sweep.done:
                sweep = self._start(full or self.index.tail is None)
            self._join(sweep)
            sweep.deadlines[deadline] += 1
            try:
                while not sweep.done:
                    await sweep.changed.wait()
            finally:
                self._leave(sweep, deadline)
            if sweep.error is not None:
                raise sweep.error.with_traceback(None)
            if sweep.problem is not None:
                raise errors.UnconfirmedCreateError(
                    f"the account list was not read to its end ({sweep.problem})"
                )
            if sweep.full or not full:
                return len(self.index.by_owner)
            # a tail read was running when a full one was asked for: read the whole list now

    async def find(
        self, login_name: str, organization_name: str | None, *, wait: float, within: float | None = None
    ) -> AccountSummary | None:
        """The listed account made for the row: look now, then every ``interval``, the last look starting
        at ``wait`` at the latest, and give up ``within`` seconds from now (default ``wait`` plus
        ``min_timeout``, so the last look can finish).

        ``None`` if no account matches; ``ConflictError`` if another organization's account holds the
        login name; ``UnconfirmedCreateError`` if nothing matched and the list was not read to its end.
        """
        check_seconds("wait", wait)
        if within is not None:
            check_seconds("within", within)
        now = self._clock.monotonic()
        look_until = now + wait
        deadline = now + (wait + self._min_timeout if within is None else max(wait, within))
        while True:
            final = self._clock.monotonic() >= look_until
            hit, problem = await self._look(
                login_name, organization_name, self._fresh_from(), deadline, final
            )
            if hit is not None:
                return hit
            now = self._clock.monotonic()
            if final or now >= deadline:
                if problem is not None:
                    raise errors.UnconfirmedCreateError(
                        f"the account list was not read to its end ({problem}; with a long list, allow "
                        "more time: reconcile_timeout, --reconcile-timeout)"
                    )
                return None
            await self._clock.sleep(min(self.interval, look_until - now))

    def _fresh_from(self) -> int:
        """The number of the first sweep that can tell a look starting now that an account is absent:
        the next one (one running now may have read the relevant page before the account appeared)."""
        return self.sweeps + 1

    async def _look(
        self, login_name: str, organization_name: str | None, fresh_from: int, deadline: float, final: bool
    ) -> tuple[AccountSummary | None, str | None]:
        """One look: the match, or ``None`` and why the read behind it is incomplete (``None``: complete).

        The index first; then the tail (what was appended since); for a ``final`` look that found nothing
        there, the whole list, since only a full sweep started after the look began proves absence."""
        full = False
        while True:
            hit = self.index.match(login_name, organization_name)
            if hit is not None:
                return hit, None
            sweep = self._sweep
            if sweep is None or sweep.done:
                whole = full or self.index.tail is None
                now = self._clock.monotonic()
                if not whole and now < self._next_tail_at:  # batched: one tail read serves every look since
                    if now >= deadline:
                        return None, "the wait ran out before the list's tail was read"
                    await self._clock.sleep(min(self._next_tail_at, deadline) - now)
                    continue
                sweep = self._start(whole)
            self._join(sweep)
            sweep.deadlines[deadline] += 1
            try:
                while True:
                    hit = self.index.match(login_name, organization_name)
                    if hit is not None:
                        return hit, None
                    if sweep.done:
                        if sweep.error is not None:  # shared by every waiter: each gets its own traceback
                            raise sweep.error.with_traceback(None)
                        break
                    if self._clock.monotonic() >= deadline:
                        return None, f"the wait ran out after {sweep.pages} pages"
                    await sweep.changed.wait()
            finally:
                self._leave(sweep, deadline)
            if self._clock.monotonic() >= deadline:
                return None, sweep.problem
            if sweep.number < fresh_from:
                continue  # that read began before this look was needed: its "not listed" may be stale
            if sweep.full or not final or sweep.problem is not None:
                return None, sweep.problem
            full = True  # not in the tail: read the whole list before saying "not there"

    def _start(self, full: bool) -> _Sweep:
        if self._closed:
            raise errors.ClientClosedError("this client is closed; create a new one")
        self.sweeps += 1
        self.full_sweeps += full
        if not full:
            self._next_tail_at = self._clock.monotonic() + self.batch_interval
        sweep = _Sweep(self.sweeps, full)
        observer = self.observer
        if observer is not None:  # started here, under the look that needs it; ended with its task
            sweep.observed = observer.sweep(full)
        run = self._run(sweep) if sweep.observed is None else self._observed_run(sweep.observed, sweep)
        sweep.task = task = asyncio.get_running_loop().create_task(run, name="account list sweep")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if sweep.observed is not None:
            seen = sweep.observed
            task.add_done_callback(lambda _: seen.end(sweep.pages, sweep.problem, sweep.error))
        self._sweep = sweep
        return sweep

    def _join(self, sweep: _Sweep) -> None:
        """A look waits on ``sweep``: the observer links the look's operation to it."""
        if sweep.observed is not None and self.observer is not None:
            self.observer.joined(sweep.observed)

    def _leave(self, sweep: _Sweep, deadline: float) -> None:
        sweep.deadlines[deadline] -= 1
        if sweep.deadlines[deadline] <= 0:
            del sweep.deadlines[deadline]
        if not sweep.deadlines and not sweep.done:
            self._stop(sweep)  # nobody waits any more: stop spending requests on it

    def _stop(self, sweep: _Sweep, error: BaseException | None = None) -> None:
        """End ``sweep`` now, even if its task has not started (then it never will)."""
        if sweep.task is not None:
            sweep.task.cancel()
        if not sweep.done:
            sweep.error = error
            sweep.problem = sweep.problem or f"the sweep was stopped after {sweep.pages} pages"
            self._end(sweep)

    def _end(self, sweep: _Sweep) -> None:
        sweep.done = True
        if self._sweep is sweep:
            self._sweep = None
        sweep.notify()

    async def _run(self, sweep: _Sweep) -> None:
        """Read the list into the index from the first page or the tail, waking the waiters page by page;
        never raises. The tail moves on as a tail read (or a first full sweep) goes, and to the last page
        whenever one reaches it: a later look reads from there."""
        index = self.index
        href = None if sweep.full else index.tail
        moving = not sweep.full or index.tail is None  # a full sweep over a known tail leaves it be
        seen: set[str | None] = {href}
        try:
            while True:
                page = await self._page(sweep, href)
                index.add(page.accounts)
                sweep.pages += 1
                if page.next_href is None:
                    index.tail = href
                    return
                href = page.next_href
                if moving:
                    index.tail = href
                if href in seen:
                    sweep.problem = (
                        f"the account list links back to a page already read after {sweep.pages} pages"
                    )
                    return
                seen.add(href)
                if sweep.pages >= self._max_pages:
                    sweep.problem = f"it did not end within {self._max_pages} pages"
                    return
                sweep.notify()
                await asyncio.sleep(0)  # let the waiters look (a transport that never yields included)
                if not sweep.deadlines or self._clock.monotonic() >= max(sweep.deadlines):
                    sweep.problem = f"the wait ran out after {sweep.pages} pages"
                    return
        except asyncio.CancelledError:
            self._stop(sweep)  # a no-op when whoever cancelled it ended it already
        except errors.MalformedResponseError as exc:
            sweep.problem = f"page {sweep.pages + 1} could not be read: {exc}"
        except Exception as exc:  # the list could not be read (quota, credentials, ...): each waiter hears it
            sweep.error = exc
        finally:
            if not sweep.done:
                self._end(sweep)

    async def _observed_run(self, seen: Sweep, sweep: _Sweep) -> None:
        with seen:  # the sweep's requests are inside it
            await self._run(sweep)

    async def _page(self, sweep: _Sweep, href: str | None) -> AccountPage:
        """The page at ``href``, its retries ending at the first waiter's deadline; after a transient
        failure there, the waiters whose time is up leave and the page is tried again for the others."""
        while True:
            try:
                return await self._read_page(href, sweep.first_deadline(self._clock.monotonic()))
            except (errors.ServerError, errors.TransportError, errors.ThrottledError) as exc:
                if isinstance(exc, errors.QuotaExceededError):
                    raise
                sweep.notify()
                await asyncio.sleep(0)  # the waiters whose deadline has passed leave now
                now = self._clock.monotonic()
                if not sweep.deadlines or max(sweep.deadlines) <= now:
                    raise
                await self._clock.sleep(min(self.interval, sweep.first_deadline(now) - now))

    async def aclose(self) -> None:
        """Cancel a sweep in flight and wait for it to end; no new sweep starts."""
        self._closed = True
        sweep = self._sweep
        if sweep is not None:
            self._stop(sweep, errors.ClientClosedError("the client was closed during the account list sweep"))
        if self._tasks:  # that one, and any stopped earlier that has not ended yet
            await asyncio.wait(list(self._tasks))


def check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise errors.ValidationError(
            [errors.FieldError(name, "must be a finite number of seconds, 0 or more")]
        )


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


def create_account(
    client: Sender,
    reconciler: Reconciler,
    account: NewAccount,
    *,
    previously_attempted: bool = False,
    reconcile_timeout: float = 30.0,
    adopt_existing: bool = False,
    on_sent: Callable[[], None] | None = None,
    observer: Observer | None = None,
) -> Coroutine[Any, Any, CreateResult]:
    """Create ``account`` safely; see the module docstring for the guarantees.

    ``previously_attempted`` says an earlier call may have sent this create already (a bulk job resuming
    after a crash): a 409 is then reconciled rather than reported. ``on_sent`` is called just before the
    request is first handed to the transport. ``observer`` hears the whole create as one operation, its
    outcome included. (A plain function returning the coroutine: one await level less on the hot path.)
    """
    args = (client, reconciler, account, previously_attempted, reconcile_timeout, adopt_existing, on_sent)
    return _create(*args) if observer is None else _observed_create(observer, args)


async def _observed_create(observer: Observer, args: tuple[Any, ...]) -> CreateResult:
    with observer.operation("create_account") as operation:
        result = await _create(*args)
        operation.outcome(result.status.value)
        return result


async def _create(
    client: Sender,
    reconciler: Reconciler,
    account: NewAccount,
    previously_attempted: bool,
    reconcile_timeout: float,
    adopt_existing: bool,
    on_sent: Callable[[], None] | None,
) -> CreateResult:
    check_seconds("reconcile_timeout", reconcile_timeout)
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
        ambiguous = any(is_ambiguous(f) for f in log.errors)
        if isinstance(exc, UNREADABLE_LIST) and (ambiguous or previously_attempted):
            # the list can't be read either (quota spent, credentials refused): don't spend a request on it
            raise errors.UnconfirmedCreateError(
                f"creating {account.login_name!r} may have succeeded earlier, and it can't be checked now "
                f"({type(exc).__name__}: {exc}); run again to settle it"
            ) from exc
        if ambiguous or isinstance(exc, errors.MalformedResponseError):
            return await _confirm(reconciler, account, log.requests, exc, reconcile_timeout)
        if previously_attempted:  # this refusal is sure, but an earlier attempt may have landed
            return await _confirm(reconciler, account, log.requests, exc, reconcile_timeout, sure=True)
        raise
    return CreateResult(
        status=CreateStatus.CREATED,
        login_name=account.login_name,
        organization_name=account.organization_name,
        encoded_account_id=created.encoded_account_id,
        provision_uuid=created.provision_uuid,
        attempts=log.requests,
    )


async def _confirm(
    reconciler: Reconciler,
    account: NewAccount,
    attempts: int,
    error: errors.CtctError,
    within: float,
    *,
    sure: bool = False,
) -> CreateResult:
    """After a failure that may hide an account: the account if one look at the list shows it; else
    ``error`` itself when it is ``sure`` and the whole list was read, else unknown."""
    try:
        hit = await reconciler.find(account.login_name, account.organization_name, wait=0.0, within=within)
    except (errors.ConflictError, errors.ClientClosedError):
        raise  # another organization holds the login name: this create never made an account
    except errors.CtctError as exc:
        reason = _lookup_failure(exc)
        cause = exc if isinstance(exc, UNREADABLE_LIST) else error  # what a bulk job stops on
    else:
        if hit is not None:
            return _result(CreateStatus.RECONCILED, account, attempts, hit.encoded_account_id)
        if sure:
            raise error
        reason, cause = "the account is not in the list yet", error
    raise errors.UnconfirmedCreateError(
        f"creating {account.login_name!r} may have succeeded ({type(error).__name__}: {error}); {reason}. "
        "Create it again with previously_attempted=True to reconcile"
    ) from cause


def _lookup_failure(exc: errors.CtctError) -> str:
    if isinstance(exc, errors.UnconfirmedCreateError):
        return str(exc)
    return f"the account list could not be searched ({type(exc).__name__}: {exc})"


async def _reconcile(reconciler: Reconciler, account: NewAccount, attempts: int, wait: float) -> CreateResult:
    """A 409 after an attempt that may have landed: ours if the list shows it, by the matching rule."""
    cause: errors.CtctError | None = None
    try:
        look = max(0.0, wait - reconciler.interval)  # the last look starts in time to finish by ``wait``
        hit = await reconciler.find(account.login_name, account.organization_name, wait=look, within=wait)
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
    """A plain 409 with ``adopt_existing``: the listed account that matches the row, or the conflict.

    A lookup that fails is still the conflict (never "unsettled": nothing says the account is ours), so a
    rerun without ``adopt_existing`` can't claim it; a rerun with it looks again.
    """
    reason = "no listed account matches the row"
    try:
        hit = await reconciler.find(account.login_name, account.organization_name, wait=0.0, within=within)
    except (errors.ConflictError, errors.ClientClosedError):
        raise
    except errors.CtctError as exc:
        hit, reason = None, _lookup_failure(exc)
    if hit is None:
        raise errors.ConflictError(
            method="POST",
            url="partner/accounts",
            status=409,
            messages=[f"the login name {account.login_name!r} is taken and {reason}"],
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
