"""Client accounts in creation order, their login names, and creates deferred by a 503.

Deferred creates: a create answered 503 stores its request with a due time (by the clock); the account
comes into existence the first time the store is touched at or after that time (:meth:`AccountStore.settle`
runs before every request and every admin read, so a fake clock needs no background task). While a deferred
create is pending, its ``login_name`` counts as taken: a second create with that name gets 409, as the
stored request holds it. If the name is nevertheless taken when the request comes due (an account seeded
through the admin API bypasses pending reservations), the deferred create is dropped and counted.

The list's order (``LIST_ORDERS``): ``creation`` (new accounts at the end, as the docs' offsets suggest),
``reverse`` (new accounts first) or ``shuffled`` (by a hash of the id and the seed: stable, and new
accounts land anywhere). Each order is kept as accounts are created, for all accounts and for each of
managed and unmanaged, so a page costs its own size, whatever the number of accounts.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .clock import iso_utc
from .config import LIST_ORDERS

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

    def __init__(self, seed: int, list_order: str = "creation") -> None:
        if list_order not in LIST_ORDERS:
            raise ValueError(f"list_order must be one of {', '.join(LIST_ORDERS)}")
        self._ids = random.Random(f"ids:{seed}")  # noqa: S311 - reproducible ids, not security
        self._seed = seed
        self.list_order = list_order
        self._accounts: dict[str, Account] = {}
        # the list in its order, for all accounts (None) and for managed (True) and unmanaged (False)
        self._listed: dict[bool | None, list[Account]] = {None: [], True: [], False: []}
        self._keys: dict[bool | None, list[bytes]] = {None: [], True: [], False: []}  # shuffled: sort keys
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

    def page(self, managed: bool | None, start: int, limit: int) -> tuple[Sequence[Account], int]:
        """The accounts at list positions ``start`` to ``start + limit`` (``managed``: only those, or
        ``None`` for all), in the list's order, and how many the list holds."""
        listed = self._listed[managed]
        total = len(listed)
        if self.list_order == "reverse":
            end = max(0, total - start)
            return listed[max(0, end - limit) : end][::-1], total
        return listed[start : start + limit], total

    def _sort_key(self, account: Account) -> bytes:
        return hashlib.blake2b(f"{self._seed}:{account.encoded_account_id}".encode(), digest_size=8).digest()

    def _list(self, account: Account) -> None:
        for group in (None, account.managed):
            listed = self._listed[group]
            if self.list_order == "shuffled":
                key = self._sort_key(account)
                at = bisect.bisect(self._keys[group], key)
                self._keys[group].insert(at, key)
                listed.insert(at, account)
            else:
                listed.append(account)

    def seed(self, count: int, now: float) -> None:
        """``count`` accounts that exist before the sandbox starts (``seeded_000001``, organization
        ``Seeded 1``, ...), made directly: fast, and without the request path."""
        order, self.list_order = self.list_order, "creation"  # listed in one sort at the end
        try:
            for number in range(1, count + 1):
                login = f"seeded_{number:06d}"
                email, org = f"{login}@example.com", f"Seeded {number}"
                body: dict[str, object] = {"login_name": login, "contact_email": email, "country_code": "US",
                                           "organization_name": org}  # fmt: skip
                self.create(body, now)
        finally:
            self.list_order = order
        if order == "shuffled":
            for group, listed in self._listed.items():
                keyed = sorted((self._sort_key(a), a.encoded_account_id, a) for a in listed)
                self._keys[group] = [key for key, _, _ in keyed]
                self._listed[group] = [a for _, _, a in keyed]

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
        self._list(account)
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
