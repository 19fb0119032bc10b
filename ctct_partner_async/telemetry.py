"""OpenTelemetry traces and metrics for a client: ``instrument(client)`` (the ``[otel]`` extra).

Built on the SDK's own pipeline, not on aiohttp: it sees a session you passed in (``session=``), a
custom transport, the v2 client, retries, 401 replays, token renewals, rate-limit waits and bulk jobs.
Only ``opentelemetry-api`` is needed; with no OpenTelemetry SDK configured everything is a no-op. The
rest of the SDK never imports OpenTelemetry.

**Traces** (the stable HTTP semantic conventions):

- ``ctct.<operation>`` (INTERNAL), one per call: ``ctct.create_account``, ``ctct.get_plan``, ... with
  ``ctct.operation``; a create also has ``ctct.create.outcome`` (``created``, ``reconciled``,
  ``adopted``, ``pending``) and holds everything it did: its attempts, and the sweeps of the account
  list it started. A retry is an event ``ctct.retry`` on it (``ctct.attempt``, ``ctct.retry.wait``,
  ``error.type``). A failed call has ``error.type`` (the exception's class) and status ERROR.
- ``{METHOD} {url.template}`` (CLIENT), one per request sent: ``PUT
  /partner/accounts/{encoded_account_id}/plan``, with ``http.request.method``, ``server.address``,
  ``server.port``, ``url.template``, ``http.response.status_code``, ``error.type`` (the status from 400
  up, or the transport error's class), ``http.request.resend_count`` on every resend (a retry, a 401
  replay) and ``ctct.rate_limit.wait``: the seconds it waited for its turn under the client's limits.
  The W3C ``traceparent`` of this span goes out with the request unless ``propagate=False``.
- ``ctct.token_renewal`` (INTERNAL), one per token request: ``ctct.token.reason`` (``initial``,
  ``advisory``, ``mandatory``, ``unauthorized``), ``ctct.token.outcome`` (``ok``, ``error``),
  ``ctct.token.attempt``, and when it failed ``http.response.status_code`` and ``error.type`` (the
  status, or the transport error's class). Under the operation that set it off (a background renewal:
  the one whose call started it).
- ``ctct.account_list_sweep`` (INTERNAL), one per read of the account list by the reconciler:
  ``ctct.sweep.full``, ``ctct.sweep.pages``, ``ctct.sweep.complete``; its pages' requests inside. It
  sits under the operation that needed it first; every other operation that waited on it (one sweep
  serves many creates) has a span link to it.

**Metrics**: ``http.client.request.duration`` (s; ``http.request.method``, ``http.response.status_code``,
``url.template``, ``server.address``, ``server.port``, ``error.type``); ``ctct.client.retries``
(``ctct.operation``, ``error.type``); ``ctct.client.throttles`` (``ctct.operation``,
``ctct.throttle.reason``: ``throttled`` or ``quota_exceeded``); ``ctct.token.renewals``
(``ctct.token.reason``, ``ctct.token.outcome``); ``ctct.client.rate_limit.wait`` (s; ``ctct.operation``);
``ctct.bulk.rows`` (``ctct.job``: ``provision``, ``plans``, ``cancel``; ``ctct.row.state``).

**Nothing secret**: no name, attribute, event or label holds an API key, a JWT, a client secret, a
password, a notification's ``api_key``, a URL with its ids or query, a header, a body or an exception's
message (which may quote a server's answer). URLs are templates plus host and port.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
except ImportError as exc:  # pragma: no cover - exercised in a process without the extra
    raise ImportError(
        "ctct_partner_async.telemetry needs OpenTelemetry's API: pip install 'ctct-partner-async[otel]'"
    ) from exc

from . import _errors as errors
from ._auth import TokenManager, TokenRefresh
from ._client import LegacyBillingClient, PartnerClient
from ._errors import QuotaExceededError, ThrottledError
from ._hooks import RetryDetails
from ._operations import TEMPLATES
from ._protocol import Request
from ._version import __version__

__all__ = ["SCOPE", "Telemetry", "instrument", "uninstrument"]

SCOPE = "ctct_partner_async"
"""The instrumentation scope (tracer and meter name)."""

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""``http.client.request.duration``'s buckets, as the HTTP semantic conventions advise."""
WAIT_BUCKETS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

logger = logging.getLogger("ctct_partner_async.telemetry")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})

_OPERATION: ContextVar[trace.Span | None] = ContextVar("ctct_operation_span", default=None)
"""The SDK operation (or sweep) span open in this context: a send inside it is part of it."""

