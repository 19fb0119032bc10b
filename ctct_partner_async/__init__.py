"""An asyncio SDK for Constant Contact's technology-partner API.

>>> async with PartnerClient(api_key=..., client_id=..., client_secret=...) as client:
...     created = await client.accounts.create(NewAccount(...))

Everything public is importable from here; modules whose names start with ``_`` are internal. The
public submodules are ``testing`` (``MockTransport`` and the pytest fixture), ``sandbox``, ``journal``,
``sources``, ``shared`` (state shared between processes in Redis, the ``[redis]`` extra) and ``cli`` (the
``ctct-partner`` command).
"""

from ._auth import (
    MemoryTokenCache,
    SharedTokenCache,
    TokenCache,
    TokenManager,
    TokenProvider,
    TokenRefresh,
    TokenSettings,
)
from ._budget import QuotaStatus
from ._bulk import Outcome, OutcomeState
from ._client import DEFAULT_BASE_URL, DEFAULT_LEGACY_URL, LegacyBillingClient, PartnerClient
from ._clock import Clock, FakeClock
from ._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    ConnectError,
    CredentialsRefusedError,
    CtctError,
    FieldError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RedirectError,
    RequestTimeoutError,
    ResponseError,
    ServerError,
    ServiceUnavailableError,
    ThrottledError,
    TokenUnavailableError,
    TransportError,
    UnauthorizedError,
    UnconfirmedCreateError,
    UnsupportedMediaTypeError,
    ValidationError,
    WrongEventLoopError,
)
from ._hooks import RequestDetails, ResponseDetails, RetryDetails
from ._models import (
    AccountPage,
    AccountSummary,
    BillingStatus,
    Cancellation,
    CancelReason,
    CreatedAccount,
    CreateResult,
    CreateStatus,
    LegacyPlan,
    NewAccount,
    Plan,
    PlanChange,
    PlanType,
    SsoUser,
    Tier,
    WebhookSubscription,
    WebhookTopic,
)
from ._pipeline import ClientOptions
from ._policy import RateLimiter, RetryPolicy
from ._protocol import AsyncTransport, CallLog, Request, Response
from ._rows import BadRow, cancellation_from_row, new_account_from_row, plan_change_from_row
from ._tokens import DEFAULT_TOKEN_URL, NEWER_TOKEN_URL, CachedToken
from ._transport import Timeouts
from ._version import __version__
from .journal import Journal
from .sources import read_rows

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LEGACY_URL",
    "DEFAULT_TOKEN_URL",
    "NEWER_TOKEN_URL",
    "APIError",
    "AccountPage",
    "AccountSummary",
    "AsyncTransport",
    "AuthenticationError",
    "BadRequestError",
    "BadRow",
    "BillingStatus",
    "CachedToken",
    "CallLog",
    "CancelReason",
    "Cancellation",
    "ClientClosedError",
    "ClientOptions",
    "Clock",
    "ConflictError",
    "ConnectError",
    "CreateResult",
    "CreateStatus",
    "CreatedAccount",
    "CredentialsRefusedError",
    "CtctError",
    "FakeClock",
    "FieldError",
    "Journal",
    "LegacyBillingClient",
    "LegacyPlan",
    "MalformedResponseError",
    "MemoryTokenCache",
    "NewAccount",
    "NotFoundError",
    "Outcome",
    "OutcomeState",
    "PartnerClient",
    "PermissionDeniedError",
    "Plan",
    "PlanChange",
    "PlanType",
    "QuotaExceededError",
    "QuotaStatus",
    "RateLimitError",
    "RateLimiter",
    "RedirectError",
    "Request",
    "RequestDetails",
    "RequestTimeoutError",
    "Response",
    "ResponseDetails",
    "ResponseError",
    "RetryDetails",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "SharedTokenCache",
    "SsoUser",
    "ThrottledError",
    "Tier",
    "Timeouts",
    "TokenCache",
    "TokenManager",
    "TokenProvider",
    "TokenRefresh",
    "TokenSettings",
    "TokenUnavailableError",
    "TransportError",
    "UnauthorizedError",
    "UnconfirmedCreateError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "WebhookSubscription",
    "WebhookTopic",
    "WrongEventLoopError",
    "__version__",
    "cancellation_from_row",
    "new_account_from_row",
    "plan_change_from_row",
    "read_rows",
]
