"""The only module that talks aiohttp: one pooled session per client, and aiohttp errors mapped to ours.

The session and its ``TCPConnector`` are created lazily inside the running loop. A session passed in by
the caller is borrowed: used, never closed. A closed transport can't be reopened.

One client, one loop: a client belongs to the event loop it first ran in (``LoopBinding``), because its
connections, timers and tasks do. From any other loop a call raises ``WrongEventLoopError`` before it
touches anything, so nothing is sent and nothing is opened there.

Proxies come from the environment (``Proxies``: ``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``), read once
when the client is made, and are given to aiohttp per request; a loopback host is never proxied. The
session itself keeps aiohttp's ``trust_env=False``: with ``True`` aiohttp would proxy loopback unless
``NO_PROXY`` names the exact host, and would look up the environment and ``~/.netrc`` again in worker
threads for every request (measured: five times the CPU of a request to the sandbox).
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from asyncio import AbstractEventLoop, get_running_loop
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import aiohttp
import attrs
from multidict import CIMultiDict

from . import _errors as errors
from ._protocol import Request, Response, resolve_url
from ._validation import is_loopback_host
from ._version import __version__

__all__ = ["USER_AGENT", "LoopBinding", "Proxies", "Timeouts", "Transport", "check_url"]

USER_AGENT = f"ctct-partner-async/{__version__} aiohttp/{aiohttp.__version__}"


@attrs.frozen(kw_only=True)
class Timeouts:
    """Seconds allowed to connect, between reads, and for a whole request (``None``: no limit).

    No per-read limit by default: the partner API's answers are small, ``total`` bounds a hung one, and
    aiohttp re-arms a read timer on every chunk received (measured: a tenth of the SDK's CPU per call).
    """

    connect: float | None = 10.0
    read: float | None = None
    total: float | None = 60.0

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, sock_connect=self.connect, sock_read=self.read)


Route = tuple[str | None, Mapping[str, str] | None]
"""Where a request goes: the proxy URL (``None``: direct) and the headers for the proxy (its login)."""
DIRECT: Route = (None, None)


class Proxies:
    """HTTP(S) proxies from the environment, chosen per request URL, as curl and urllib choose them.

    ``https_proxy`` for https:// URLs and ``http_proxy`` for http:// ones (each name lowercase or
    uppercase, lowercase first; the uppercase ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set,
    as in a CGI script, where a request header could set it); no proxy for a host ``no_proxy`` matches
    (comma-separated host names, ``host:port``, or domain suffixes, a leading dot optional; ``*`` for
    all) and never one for a loopback host (``localhost``, ``127.0.0.0/8``, ``::1``), so the sandbox is
    reached directly. A proxy's login in its URL (``http://user:pass@proxy:3128``) is sent to the proxy
    in ``Proxy-Authorization``, never to the API.
    """

    def __init__(self, proxies: Mapping[str, tuple[str, str]], no_proxy: str | None = None) -> None:
        """``proxies``: scheme -> (proxy URL, the variable it came from, to name in an error)."""
        self._routes = {scheme: _route(url, variable) for scheme, (url, variable) in proxies.items()}
        entries = (e.strip().lstrip(".").lower() for e in (no_proxy or "").split(","))
        self._no_proxy = frozenset(e for e in entries if e)
        self._decided: dict[str, Route] = {}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Proxies | None:
        """The proxies ``environ`` sets, or ``None`` if it sets none (every request goes direct)."""
        found = {}
        for scheme in ("http", "https"):
            names = [f"{scheme}_proxy", f"{scheme.upper()}_PROXY"]
            if scheme == "http" and "REQUEST_METHOD" in environ:
                names.pop()  # httpoxy: in a CGI script, HTTP_PROXY is the request's Proxy header
            for name in names:
                if environ.get(name):
                    found[scheme] = (environ[name], name)
                    break
        if not found:
            return None
        return cls(found, environ.get("no_proxy") or environ.get("NO_PROXY"))

    def route(self, url: str) -> Route:
        """The proxy for an absolute ``url`` (decided once per scheme, host and port)."""
        end = url.find("/", url.find("//") + 2)
        origin = url if end < 0 else url[:end]
        route = self._decided.get(origin)
        if route is None:
            if len(self._decided) >= 16:
                self._decided.clear()
            route = self._decided[origin] = self._decide(origin)
        return route

    def _decide(self, origin: str) -> Route:
        parts = urlsplit(origin)
        host = (parts.hostname or "").rstrip(".")
        route = self._routes.get(parts.scheme)
        if route is None or is_loopback_host(host) or self._bypassed(host, parts.port):
            return DIRECT
        return route

    def _bypassed(self, host: str, port: int | None) -> bool:
        """``no_proxy`` names ``host`` (or ``host:port``), or a domain it is in."""
        names = self._no_proxy
        if not names:
            return False
        if "*" in names:
            return True
        candidates = [host] if port is None else [host, f"{host}:{port}"]
        return any(c == n or c.endswith("." + n) for c in candidates for n in names)


def _route(url: str, variable: str) -> Route:
    """A proxy variable's URL as a route; ``ValidationError`` naming the variable if it isn't one (the
    value is never quoted: it may hold a password)."""
    parts = urlsplit(url if "://" in url else "http://" + url)  # a bare host:port means http://, as in curl
    try:
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that isn't a number
        usable = False
    if not usable:
        rule = "must be an http:// or https:// proxy URL (or pass trust_env=False to use none)"
        raise errors.ValidationError([errors.FieldError(variable, rule)])
    headers = None
    if parts.username is not None:
        login = aiohttp.encode_basic_auth(unquote(parts.username), unquote(parts.password or ""))
        headers = {"Proxy-Authorization": login}
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}", headers


def check_url(url: str, *, setting: str) -> str:
    """``url`` if it is https, or http on a loopback host; ``ValidationError`` naming ``setting`` if not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and is_loopback_host(host):
        return url
    rule = "must be an https:// URL (plain http:// only on a loopback host)"
    raise errors.ValidationError([errors.FieldError(setting, rule)])


