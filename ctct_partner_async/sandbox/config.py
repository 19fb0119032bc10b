"""The sandbox's settings: a frozen :class:`SandboxConfig` and the mutable :class:`Faults` it starts with.

``Faults`` is the one mutable settings object: tests flip its fields directly
(``sandbox.faults.create_503 = 1.0``), the admin endpoint merges JSON into it and the command line sets it
from ``--fault name=value``. :meth:`Faults.update` is the checked way in for untyped values.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

LIST_ORDERS = ("creation", "reverse", "shuffled")
"""The account list's orders: new accounts last (the default), first, or anywhere (stable per seed)."""

PROBABILITIES = (
    "create_503", "throttle_429", "error_403", "error_406", "error_500", "error_502", "error_504",
    "drop_after_commit", "webhook_drop",
)  # fmt: skip
DELAYS = ("latency", "deferred_delay", "token_latency", "webhook_delay")
TOKEN_FAIL_STATUSES = range(400, 600)
"""What ``token_fail_status`` may be: an error status (4xx or 5xx)."""
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass
class Faults:
    """Scripted misbehaviour; probabilities are drawn from one ``random.Random(seed)``.

    ``fault_operations`` restricts the probabilistic faults to the named operations (empty: all of them).
    ``latency`` and ``token_latency`` are real delays (``asyncio.sleep``), not clock time.
    ``token_fail_next`` is a one-shot fault: the next that many token requests answer ``token_fail_status``
    (each one takes one off), then the endpoint behaves again. ``webhook_drop`` loses a webhook delivery
    before its first attempt; ``webhook_delay`` holds each delivery's first attempt back that many seconds
    of the sandbox clock.
    """

    latency: float = 0.0
    create_503: float = 0.0
    deferred_delay: float = 2.0
    throttle_429: float = 0.0
    error_403: float = 0.0
    error_406: float = 0.0
    error_500: float = 0.0
    error_502: float = 0.0
    error_504: float = 0.0
    drop_after_commit: float = 0.0
    token_latency: float = 0.0
    token_outage: bool = False
    token_fail_next: int = 0
    token_fail_status: int = 503
    webhook_drop: float = 0.0
    webhook_delay: float = 0.0
    fault_operations: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The fields as JSON-ready values."""
        values = dataclasses.asdict(self)
        values["fault_operations"] = list(self.fault_operations)
        return values

    def copy(self) -> Faults:
        """An independent copy."""
        return dataclasses.replace(self)

    def assign(self, other: Faults) -> None:
        """Take every field from ``other``, in place (holders of this object see the change)."""
        for name in _field_names():
            setattr(self, name, getattr(other, name))

    def update(self, values: Mapping[str, object]) -> None:
        """Merge ``values`` (JSON values or strings); on a bad one raise ``ValueError``, changing nothing."""
        coerced = {name: coerce_fault(name, value) for name, value in values.items()}
        for name, value in coerced.items():
            setattr(self, name, value)


def _field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Faults))


def coerce_fault(name: str, value: object) -> object:
    """Check and convert one fault setting; ``ValueError`` says what is wrong."""
    if name in PROBABILITIES:
        number = _number(name, value)
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"fault {name} is a probability between 0 and 1, got {value!r}")
        return number
    if name in DELAYS:
        number = _number(name, value)
        if number < 0:
            raise ValueError(f"fault {name} is a delay in seconds and cannot be negative, got {value!r}")
        return number
    if name == "token_outage":
        return _boolean(name, value)
    if name == "token_fail_next":
        count = _integer(name, value)
        if count < 0:
            raise ValueError(f"fault {name} counts token requests and cannot be negative, got {value!r}")
        return count
    if name == "token_fail_status":
        status = _integer(name, value)
        if status not in TOKEN_FAIL_STATUSES:
            raise ValueError(f"fault {name} is an HTTP error status (400 to 599), got {value!r}")
        return status
    if name == "fault_operations":
        return _names(value)
    raise ValueError(f"unknown fault {name!r}; known: {', '.join(_field_names())}")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"fault {name} needs a number, got {value!r}")  # noqa: TRY004 - one error type
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"fault {name} needs a number, got {value!r}") from None


def _integer(name: str, value: object) -> int:
    """A whole number from an int, a whole float (JSON ``3.0``) or a string of digits."""
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"fault {name} needs a whole number, got {value!r}")


def _boolean(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"fault {name} needs true or false, got {value!r}")


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError(f"fault_operations needs a list of operation names, got {value!r}")


def parse_fault_assignment(text: str) -> tuple[str, object]:
    """Split and check a ``name=value`` command-line assignment."""
    name, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"expected NAME=VALUE, got {text!r}")
    name = name.strip()
    return name, coerce_fault(name, value.strip())


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox starts. ``clock`` (epoch seconds) drives every time decision the sandbox makes.

    ``rate_limit``, ``daily_quota`` and ``token_rate_limit`` are off when 0. ``faults`` is copied into
    the running sandbox, so changing the live faults never changes the config (``reset()`` goes back to it).

    Webhook deliveries (:mod:`.outbox`): an attempt without a 2xx is retried every
    ``webhook_retry_interval`` seconds of ``clock`` for ``webhook_retry_for`` seconds; each attempt may
    take ``webhook_timeout`` real seconds; ``webhook_hmac_secret`` adds the v2 HMAC header;
    ``webhook_remote`` lets deliveries leave loopback (off: only loopback hook URIs are called).
    """

    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"  # noqa: S105 - the sandbox's well-known default
    api_key: str = "sandbox-api-key"
    token_ttl: float = 3600.0
    rate_limit: float = 4.0
    daily_quota: int = 10_000
    token_rate_limit: float = 1.0
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], float] = time.time
    page_size_default: int = 50
    request_log_size: int = 10_000
    existing_accounts: int = 0
    list_order: str = "creation"
    webhook_retry_interval: float = 60.0
    webhook_retry_for: float = 3600.0
    webhook_timeout: float = 10.0
    webhook_hmac_secret: str | None = None
    webhook_remote: bool = False

    def __post_init__(self) -> None:
        if self.token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        if self.rate_limit < 0 or self.daily_quota < 0 or self.token_rate_limit < 0:
            raise ValueError("rate limits cannot be negative (0 turns a limit off)")
        if not 10 <= self.page_size_default <= 50:
            raise ValueError("page_size_default must be between 10 and 50")
        if self.request_log_size < 0:
            raise ValueError("request_log_size cannot be negative")
        if self.existing_accounts < 0:
            raise ValueError("existing_accounts cannot be negative")
        if self.webhook_retry_interval <= 0 or self.webhook_timeout <= 0:
            raise ValueError("webhook_retry_interval and webhook_timeout must be positive")
        if self.webhook_retry_for < 0:
            raise ValueError("webhook_retry_for cannot be negative")
        if self.list_order not in LIST_ORDERS:
            raise ValueError(f"list_order must be one of {', '.join(LIST_ORDERS)}")
