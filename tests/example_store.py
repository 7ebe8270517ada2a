"""A third-party store: plain dicts, implementing only the required ports, no accelerator.

It shows what writing a backend takes (see "Writing your own store" in the backends guide) and
runs the whole contract suite as a fourth backend (``tests/test_contract.py``): search,
exports, matching and merges work through the services' fallbacks. It favours being obviously
right over being fast: a unit of work copies the tables when it starts and puts its copy in
place at commit, and holds the store's lock meanwhile, so units of work run one at a time.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import attrs

from customerkit.errors import (
    AlreadyImported,
    ConcurrentModification,
    DuplicateCustomerNumber,
    DuplicateExternalUser,
    DuplicateUsername,
    ValidationError,
)
from customerkit.identity import email_key, username_key
from customerkit.model import (
    Category,
    ChangeRecord,
    CompanyType,
    Contact,
    Customer,
    Dismissal,
    User,
)
from customerkit.ports import READ_ONLY_REFUSAL
from customerkit.text import number_key

T = TypeVar("T")


@attrs.define
class Tables:
    """Everything a book stores, by key."""

    customers: dict[str, Customer] = attrs.Factory(dict)
    contacts: dict[str, Contact] = attrs.Factory(dict)
    users: dict[str, User] = attrs.Factory(dict)
    history: list[ChangeRecord] = attrs.Factory(list)
    company_types: dict[str, CompanyType] = attrs.Factory(dict)
    categories: dict[str, Category] = attrs.Factory(dict)
    settings: dict[tuple[str, str], bool] = attrs.Factory(dict)
    merges: dict[str, dict[str, Any]] = attrs.Factory(dict)
    dismissals: dict[tuple[str, str, str, str], Dismissal] = attrs.Factory(dict)
    #: (unique key kind, key) -> the id of the customer or contact holding it.
    holders: dict[tuple[str, Any], str] = attrs.Factory(dict)
    last_seq: int = 0


class _Part:
    """A repository over the unit of work's copy of the tables."""

    def __init__(self, uow: ExampleUnitOfWork) -> None:
        self._uow = uow

    @property
    def _t(self) -> Tables:
        return self._uow.tables

    def _write(self) -> Tables:
        self._uow.check_writable()
        return self._uow.tables

    def _hold(self, record_id: str, old: list[tuple[str, Any]], new: list[tuple[str, Any]]) -> None:
        """Move a record's unique keys from ``old`` to ``new``, refusing one held by another."""
        holders = self._write().holders
        for key in new:
            holder = holders.get(key)
            if holder is not None and holder != record_id:
                raise _CLASH[key[0]](holder)
        for key in old:
            if holders.get(key) == record_id:
                del holders[key]
        for key in new:
            holders[key] = record_id

    def _holder(self, key: tuple[str, Any]) -> str | None:
        return self._t.holders.get(key)

    def _forget_dismissals(self, kind: str, record_id: str) -> None:
        tables = self._write()
        for key in [k for k in tables.dismissals if k[1] == kind and record_id in k[2:]]:
            del tables.dismissals[key]


_CLASH: dict[str, Callable[[str], Exception]] = {
    "username": lambda holder: DuplicateUsername(),
    "number": DuplicateCustomerNumber,
    "source": AlreadyImported,
    "external user": DuplicateExternalUser,
}


def _customer_keys(customer: Customer) -> list[tuple[str, Any]]:
    """The unique keys a customer holds (rules of ``customerkit.ports``)."""
    keys: list[tuple[str, Any]] = []
    if customer.username is not None:
        keys.append(("username", username_key(customer.username)))
    if customer.is_live and customer.customer_number:
        keys.append(("number", (customer.location_id, number_key(customer.customer_number))))
    if customer.is_live and customer.source is not None:
        keys.append(("source", (customer.source.source, customer.source.external_id)))
    return keys