Client = PartnerClient | LegacyBillingClient


_F = TypeVar("_F", bound=Callable[..., Any])


def _quiet(fallback: Callable[..., Any]) -> Callable[[_F], _F]:
    """Telemetry never breaks a request: an exception from OpenTelemetry (a span processor, an exporter,
    a view) is logged once per kind on ``ctct_partner_async.telemetry`` and ``fallback(*args)`` is
    returned instead."""

    def wrap(method: _F) -> _F:
        @functools.wraps(method)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                _complain(exc)
                return fallback(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return wrap


_complained: set[type[BaseException]] = set()  # each kind of failure is logged once per process


def _complain(exc: Exception) -> None:
    if type(exc) not in _complained:
        _complained.add(type(exc))
        logger.warning("telemetry failed (%s); the request goes on without it", type(exc).__name__)


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _nested(*args: Any, **kwargs: Any) -> _Nested:
    return _NESTED


def _unobserved(telemetry: Any, request: Any, resend: Any, waited: Any, headers: Mapping[str, str]) -> Any:
    return _Unobserved(headers)


def _error_type(error: BaseException) -> str:
    return type(error).__name__


def _renewal_error(detail: TokenRefresh) -> str:
    """A failed token request's ``error.type``: the status from 400 up, else what failed under the
    SDK's ``AuthenticationError`` (a ``ConnectError``, ...), else that error's class."""
    if detail.status is not None and detail.status >= 400:
        return str(detail.status)
    error = detail.error
    if error is None:
        return "_OTHER"
    return _error_type(error.__cause__ if error.__cause__ is not None else error)


def _with_trace_context(headers: Mapping[str, str], context: trace.SpanContext) -> Mapping[str, str]:
    """``headers`` plus the W3C trace context of ``context``, as ``TraceContextTextMapPropagator`` writes it
    (nothing for an invalid context: no SDK set up)."""
    if not context.is_valid:
        return headers
    sent = {
        **headers,
        "traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}",
    }
    if context.trace_state:
        sent["tracestate"] = context.trace_state.to_header()
    return sent


def _fail(span: trace.Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(trace.Status(trace.StatusCode.ERROR, error_type))


class _Scope:
    """A span made current for the duration of a ``with`` block, and marked as the SDK's operation."""

    __slots__ = ("_context_token", "_operation_token", "span")

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self._context_token: Token[otel_context.Context] | None = None

    def __enter__(self) -> _Scope:
        try:
            self._context_token = otel_context.attach(trace.set_span_in_context(self.span))
        except Exception as exc:  # a custom runtime context that fails: the work goes on outside the span
            _complain(exc)
        self._operation_token = _OPERATION.set(self.span)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._leave()
        self._close(exc)

    def _leave(self) -> None:
        _OPERATION.reset(self._operation_token)
        if self._context_token is not None:
            otel_context.detach(self._context_token)

    @_quiet(_nothing)
    def _close(self, exc: BaseException | None) -> None:
        try:
            if exc is not None:
                _fail(self.span, _error_type(exc))
        finally:
            self.span.end()

    @_quiet(_nothing)
    def outcome(self, value: str) -> None:
        self.span.set_attribute("ctct.create.outcome", value)


class _SweepScope(_Scope):
    """A sweep's span: current while its task reads (``with``), ended once by ``end`` (the task may
    never run: a sweep stopped before it started still ends its span)."""

    __slots__ = ("_ended", "starter")

    def __init__(self, span: trace.Span, starter: trace.Span) -> None:
        super().__init__(span)
        self.starter = starter  # the span the sweep was started under (its parent)
        self._ended = False

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._leave()

    @_quiet(_nothing)
    def end(self, pages: int, problem: str | None, error: BaseException | None) -> None:
        """A sweep's figures (the problem's text is not kept: it may quote a server's answer)."""
        if self._ended:
            return
        self._ended = True
        try:
            self.span.set_attribute("ctct.sweep.pages", pages)
            self.span.set_attribute("ctct.sweep.complete", problem is None and error is None)
            if error is not None:
                _fail(self.span, _error_type(error))
        finally:
            self.span.end()


class _Nested:
    """A send inside an operation already open: nothing of its own."""

    __slots__ = ()

    def __enter__(self) -> _Nested:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def outcome(self, value: str) -> None:
        pass

    def end(self, pages: int, problem: str | None, error: BaseException | None) -> None:
        pass


_NESTED = _Nested()


class _Unobserved:
    """A request whose span could not be started: sent as it is."""

    __slots__ = ("headers",)

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = headers

    def end(self, status: int | None, error: BaseException | None = None) -> None:
        pass


@attrs.frozen
class _Route:
    """What every request of one operation shares: its span name and its attributes so far."""

    name: str
    span_attributes: Mapping[str, Any]
    metric_attributes: Mapping[str, Any]
    operation_attributes: Mapping[str, Any]


class _Exchange:
    """One CLIENT span and its duration measurement."""

    __slots__ = ("_route", "_span", "_started", "_telemetry", "headers")

    def __init__(
        self, telemetry: Telemetry, request: Request, resend: int, waited: float, headers: Mapping[str, str]
    ) -> None:
        self._telemetry = telemetry
        self._route = route = telemetry.route(request)
        telemetry.waits.record(waited, route.operation_attributes)
        attributes = {**route.span_attributes, "ctct.rate_limit.wait": waited}
        if resend:
            attributes["http.request.resend_count"] = resend
        self.headers = headers
        try:
            span = telemetry.tracer.start_span(route.name, kind=trace.SpanKind.CLIENT, attributes=attributes)
        except Exception as exc:  # no span, but still the duration
            _complain(exc)
            span = trace.INVALID_SPAN
        self._span = span
        if telemetry.propagate:
            try:
                self.headers = _with_trace_context(headers, span.get_span_context())
            except Exception:
                span.end()  # the request goes without this span (``_quiet`` says why)
                raise
        self._started = time.perf_counter()

    @_quiet(_nothing)
    def end(self, status: int | None, error: BaseException | None = None) -> None:
        elapsed = time.perf_counter() - self._started
        span = self._span
        attributes = dict(self._route.metric_attributes)
        error_type = None
        if status is not None:
            attributes["http.response.status_code"] = status
            if status >= 400:
                error_type = str(status)
        if error is not None:
            error_type = _error_type(error)
        try:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if error_type is not None:
                attributes["error.type"] = error_type
                _fail(span, error_type)
        finally:  # each of these is tried whatever the others do
            try:
                span.end()
            finally:
                self._telemetry.durations.record(elapsed, attributes)


class Telemetry:
    """The OpenTelemetry observer of one client (what ``instrument`` installs and returns)."""

    def __init__(
        self,
        base_url: str,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        propagate: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.propagate = propagate
        self._routes: dict[tuple[str, str], _Route] = {}
        self._operations: dict[str, tuple[str, Mapping[str, Any]]] = {}
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self.durations = meter.create_histogram(
            "http.client.request.duration", unit="s", description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )  # fmt: skip
        self.retries = meter.create_counter(
            "ctct.client.retries", unit="{retry}", description="Failed attempts that were retried."
        )
        self.throttles = meter.create_counter(
            "ctct.client.throttles",
            unit="{response}",
            description="429 answers: throttled or quota exceeded.",
        )
        self.renewals = meter.create_counter(
            "ctct.token.renewals", unit="{request}", description="Requests to the token endpoint."
        )
        self.waits = meter.create_histogram(
            "ctct.client.rate_limit.wait", unit="s",
            description="Time a request waited for its turn under the client's rate limit and in-flight cap.",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )  # fmt: skip
        self.rows = meter.create_counter(
            "ctct.bulk.rows", unit="{row}", description="Bulk job rows, by the state they ended in."
        )

    def route(self, request: Request) -> _Route:
        """The request's span name and attributes (made once per operation and method)."""
        key = (request.operation, request.method)
        route = self._routes.get(key)
        if route is None:
            method, template = request.method.upper(), TEMPLATES.get(request.operation)
            if method not in _METHODS:
                method = "_OTHER"  # the conventions' word for a method they don't know
            metric: dict[str, Any] = {"http.request.method": method, "server.address": self.host,
                                      "server.port": self.port}  # fmt: skip
            if template is not None:
                metric["url.template"] = "/" + template
            word = "HTTP" if method == "_OTHER" else method
            name = word if template is None else f"{word} /{template}"
            operation = {"ctct.operation": request.operation}
            route = _Route(name, {**metric, **operation}, metric, operation)
            self._routes[key] = route
        return route

    # -- the Observer seam: none of it raises (``_quiet``) ---------------------------------------------------
    @_quiet(_nested)
    def operation(self, name: str) -> AbstractContextManager[_Scope | _Nested]:
        current = _OPERATION.get()
        if current is not None and current is trace.get_current_span():
            return _NESTED
        known = self._operations.get(name)
        if known is None:
            known = self._operations[name] = (f"ctct.{name}", {"ctct.operation": name})
        return _Scope(self.tracer.start_span(known[0], attributes=known[1]))

    @_quiet(_unobserved)
    def exchange(
        self, request: Request, resend: int, waited: float, headers: Mapping[str, str]
    ) -> _Exchange | _Unobserved:
        return _Exchange(self, request, resend, waited, headers)

    @_quiet(_nothing)
    def retried(self, details: RetryDetails) -> None:
        error_type = _error_type(details.exception) if details.exception is not None else "_OTHER"
        self.retries.add(1, {"ctct.operation": details.operation, "error.type": error_type})
        trace.get_current_span().add_event(
            "ctct.retry",
            {"ctct.attempt": details.attempt, "ctct.retry.wait": details.wait, "error.type": error_type},
        )

    @_quiet(_nothing)
    def throttled(self, request: Request, error: ThrottledError) -> None:
        reason = "quota_exceeded" if isinstance(error, QuotaExceededError) else "throttled"
        self.throttles.add(1, {"ctct.operation": request.operation, "ctct.throttle.reason": reason})

    @_quiet(_nested)
    def sweep(self, full: bool) -> _SweepScope | _Nested:
        span = self.tracer.start_span("ctct.account_list_sweep", attributes={"ctct.sweep.full": full})
        return _SweepScope(span, trace.get_current_span())

    @_quiet(_nothing)
    def joined(self, sweep: object) -> None:
        """A look waits on a sweep another operation started: its operation links to that sweep."""
        if isinstance(sweep, _SweepScope):
            current = trace.get_current_span()
            if current is not sweep.starter:
                current.add_link(sweep.span.get_span_context(), {"ctct.link": "account_list_sweep"})

    @_quiet(_nothing)
    def row(self, job: str, state: str) -> None:
        self.rows.add(1, {"ctct.job": job, "ctct.row.state": state})

    @_quiet(_nothing)
    def token_refreshed(self, detail: TokenRefresh) -> None:
        """A token request ended (the token manager's observer): its span, after the fact, and its count."""
        end = time.time_ns()
        attributes: dict[str, Any] = {
            "ctct.token.reason": detail.reason,
            "ctct.token.outcome": detail.outcome,
            "ctct.token.attempt": detail.attempt,
        }
        if detail.status is not None:
            attributes["http.response.status_code"] = detail.status
        self.renewals.add(1, {"ctct.token.reason": detail.reason, "ctct.token.outcome": detail.outcome})
        span = self.tracer.start_span(
            "ctct.token_renewal", attributes=attributes, start_time=end - max(0, int(detail.duration * 1e9))
        )
        try:
            if detail.outcome != "ok":
                _fail(span, _renewal_error(detail))
        finally:
            span.end(end_time=end)


def instrument(
    client: Client,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    propagate: bool = True,
) -> Telemetry:
    """Trace and measure everything ``client`` does from now on; the ``Telemetry`` installed.

    ``tracer_provider`` and ``meter_provider`` default to OpenTelemetry's global ones (no-ops until an
    OpenTelemetry SDK is configured). ``propagate=False`` sends no ``traceparent`` header. Instrumenting
    a client again replaces the earlier instrumentation; ``uninstrument`` removes it. Token renewals are
    seen when the client gets its tokens from its own ``TokenManager`` (not a ``token_provider`` of yours).
    """
    if not isinstance(client, PartnerClient | LegacyBillingClient):
        rule = f"must be a PartnerClient or LegacyBillingClient, not {type(client).__name__}"
        raise errors.ValidationError([errors.FieldError("client", rule)])
    if not isinstance(propagate, bool):
        raise errors.ValidationError([errors.FieldError("propagate", "must be True or False")])
    telemetry = Telemetry(
        client.options.base_url,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        propagate=propagate,
    )
    _install(client, telemetry)
    return telemetry


def uninstrument(client: Client) -> None:
    """Stop tracing and measuring ``client`` (calls in flight finish their spans)."""
    _install(client, None)


def _install(client: Client, telemetry: Telemetry | None) -> None:
    client._pipeline.observe(telemetry)
    if isinstance(client, PartnerClient):
        client.accounts.observer = telemetry
        client.accounts.reconciler.observer = telemetry
        tokens = client.token_provider
        if isinstance(tokens, TokenManager):
            tokens.observer = None if telemetry is None else telemetry.token_refreshed
