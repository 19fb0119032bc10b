"""Client accounts in creation order, their login names, and creates deferred by a 503.

Deferred creates: a create answered 503 stores its request with a due time (by the clock); the account
comes into existence the first time the store is touched at or after that time (:meth:`AccountStore.settle`
runs before every request and every admin read, so a fake clock needs no background task). While a deferred
create is pending, its ``login_name`` counts as taken: a second create with that name gets 409, as the
stored request holds it. If the name is nevertheless taken when the request comes due (an account seeded
through the admin API bypasses pending reservations), the deferred create is dropped and counted.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from .clock import iso_utc

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_SPACE = 36**8
_PAIRS = tuple(a + b for a in _ID_ALPHABET for b in _ID_ALPHABET)
_PAIR_COUNT = len(_PAIRS)
_UUID_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)


def _pairs(number: int) -> str:
    """Four base-36 characters for ``number`` < 36**4."""
    high, low = divmod(number, _PAIR_COUNT)
    return _PAIRS[high] + _PAIRS[low]


@dataclass(slots=True)
class Account:
    """One client account. ``profile`` is the create body without its password."""

    encoded_account_id: str
    provision_uuid: str
    login_name: str
    organization_name: str | None
    managed: bool
    created_at: float
    profile: dict[str, object]
    plan_type: str = "TRIAL"
    billing_status: str = "Trial"
    billing_day_of_month: int | None = None
    plan_group_id: int | None = None
    cancellation: dict[str, object] | None = None
    sso_users: dict[str, dict[str, object]] | None = None
    unsubscribed: set[str] | None = None

    def admin_view(self) -> dict[str, object]:
        """Everything the sandbox knows about the account, JSON-ready."""
        return {
            **self.profile,
            "encoded_account_id": self.encoded_account_id,
            "provision_uuid": self.provision_uuid,
            "login_name": self.login_name,
            "site_owner_name": self.login_name,
            "organization_name": self.organization_name,
            "managed_site_owner": self.managed,
            "plan_type": self.plan_type,
            "billing_status": self.billing_status,
            "billing_day_of_month": self.billing_day_of_month,
            "plan_group_id": self.plan_group_id,
            "created_at": iso_utc(self.created_at),
            "cancellation": None if self.cancellation is None else dict(self.cancellation),
            "sso_users": sorted(self.sso_users or ()),
            "unsubscribed": sorted(self.unsubscribed or ()),
        }


@dataclass(order=True, slots=True)
class DeferredCreate:
    """A create answered 503, to be carried out at ``due``."""

    due: float
    seq: int
    body: dict[str, object] = field(compare=False)


class AccountStore:
    """The accounts, the login names in use (compared case-insensitively) and the deferred creates."""

    def __init__(self, seed: int) -> None:
        self._ids = random.Random(f"ids:{seed}")  # noqa: S311 - reproducible ids, not security
        self._accounts: dict[str, Account] = {}
        self._logins: set[str] = set()
        self._pending: list[DeferredCreate] = []
        self._pending_logins: set[str] = set()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._accounts)

    def __iter__(self) -> Iterator[Account]:
        return iter(self._accounts.values())

    @property
    def pending(self) -> int:
        """How many deferred creates are waiting."""
        return len(self._pending)

    def get(self, encoded_account_id: str) -> Account | None:
        """The account, if it exists."""
        return self._accounts.get(encoded_account_id)

    def login_taken(self, login_name: str) -> bool:
        """Whether an account or a pending deferred create holds ``login_name`` (case-insensitive)."""
        key = login_name.lower()
        return key in self._logins or key in self._pending_logins

    def account_holds(self, login_name: str) -> bool:
        """Whether an existing account holds ``login_name`` (case-insensitive)."""
        return login_name.lower() in self._logins

    def create(self, body: dict[str, object], now: float) -> Account:
        """Commit a new trial account from a validated create body (the caller checked the login name).

        The store keeps ``body`` (without any password) as the account's profile: no copy per create.
        """
        body.pop("password", None)
        login = str(body["login_name"])
        org = body.get("organization_name")
        account = Account(
            encoded_account_id=self._new_id(),
            provision_uuid=self._new_uuid(),
            login_name=login,
            organization_name=org if isinstance(org, str) else None,
            managed=body.get("managed_site_owner", True) is not False,
            created_at=now,
            profile=body,
        )
        self._accounts[account.encoded_account_id] = account
        self._logins.add(login.lower())
        return account

    def defer(self, body: dict[str, object], due: float) -> None:
        """Store a create to be carried out at ``due``; its login name is held until then."""
        body.pop("password", None)
        self._seq += 1
        heapq.heappush(self._pending, DeferredCreate(due, self._seq, body))
        self._pending_logins.add(str(body["login_name"]).lower())

    def settle(self, now: float) -> tuple[int, int]:
        """Carry out the deferred creates due by ``now``; return (created, dropped)."""
        created = dropped = 0
        while self._pending and self._pending[0].due <= now:
            item = heapq.heappop(self._pending)
            login = str(item.body["login_name"]).lower()
            self._pending_logins.discard(login)
            if login in self._logins:
                dropped += 1
            else:
                self.create(item.body, item.due)
                created += 1
        return created, dropped

    def _new_id(self) -> str:
        """``a07e1`` and 8 random base-36 characters, like the vendor's ids (unique in this store)."""
        while True:
            number = self._ids.randrange(_ID_SPACE)
            high, low = divmod(number, _PAIR_COUNT**2)
            candidate = "a07e1" + _pairs(high) + _pairs(low)
            if candidate not in self._accounts:
                return candidate

    def _new_uuid(self) -> str:
        """A version-4 UUID string from the seeded generator (what ``uuid.UUID(int=..., version=4)``
        gives, formatted directly: this runs on every create)."""
        text = f"{(self._ids.getrandbits(128) & _UUID_VERSION_MASK) | _UUID_VERSION_BITS:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