ONE_LOOP = "create one client per event loop (inside the coroutine that asyncio.run() runs, say)"
_binding_lock = threading.Lock()  # only the first call of a client (and a refused one) takes it


class LoopBinding:
    """The event loop a client belongs to: ``loop``, the one its first call ran in (``None`` before).

    On the hot path a caller only compares: ``if binding.loop is not get_running_loop(): binding.enter()``.
    """

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: AbstractEventLoop | None = None

    def enter(self) -> None:
        """Bind to the running loop on the first call; ``WrongEventLoopError`` if bound to another one."""
        running = get_running_loop()
        with _binding_lock:  # two threads making their first calls at once: one of them wins
            if self.loop is None:
                self.loop = running
        home = self.loop
        if home is not running:
            state = "since closed" if home.is_closed() else "still open"
            raise errors.WrongEventLoopError(
                f"this client was first used in another event loop ({state}); {ONE_LOOP}"
            )

    def check_close(self) -> None:
        """``WrongEventLoopError`` if the client can't be closed from the running loop: it belongs to another
        loop that is still open, where its connections and tasks live (and can only be closed)."""
        home = self.loop
        if home is not None and home is not get_running_loop() and not home.is_closed():
            raise errors.WrongEventLoopError(
                "this client was first used in another event loop, still open: close it there; " + ONE_LOOP
            )


