"""Receiving partner webhooks: verify the signature, parse the pointer, re-fetch the state, call you.

A notification says *that* something changed (``{"url": ".../partner/accounts/{id}/plan", "api_key":
..., "event_type": "account.cancel"}``), not what the state now is, and it carries no event id and no
timestamp. So the receiver here never trusts a body for state: it verifies the signature, answers at
once (the sender retries every minute until it gets a 2xx), then reads the account's plan through your
``PartnerClient`` (its rate limit, token and retries) and calls ``on_notification(notification, plan)``.
It never requests the body's ``url``: it takes the account id from it and asks the client's own base
URL, so a forged or misdirected body can't make it send the JWT anywhere.

The pieces, from the framework-free core up:

- :func:`parse_notification` (``await parse_notification(headers, body, verifier=...)``): verified and
  parsed, or a :class:`NotificationError` with the status to answer (401, 400, 403, 503);
- :class:`JwsVerifier` (v3: detached JWS, RS256, keys from a JWKS; needs the ``[webhooks]`` extra) and
  :class:`HmacVerifier` (v2: ``x-ctct-hmac-sha256``);
- :func:`fetch_state`: the state a notification points at (the account's ``Plan``; ``None`` when it names
  no account or the account is gone);
- :class:`NotificationDispatcher`: ``submit(notification)`` returns at once; in the background it waits
  out a coalescing window (deliveries of the same url and event type within it make one call), re-fetches
  and calls you; failures are logged, never raised back at the sender; ``aclose()`` finishes the rest;
- :func:`notification_app`: all of it as an ``aiohttp.web.Application`` (mountable as a sub-app).

Nothing here logs or raises a secret: not the body's ``api_key``, an HMAC secret, a signature, or what
the JWKS endpoint answered.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from . import _notify
from ._client import PartnerClient
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import (
    ClientClosedError,
    CtctError,
    FieldError,
    NotFoundError,
    NotificationError,
    ValidationError,
)
from ._models import EventType, PartnerNotification, Plan
from ._provisioning import check_seconds
from ._transport import check_url

__all__ = [
    "DEFAULT_JWKS_URL",
    "DEFAULT_TOLERANCE",
    "DISPATCHER",
    "EventType",
    "HmacVerifier",
    "JwsVerifier",
    "NotificationDispatcher",
    "NotificationError",
    "NotificationHandler",
    "NotificationVerifier",
    "PartnerNotification",
    "fetch_state",
    "notification_app",
    "parse_notification",
]

logger = logging.getLogger("ctct_partner_async.notifications")

DEFAULT_JWKS_URL = "https://developer.constantcontact.com/.well-known/jwks.json"
DEFAULT_TOLERANCE = 3900.0
"""Seconds ``ts`` may lie before or after now: the hour the sender retries for, plus 5 minutes of clock
skew. The docs call ``ts`` the time "the call was initiated" without saying whether a retry signs anew;
if it does not, a tighter bound would refuse the retries of a delivery that first failed. A replay
inside the window costs one re-fetch of current state (and is coalesced), never a wrong state."""
MAX_JWKS = 1024 * 1024


class NotificationVerifier(Protocol):
    """Checks a delivery's signature: returns, or raises :class:`NotificationError`."""

    async def verify(self, headers: Mapping[str, str], body: bytes) -> None: ...


NotificationHandler = Callable[[PartnerNotification, Plan | None], Awaitable[object] | object]
"""``on_notification(notification, plan)``: a coroutine function or a plain function."""


def _seconds(name: str, value: float, *, zero: bool = False) -> float:
    """``value`` as float seconds: finite and 0 or more (the SDK's ``check_seconds``), above 0 unless
    ``zero``."""
    check_seconds(name, value)
    if value == 0 and not zero:
        raise ValidationError([FieldError(name, "must be above 0")])
    return float(value)


