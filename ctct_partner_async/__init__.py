"""An asyncio SDK for Constant Contact's technology-partner API.

>>> async with PartnerClient(api_key=..., client_id=..., client_secret=...) as client:
...     created = await client.accounts.create(NewAccount(...))
"""

from ._version import __version__
from .auth import MemoryTokenCache, TokenCache, TokenManager, TokenProvider, TokenRefresh, TokenSettings
from .bulk import Outcome, OutcomeState
from .client import DEFAULT_BASE_URL, DEFAULT_LEGACY_URL, LegacyBillingClient, PartnerClient
from .clock import Clock, FakeClock
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConnectError,
    CtctError,
    FieldError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    ResponseError,
    ServerError,
    ServiceUnavailableError,
    ThrottledError,
    TransportError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from .hooks import RequestDetails, ResponseDetails, RetryDetails
from .journal import Journal
from .models import (
    AccountPage,
    AccountSummary,
    BillingStatus,
    Cancellation,
    CancelReason,
    CreatedAccount,
    LegacyPlan,
    NewAccount,
    Plan,
    PlanType,
    SsoUser,
    Tier,
    WebhookSubscription,
    WebhookTopic,
)
from .policy import RetryPolicy
from .sources import read_rows
from .tokens import DEFAULT_TOKEN_URL, NEWER_TOKEN_URL
from .transport import Timeouts

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LEGACY_URL",
    "DEFAULT_TOKEN_URL",
    "NEWER_TOKEN_URL",
    "APIError",
    "AccountPage",
    "AccountSummary",
    "AuthenticationError",
    "BadRequestError",
    "BillingStatus",
    "CancelReason",
    "Cancellation",
    "Clock",
    "ConflictError",
    "ConnectError",
    "CreateResult",
    "CreateStatus",
    "CreatedAccount",
    "CtctError",
    "FakeClock",
    "FieldError",
    "Journal",
    "LegacyBillingClient",
    "LegacyPlan",
    "MemoryTokenCache",
    "NewAccount",
    "NotFoundError",
    "Outcome",
    "OutcomeState",
    "PartnerClient",
    "PermissionDeniedError",
    "Plan",
    "PlanType",
    "QuotaExceededError",
    "RateLimitError",
    "RequestDetails",
    "RequestTimeoutError",
    "ResponseDetails",
    "ResponseError",
    "RetryDetails",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "SsoUser",
    "ThrottledError",
    "Tier",
    "Timeouts",
    "TokenCache",
    "TokenManager",
    "TokenProvider",
    "TokenRefresh",
    "TokenSettings",
    "TransportError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "WebhookSubscription",
    "WebhookTopic",
    "__version__",
    "read_rows",
]