class Transport:
    """The aiohttp ``AsyncTransport``: sends ``Request`` values over one shared connection pool.

    Redirects are never followed (``allow_redirects=False``): a 3xx comes back as it is, and the
    pipeline raises ``RedirectError``, so credentials and bodies never go to another URL. ``proxies``
    apply to the session the transport creates; a session passed in keeps its own configuration.
    """

    def __init__(
        self,
        *,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        user_agent: str | None = None,
        proxies: Proxies | None = None,
    ) -> None:
        base_url = check_url(base_url, setting="base_url")
        self._base = base_url if base_url.endswith("/") else base_url + "/"
        self._session = session
        self._owns_session = session is None
        self._timeouts = timeouts or Timeouts()
        # the timeouts of a request with no timeout of its own (those of the session), and per-call ones
        self._timeout = session.timeout if session is not None else self._timeouts.to_aiohttp()
        self._call_timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._proxies = proxies if session is None else None
        if max_connections < 1:
            raise errors.ValidationError([errors.FieldError("max_connections", "must be at least 1")])
        self._max_connections = max_connections
        self._default_headers = {"Accept": "application/json", "User-Agent": user_agent or USER_AGENT}
        self._header_cache: dict[
            tuple[int, int], tuple[Mapping[str, str], Mapping[str, str], CIMultiDict[str]]
        ] = {}
        self._closed = False
        self.binding = LoopBinding()  # the pipeline of the client that owns this transport shares it

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def closed(self) -> bool:
        return self._closed

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this client is closed; create a new one")
        if self.binding.loop is not get_running_loop():
            self.binding.enter()  # whoever calls: a session is only ever created in the transport's loop
        connector = aiohttp.TCPConnector(limit=self._max_connections)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def send(
        self,
        request: Request,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
        total: float | None = None,
    ) -> Response:
        """Send ``request`` with this attempt's credentials (``headers``, ``query``); read the whole body.

        ``total`` (seconds) bounds this request in place of ``Timeouts.total`` (or the total of the
        session passed in); the connect and read limits still apply. From an event loop other than the
        transport's (``binding``): ``WrongEventLoopError``, nothing sent.
        """
        if self.binding.loop is not get_running_loop():
            self.binding.enter()
        return await self.send_in_loop(request, headers, query, total)

    async def send_in_loop(
        self,
        request: Request,
        headers: Mapping[str, str],
        query: Mapping[str, str] | None = None,
        total: float | None = None,
    ) -> Response:
        """``send`` for a caller that has checked ``binding`` against the running loop itself (the pipeline
        of the client, which shares it: one check per call, not two)."""
        session = self._session or self._open()
        url = resolve_url(self._base, request.url)
        all_headers = self._headers_for(request.headers, headers)
        params = {**request.query, **query} if request.query and query else request.query or query
        proxy, proxy_headers = DIRECT if self._proxies is None else self._proxies.route(url)
        try:
            async with session.request(
                request.method,
                url,
                params=params,
                data=request.body,
                headers=all_headers,
                allow_redirects=False,
                timeout=self._timeout if total is None else self._timeout_of(total),
                proxy=proxy,
                proxy_headers=proxy_headers,
            ) as resp:
                body = await resp.read()
                return Response(resp.status, resp.headers, body)
        except aiohttp.ClientError as exc:
            raise _map_error(exc, request.method, url) from exc
        except TimeoutError as exc:
            raise errors.RequestTimeoutError(
                "no complete response in time", method=request.method, url=url
            ) from exc

    def _timeout_of(self, seconds: float) -> aiohttp.ClientTimeout:
        """The session's timeouts with ``total`` set to ``seconds`` (a few are kept)."""
        found = self._call_timeouts.get(seconds)
        if found is None:
            if len(self._call_timeouts) >= 16:
                self._call_timeouts.clear()
            found = self._call_timeouts[seconds] = attrs.evolve(self._timeout, total=seconds)
        return found

    def _headers_for(
        self, request_headers: Mapping[str, str], credentials: Mapping[str, str]
    ) -> CIMultiDict[str]:
        """The request's full headers, merged once per pair of header mappings and reused.

        Requests share a few header mappings (``JSON_HEADERS``; the credentials, built once per token),
        and aiohttp would turn a plain dict into a ``CIMultiDict`` on every request. Entries hold the
        mappings they were built from, so an id in the key can't be reused while it is cached;
        header mappings are never changed in place (requests are frozen, credentials are rebuilt).
        """
        key = (id(request_headers), id(credentials))
        hit = self._header_cache.get(key)
        if hit is not None and hit[0] is request_headers and hit[1] is credentials:
            return hit[2]
        merged = CIMultiDict({**self._default_headers, **request_headers, **credentials})
        if len(self._header_cache) >= 16:
            self._header_cache.clear()
        self._header_cache[key] = (request_headers, credentials, merged)
        return merged

    async def aclose(self) -> None:
        """Close the session if this transport created it. Safe to call twice.

        From an event loop other than the transport's: ``WrongEventLoopError``, and nothing is closed, while
        that loop is open (close it there). Once that loop is closed, the session is closed from here;
        aiohttp then drops the pooled connections of the dead loop, which can't close them any more: their
        sockets are closed by asyncio when they are garbage-collected, with a ``ResourceWarning``.
        """
        if self._closed:
            return
        self.binding.check_close()
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._owns_session and self._session is not None:
            warnings.warn(
                "ctct_partner_async client was not closed; use 'async with' or 'await client.aclose()'",
                ResourceWarning,
                stacklevel=1,
            )


def _map_error(exc: aiohttp.ClientError, method: str, url: str) -> errors.TransportError:
    if isinstance(exc, aiohttp.ClientSSLError):
        # A certificate or TLS failure won't mend itself: never retried (neither connect nor response).
        return errors.TransportError(f"TLS failed: {type(exc).__name__}", method=method, url=url)
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return errors.ConnectError(f"could not connect: {type(exc).__name__}", method=method, url=url)
    if isinstance(exc, asyncio.TimeoutError):
        return errors.RequestTimeoutError("no complete response in time", method=method, url=url)
    return errors.ResponseError(
        f"connection failed mid-request: {type(exc).__name__}", method=method, url=url
    )