class HmacVerifier:
    """v2 signatures: ``x-ctct-hmac-sha256`` is base64 of HMAC-SHA256(secret, raw body)."""

    def __init__(self, secret: str | bytes) -> None:
        if not isinstance(secret, str | bytes) or not secret:
            raise ValidationError([FieldError("secret", "must be a non-empty string")])
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)

    def __repr__(self) -> str:
        return "HmacVerifier(secret='***')"

    async def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        _notify.verify_hmac(self._secret, headers, body)


class JwsVerifier:
    """v3 signatures: a detached JWS in ``X-CTCT-WEBHOOK-SIG``, checked against a JWKS.

    Only RS256 is accepted; the header must say ``b64: false`` and mark it critical; every RS256 key of
    the set is tried (the documented header has no ``kid``); ``ts`` must lie within ``tolerance`` seconds
    of now, either way (:data:`DEFAULT_TOLERANCE`). The JWKS is fetched on first use and kept
    ``jwks_ttl`` seconds; a signature no cached key verifies fetches it again, at most once every
    ``refetch_interval`` seconds (a rotated key is picked up; a flood of forgeries can't hammer the JWKS
    endpoint). When a refresh fails the keys already held are used. ``jwks_url`` must be https (plain
    http only on a loopback host, for the sandbox). ``session``: an ``aiohttp.ClientSession`` to borrow
    (never closed here; pass one to go through a proxy); otherwise one is made and closed by ``aclose()``.
    """

    def __init__(
        self,
        jwks_url: str = DEFAULT_JWKS_URL,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        jwks_ttl: float = 3600.0,
        refetch_interval: float = 60.0,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _notify.require_jwcrypto()
        self.jwks_url = check_url(jwks_url, setting="jwks_url")
        self.tolerance = _seconds("tolerance", tolerance)
        self.jwks_ttl = _seconds("jwks_ttl", jwks_ttl)
        self.refetch_interval = _seconds("refetch_interval", refetch_interval, zero=True)
        self.timeout = _seconds("timeout", timeout)
        self._session = session
        self._own_session: aiohttp.ClientSession | None = None
        self._clock = clock
        self._keys: list[Any] | None = None
        self._fetched_at = -math.inf
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the JWKS was requested."""

    def __repr__(self) -> str:
        return f"JwsVerifier({self._host()!r}, tolerance={self.tolerance:g})"

    def _host(self) -> str:
        return urlsplit(self.jwks_url).netloc

    async def __aenter__(self) -> JwsVerifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session this verifier made (a borrowed one is left alone)."""
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None

    async def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        signed = _notify.parse_signature(headers)
        _notify.check_ts(signed.ts, self._clock.time(), self.tolerance)
        if _notify.verify_rs256(await self._current_keys(), signed, body):
            return
        may_refetch = self._clock.monotonic() - self._fetched_at >= self.refetch_interval
        if may_refetch and _notify.verify_rs256(await self._current_keys(refetch=True), signed, body):
            return
        raise NotificationError("bad_signature", "no key of the JWKS verifies the signature")

    async def _current_keys(self, *, refetch: bool = False) -> list[Any]:
        asked_at = self._clock.monotonic()
        if not refetch and self._keys is not None and asked_at - self._fetched_at < self.jwks_ttl:
            return self._keys
        async with self._lock:  # one fetch however many deliveries wait
            if self._keys is not None and self._fetched_at >= asked_at:
                return self._keys  # another delivery fetched while this one waited
            try:
                keys = await self._fetch()
            except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError) as exc:
                self._fetched_at = self._clock.monotonic()
                if self._keys is None:
                    problem = f"the JWKS at {self._host()} could not be read ({type(exc).__name__})"
                    raise NotificationError("keys_unavailable", problem) from None
                logger.warning(
                    "could not refresh the webhook JWKS from %s (%s); using the keys fetched before",
                    self._host(), type(exc).__name__,
                )  # fmt: skip
                return self._keys
            self._keys, self._fetched_at = keys, self._clock.monotonic()
            return keys

    async def _fetch(self) -> list[Any]:
        self.fetches += 1
        session = self._session
        if session is None:
            if self._own_session is None:
                self._own_session = aiohttp.ClientSession()
            session = self._own_session
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        accept = {"Accept": "application/json"}
        async with session.get(
            self.jwks_url, timeout=timeout, allow_redirects=False, headers=accept
        ) as answer:
            if answer.status != 200:
                raise ValueError(f"HTTP {answer.status}")
            raw = bytearray()
            async for chunk in answer.content.iter_chunked(64 * 1024):  # to the end, however it arrives
                raw += chunk
                if len(raw) > MAX_JWKS:
                    raise ValueError("the JWKS is too large")
        keys = _notify.load_rsa_keys(json.loads(bytes(raw).decode("utf-8")))
        if not keys:
            raise ValueError("the JWKS holds no RS256 key")
        logger.debug("fetched the webhook JWKS from %s: %d RS256 keys", self._host(), len(keys))
        return keys