class Customers(_Part):
    """The required ``CustomerRepository`` and nothing more."""

    def get(self, customer_id: str) -> Customer | None:
        return self._t.customers.get(customer_id)

    def add(self, customer: Customer) -> None:
        tables = self._write()
        self._hold(customer.id, [], _customer_keys(customer))
        tables.customers[customer.id] = customer

    def update(self, customer: Customer, *, expected_version: int) -> None:
        tables = self._write()
        stored = tables.customers.get(customer.id)
        if stored is None or stored.version != expected_version:
            raise ConcurrentModification("customer", customer.id)
        self._hold(customer.id, _customer_keys(stored), _customer_keys(customer))
        tables.customers[customer.id] = customer

    def remove(self, customer_id: str) -> None:
        stored = self._write().customers.pop(customer_id, None)
        if stored is not None:
            self._hold(customer_id, _customer_keys(stored), [])
        self._forget_dismissals("customer", customer_id)

    def merged_into(self, customer_id: str) -> list[Customer]:
        found = [c for c in self._t.customers.values() if c.merged_into == customer_id]
        return sorted(found, key=lambda c: c.id)

    def _held(self, key: tuple[str, Any]) -> Customer | None:
        holder = self._holder(key)
        return None if holder is None else self._t.customers[holder]

    def find_by_username(self, username_key: str) -> Customer | None:
        return self._held(("username", username_key))

    def find_by_source(self, source: str, external_id: str) -> Customer | None:
        return self._held(("source", (source, external_id)))

    def iter_location(self, location_id: str) -> Iterator[Customer]:
        customers = self._t.customers
        live = [c for c in customers.values() if c.location_id == location_id and c.is_live]
        return iter(sorted(live, key=lambda c: c.id))


class Contacts(_Part):
    """The required ``ContactRepository`` and nothing more."""

    def get(self, contact_id: str) -> Contact | None:
        return self._t.contacts.get(contact_id)

    @staticmethod
    def _keys(contact: Contact) -> list[tuple[str, Any]]:
        if contact.external_user and contact.is_live and contact.email:
            return [("external user", email_key(contact.email))]
        return []

    def add(self, contact: Contact) -> None:
        tables = self._write()
        self._hold(contact.id, [], self._keys(contact))
        tables.contacts[contact.id] = contact

    def update(self, contact: Contact, *, expected_version: int) -> None:
        tables = self._write()
        stored = tables.contacts.get(contact.id)
        if stored is None or stored.version != expected_version:
            raise ConcurrentModification("contact", contact.id)
        self._hold(contact.id, self._keys(stored), self._keys(contact))
        tables.contacts[contact.id] = contact

    def remove(self, contact_id: str) -> None:
        stored = self._write().contacts.pop(contact_id, None)
        if stored is not None:
            self._hold(contact_id, self._keys(stored), [])
        self._forget_dismissals("contact", contact_id)

    def merged_into(self, contact_id: str) -> list[Contact]:
        found = [c for c in self._t.contacts.values() if c.merged_into == contact_id]
        return sorted(found, key=lambda c: c.id)

    def for_customer(self, customer_id: str) -> list[Contact]:
        found = [c for c in self._t.contacts.values() if c.customer_id == customer_id]
        return sorted(found, key=lambda c: (c.created_at, c.id))


class Users(_Part):
    def get(self, user_id: str) -> User | None:
        return self._t.users.get(user_id)

    def add(self, user: User) -> None:
        tables = self._write()
        if user.id in tables.users:
            raise ValidationError({"id": "a user with this id exists; choose another id"})
        tables.users[user.id] = user

    def for_location(self, location_id: str) -> list[User]:
        return sorted(
            (u for u in self._t.users.values() if u.location_id == location_id),
            key=lambda u: u.id,
        )

    def for_fleet(self, fleet_customer_id: str) -> list[User]:
        return sorted(
            (u for u in self._t.users.values() if u.fleet_customer_id == fleet_customer_id),
            key=lambda u: u.id,
        )


class History(_Part):
    def append(self, record: ChangeRecord) -> ChangeRecord:
        tables = self._write()
        tables.last_seq += 1
        stored = attrs.evolve(record, seq=tables.last_seq)
        tables.history.append(stored)
        return stored

    def for_customer(self, customer_id: str) -> list[ChangeRecord]:
        return [r for r in self._t.history if r.customer_id == customer_id]

    def remove_for_customer(self, customer_id: str) -> int:
        tables = self._write()
        kept = [r for r in tables.history if r.customer_id != customer_id]
        removed = len(tables.history) - len(kept)
        tables.history[:] = kept
        return removed