def _check_proof(verifier: NotificationVerifier | None, api_key: str | None) -> None:
    if verifier is None and api_key is None:
        rule = "is required unless api_key= is given (the body's api_key is then the only proof of origin)"
        raise ValidationError([FieldError("verifier", rule)])


async def parse_notification(
    headers: Mapping[str, str],
    body: bytes,
    *,
    verifier: NotificationVerifier | None,
    api_key: str | None = None,
) -> PartnerNotification:
    """The verified notification in a delivery's raw ``body`` and ``headers``.

    ``verifier`` checks the signature first (``None``: no signature check, then ``api_key`` is
    required); with ``api_key`` the body must name that key. ``NotificationError`` says why a delivery is
    refused and which status to answer (``exc.status``).
    """
    _check_proof(verifier, api_key)
    if verifier is not None:
        await verifier.verify(headers, body)
    return _notify.parse_body(body, api_key=api_key)


async def fetch_state(client: PartnerClient, notification: PartnerNotification) -> Plan | None:
    """What ``notification`` points at, read now through ``client``: the account's ``Plan`` (its
    ``billing_status`` and tiers; every documented event is about one), or ``None`` when the url names
    no account or the account is not found. Other failures raise, as the client's calls do."""
    if notification.account_id is None:
        return None
    try:
        return await client.accounts.get_plan(notification.account_id)
    except NotFoundError:
        return None


class _Pending:
    __slots__ = ("count", "notification")

    def __init__(self, notification: PartnerNotification) -> None:
        self.notification = notification
        self.count = 1


class NotificationDispatcher:
    """Re-fetch and call, in the background: the part of a receiver that comes after the 2xx.

    ``submit()`` returns at once. The first delivery of a (url, event type) opens a window of ``window``
    seconds; deliveries of the same pair within it are counted into it (``coalesced``). When it ends the
    state is read once (:func:`fetch_state`) and ``on_notification(notification, state)`` is called once.
    A failed read or a failing handler is logged (``ctct_partner_async.notifications``) and counted
    (``failed``, ``handler_errors``); nothing is raised back at the sender. At most ``max_pending``
    windows are open at a time: past that ``submit()`` raises ``NotificationError`` ``busy`` (answer 503,
    the sender retries). Handlers of different pairs run concurrently, each with the state as read when it
    runs. ``aclose()`` ends every window at once, waits up to ``timeout`` seconds for the calls, then
    cancels what is left; ``submit()`` after it raises ``ClientClosedError``.
    """

    def __init__(
        self,
        client: PartnerClient,
        on_notification: NotificationHandler,
        *,
        window: float = 2.0,
        max_pending: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._client = client
        self._handler = on_notification
        self.window = _seconds("window", window, zero=True)
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValidationError([FieldError("max_pending", "must be a whole number of at least 1")])
        self.max_pending = max_pending
        self._clock = clock
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self.calls = 0
        self.coalesced = 0
        self.failed = 0
        self.handler_errors = 0

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    @property
    def outstanding(self) -> int:
        """Calls scheduled or running."""
        return len(self._tasks)

    def submit(self, notification: PartnerNotification) -> bool:
        """Schedule the re-fetch and call; ``False`` when the notification joined an open window."""
        if self._closing.is_set():
            raise ClientClosedError("the notification dispatcher is closed")
        key = (notification.url, notification.event_type)
        pending = self._pending.get(key)
        if pending is not None:
            pending.count += 1
            self.coalesced += 1
            return False
        if len(self._pending) >= self.max_pending:
            raise NotificationError("busy", f"{self.max_pending} notifications are waiting already")
        self._pending[key] = _Pending(notification)
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, key: tuple[str, str]) -> None:
        await self._wait_window()
        pending = self._pending.pop(key)
        notification = pending.notification
        where = f"{notification.event_type} for account {notification.account_id or '(none)'}"
        try:
            state = await fetch_state(self._client, notification)
        except CtctError as exc:
            self.failed += 1
            logger.warning("could not read the state a notification points at (%s): %s", where, exc)
            return
        self.calls += 1
        try:
            result = self._handler(notification, state)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.handler_errors += 1
            logger.exception("on_notification failed (%s, %d deliveries)", where, pending.count)

    async def _wait_window(self) -> None:
        if self.window <= 0 or self._closing.is_set():
            return
        sleeping = asyncio.ensure_future(self._clock.sleep(self.window))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((sleeping, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            closing.cancel()

    async def aclose(self, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a grace period, not a deadline
        """End the windows now, wait for the calls (at most ``timeout`` s), cancel the rest."""
        self._closing.set()
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            logger.warning("%d notification calls were cancelled at close", len(late))
            await asyncio.wait(late)


DISPATCHER = web.AppKey("ctct_notification_dispatcher", NotificationDispatcher)
"""``app[DISPATCHER]``: the dispatcher of an app made by :func:`notification_app`."""


def notification_app(
    client: PartnerClient,
    on_notification: NotificationHandler,
    *,
    verifier: NotificationVerifier | None,
    api_key: str | None = None,
    path: str = "/ctct/notifications",
    window: float = 2.0,
    clock: Clock = SYSTEM_CLOCK,
) -> web.Application:
    """An ``aiohttp.web.Application`` receiving partner webhooks at ``POST path``.

    A verified delivery is answered 204 at once, before any work; a bad or missing signature 401, a body
    that is not the documented JSON 400, one naming another API key (with ``api_key=``) 403, keys that
    can't be fetched or a full queue 503. The rest is the :class:`NotificationDispatcher`'s
    (``app[DISPATCHER]``), which the app closes on shutdown, before the client's own cleanup. Serve it with
    ``web.run_app`` or mount it: ``main.add_subapp("/hooks", notification_app(...))``.
    """
    _check_proof(verifier, api_key)
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValidationError([FieldError("path", "must start with /")])
    dispatcher = NotificationDispatcher(client, on_notification, window=window, clock=clock)
    app = web.Application(client_max_size=_notify.MAX_BODY)
    app[DISPATCHER] = dispatcher

    async def receive(request: web.Request) -> web.Response:
        try:
            body = await request.read()
            notification = await parse_notification(request.headers, body, verifier=verifier, api_key=api_key)
            dispatcher.submit(notification)
        except NotificationError as exc:
            logger.info("refused a webhook delivery (%s, answered %d): %s", exc.reason, exc.status, exc)
            return web.json_response({"error": exc.reason}, status=exc.status)
        except ClientClosedError:
            return web.json_response({"error": "shutting_down"}, status=503)
        return web.Response(status=204)

    async def drain(app: web.Application) -> None:
        await dispatcher.aclose()

    app.router.add_post(path, receive)
    app.on_shutdown.append(drain)
    return app