class Reference(_Part):
    def add_company_type(self, company_type: CompanyType) -> None:
        tables = self._write()
        if company_type.name in tables.company_types:
            raise ValidationError({"name": "this company type exists already"})
        tables.company_types[company_type.name] = company_type

    def get_company_type(self, name: str) -> CompanyType | None:
        return self._t.company_types.get(name)

    def company_types(self) -> list[CompanyType]:
        return [self._t.company_types[name] for name in sorted(self._t.company_types)]

    def add_category(self, category: Category) -> None:
        tables = self._write()
        if category.name in tables.categories:
            raise ValidationError({"name": "this category exists already"})
        tables.categories[category.name] = category

    def get_category(self, name: str) -> Category | None:
        return self._t.categories.get(name)

    def categories(self) -> list[Category]:
        return [self._t.categories[name] for name in sorted(self._t.categories)]


class Settings(_Part):
    def source_enabled(self, source: str, location_id: str) -> bool:
        return self._t.settings.get((source, location_id), False)

    def set_source_enabled(self, source: str, location_id: str, enabled: bool) -> None:
        self._write().settings[source, location_id] = enabled


class Merges(_Part):
    def add(self, merge_id: str, record: Mapping[str, Any]) -> None:
        self._write().merges[merge_id] = dict(record)

    def get(self, merge_id: str) -> Mapping[str, Any] | None:
        return self._t.merges.get(merge_id)

    def update(self, merge_id: str, record: Mapping[str, Any]) -> None:
        self._write().merges[merge_id] = dict(record)

    def remove(self, merge_id: str) -> None:
        self._write().merges.pop(merge_id, None)


def _pair(location_id: str, kind: str, left: str, right: str) -> tuple[str, str, str, str]:
    low, high = sorted((left, right))
    return location_id, kind, low, high


class Dismissals(_Part):
    def add(self, dismissal: Dismissal) -> Dismissal | None:
        tables = self._write()
        key = _pair(dismissal.location_id, dismissal.kind, dismissal.left_id, dismissal.right_id)
        stored = tables.dismissals.get(key)
        if stored is not None:
            return stored
        tables.dismissals[key] = dismissal
        return None

    def remove(self, location_id: str, kind: str, left_id: str, right_id: str) -> bool:
        key = _pair(location_id, kind, left_id, right_id)
        return self._write().dismissals.pop(key, None) is not None

    def for_location(self, location_id: str, kind: str) -> list[Dismissal]:
        found = [d for k, d in self._t.dismissals.items() if k[:2] == (location_id, kind)]
        return sorted(found, key=lambda d: (d.left_id, d.right_id))


def _copied(tables: Tables) -> Tables:
    """A copy whose tables can change without touching ``tables`` (records are frozen)."""
    fields = attrs.asdict(tables, recurse=False)
    return Tables(**{name: copy.copy(value) for name, value in fields.items()})


class ExampleUnitOfWork:
    """A transaction: a copy of the tables, put in place by ``commit``."""

    def __init__(self, store: ExampleStore, *, read_only: bool) -> None:
        self._store = store
        self._read_only = read_only
        self.tables = store.tables
        self.customers = Customers(self)
        self.contacts = Contacts(self)
        self.users = Users(self)
        self.history = History(self)
        self.reference = Reference(self)
        self.settings = Settings(self)
        self.merges = Merges(self)
        self.dismissals = Dismissals(self)

    def check_writable(self) -> None:
        """Refuse to write in a read-only unit of work, as every backend does."""
        if self._read_only:
            raise RuntimeError(READ_ONLY_REFUSAL)

    def __enter__(self) -> Self:
        self._store.lock.acquire()
        self._began = self._store.commits
        self.tables = _copied(self._store.tables)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.tables = self._store.tables  # anything not committed is dropped
        self._store.lock.release()

    def commit(self) -> None:
        """Put this unit of work's tables in place."""
        self.check_writable()
        if self._store.commits != self._began:  # a unit of work nested in this one committed
            raise ConcurrentModification("book", "tables")
        self._store.tables = self.tables
        self._store.commits += 1
        self.tables = _copied(self.tables)
        self._began = self._store.commits


class ExampleStore:
    """The ``Store``: hands out units of work over one set of tables."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.commits = 0
        self.lock = threading.RLock()

    def unit_of_work(self, *, read_only: bool = False) -> ExampleUnitOfWork:
        return ExampleUnitOfWork(self, read_only=read_only)

    def run(self, work: Callable[[], T]) -> T:
        return work()

    def close(self) -> None:
        pass
