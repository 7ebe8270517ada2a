"""The in-memory backend: a product, not a test double.

Same behaviour and errors as the SQL backend. A unit of work holds the store's lock for its whole
life, so units of work run one at a time; every write records how to undo itself, and leaving a
unit of work without committing undoes them in reverse order. The search index is updated at
commit, from the customers the unit of work touched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from customerkit.errors import (
    AlreadyImported,
    ConcurrentModification,
    DuplicateCustomerNumber,
    DuplicateExternalUser,
    DuplicateUsername,
    ValidationError,
)
from customerkit.identity import email_key, username_key
from customerkit.model import Category, ChangeRecord, CompanyType, Contact, Customer, User
from customerkit.search.index import MemorySearchIndex
from customerkit.search.query import RankedMatch, SearchDocument, SearchQuery
from customerkit.text import number_key

_MISSING: Any = object()
#: From this many customers changed in one unit of work, the index is bulk-loaded.
_BULK_INDEX = 256


class _Journal:
    """Undo steps of the running unit of work."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], None]] = []

    def set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        old = table.get(key, _MISSING)
        table[key] = value
        self.steps.append(lambda: self._restore(table, key, old))

    def pop(self, table: dict[Any, Any], key: Any) -> None:
        old = table.pop(key, _MISSING)
        self.steps.append(lambda: self._restore(table, key, old))

    def append(self, items: list[Any], item: Any) -> None:
        items.append(item)
        self.steps.append(items.pop)

    @staticmethod
    def _restore(table: dict[Any, Any], key: Any, old: Any) -> None:
        if old is _MISSING:
            table.pop(key, None)
        else:
            table[key] = old

    def undo(self) -> None:
        while self.steps:
            self.steps.pop()()


def search_document(customer: Customer) -> SearchDocument:
    """What the search index needs of a customer."""
    return SearchDocument(
        id=customer.id,
        location_id=customer.location_id,
        name=customer.company_name,
        city=customer.city,
        state=customer.state,
        number=customer.customer_number,
    )


class _State:
    """Every table of a memory book, with its secondary indexes."""

    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.by_location: dict[str, dict[str, None]] = {}
        self.numbers: dict[tuple[str, str], str] = {}
        self.usernames: dict[str, str] = {}
        self.source_ids: dict[tuple[str, str], str] = {}
        self.contacts: dict[str, Contact] = {}
        self.contacts_of: dict[str, dict[str, None]] = {}
        self.external_users: dict[str, str] = {}
        self.users: dict[str, User] = {}
        self.history: dict[str, list[ChangeRecord]] = {}
        self.history_seq: list[int] = [0]
        self.company_types: dict[str, CompanyType] = {}
        self.categories: dict[str, Category] = {}
        self.settings: dict[tuple[str, str], bool] = {}
        self.merges: dict[str, Mapping[str, Any]] = {}
        self.index = MemorySearchIndex()


class _Repository:
    def __init__(
        self, state: _State, journal: _Journal, touched: dict[str, Customer | None]
    ) -> None:
        self._s = state
        self._j = journal
        self._touched = touched


class _Customers(_Repository):
    def get(self, customer_id: str) -> Customer | None:
        return self._s.customers.get(customer_id)

    def _touch(self, customer_id: str) -> None:
        """Remember the customer as it was before this unit of work, for the search index."""
        if customer_id not in self._touched:
            self._touched[customer_id] = self._s.customers.get(customer_id)

    def add(self, customer: Customer) -> None:
        self._check_unique(customer)
        self._touch(customer.id)
        self._j.set(self._s.customers, customer.id, customer)
        members = self._s.by_location.setdefault(customer.location_id, {})
        self._j.set(members, customer.id, None)
        self._index_keys(customer)

    def update(self, customer: Customer, *, expected_version: int) -> None:
        stored = self._s.customers.get(customer.id)
        if stored is None or stored.version != expected_version:
            raise ConcurrentModification("customer", customer.id)
        self._unindex_keys(stored)
        try:
            self._check_unique(customer)
        except Exception:
            self._index_keys(stored)
            raise
        self._touch(customer.id)
        self._j.set(self._s.customers, customer.id, customer)
        self._index_keys(customer)

    def remove(self, customer_id: str) -> None:
        stored = self._s.customers.get(customer_id)
        if stored is None:
            return
        self._touch(customer_id)
        self._unindex_keys(stored)
        self._j.pop(self._s.customers, customer_id)
        self._j.pop(self._s.by_location.get(stored.location_id, {}), customer_id)

    def _check_unique(self, customer: Customer) -> None:
        if customer.username is not None:
            holder = self._s.usernames.get(username_key(customer.username))
            if holder is not None and holder != customer.id:
                raise DuplicateUsername
        if customer.is_live and customer.customer_number:
            key = (customer.location_id, number_key(customer.customer_number))
            holder = self._s.numbers.get(key)
            if holder is not None and holder != customer.id:
                raise DuplicateCustomerNumber(holder)
        if customer.is_live and customer.source is not None:
            link = (customer.source.source, customer.source.external_id)
            holder = self._s.source_ids.get(link)
            if holder is not None and holder != customer.id:
                raise AlreadyImported(holder)

    def _keys(self, customer: Customer) -> list[tuple[dict[Any, str], Any]]:
        keys: list[tuple[dict[Any, str], Any]] = []
        if customer.username is not None:
            keys.append((self._s.usernames, username_key(customer.username)))
        if customer.is_live and customer.customer_number:
            key = (customer.location_id, number_key(customer.customer_number))
            keys.append((self._s.numbers, key))
        if customer.is_live and customer.source is not None:
            keys.append((self._s.source_ids, (customer.source.source, customer.source.external_id)))
        return keys

    def _index_keys(self, customer: Customer) -> None:
        for table, key in self._keys(customer):
            self._j.set(table, key, customer.id)

    def _unindex_keys(self, customer: Customer) -> None:
        for table, key in self._keys(customer):
            self._j.pop(table, key)

    def find_by_number(self, location_id: str, number_key: str) -> Customer | None:
        holder = self._s.numbers.get((location_id, number_key))
        return None if holder is None else self._s.customers[holder]

    def find_by_username(self, username_key: str) -> Customer | None:
        holder = self._s.usernames.get(username_key)
        return None if holder is None else self._s.customers[holder]

    def find_by_source(self, source: str, external_id: str) -> Customer | None:
        holder = self._s.source_ids.get((source, external_id))
        return None if holder is None else self._s.customers[holder]

    def created_since(self, location_id: str, since: datetime) -> list[Customer]:
        customers = self._s.customers
        return [
            customer
            for customer in map(customers.__getitem__, self._s.by_location.get(location_id, {}))
            if customer.is_live and customer.created_at >= since
        ]

    def count(self, location_id: str) -> int:
        customers = self._s.customers
        return sum(customers[i].is_live for i in self._s.by_location.get(location_id, {}))

    def iter_location(
        self, location_id: str, *, ids: Sequence[str] | None = None, batch_size: int = 1000
    ) -> Iterator[Customer]:
        members = self._s.by_location.get(location_id, {})
        wanted = sorted(members) if ids is None else sorted(set(ids) & members.keys())
        for customer_id in wanted:
            customer = self._s.customers.get(customer_id)
            if customer is not None and customer.is_live:
                yield customer

    def search(self, location_id: str, query: SearchQuery, *, limit: int) -> list[RankedMatch]:
        return self._s.index.search(location_id, query, limit=limit)


class _Contacts(_Repository):
    def get(self, contact_id: str) -> Contact | None:
        return self._s.contacts.get(contact_id)

    def add(self, contact: Contact) -> None:
        self._check_unique(contact)
        self._j.set(self._s.contacts, contact.id, contact)
        self._j.set(self._s.contacts_of.setdefault(contact.customer_id, {}), contact.id, None)
        self._index(contact)

    def update(self, contact: Contact, *, expected_version: int) -> None:
        stored = self._s.contacts.get(contact.id)
        if stored is None or stored.version != expected_version:
            raise ConcurrentModification("contact", contact.id)
        self._unindex(stored)
        try:
            self._check_unique(contact)
        except Exception:
            self._index(stored)
            raise
        if stored.customer_id != contact.customer_id:
            self._j.pop(self._s.contacts_of.get(stored.customer_id, {}), contact.id)
            self._j.set(self._s.contacts_of.setdefault(contact.customer_id, {}), contact.id, None)
        self._j.set(self._s.contacts, contact.id, contact)
        self._index(contact)

    def remove(self, contact_id: str) -> None:
        stored = self._s.contacts.get(contact_id)
        if stored is None:
            return
        self._unindex(stored)
        self._j.pop(self._s.contacts, contact_id)
        self._j.pop(self._s.contacts_of.get(stored.customer_id, {}), contact_id)

    def for_customer(self, customer_id: str) -> list[Contact]:
        contacts = [self._s.contacts[i] for i in self._s.contacts_of.get(customer_id, {})]
        return sorted(contacts, key=lambda contact: (contact.created_at, contact.id))

    def find_external_user(self, email_key: str) -> Contact | None:
        holder = self._s.external_users.get(email_key)
        return None if holder is None else self._s.contacts[holder]

    @staticmethod
    def _external_key(contact: Contact) -> str | None:
        if contact.external_user and contact.is_live and contact.email:
            return email_key(contact.email)
        return None

    def _check_unique(self, contact: Contact) -> None:
        key = self._external_key(contact)
        holder = None if key is None else self._s.external_users.get(key)
        if holder is not None and holder != contact.id:
            raise DuplicateExternalUser(holder)

    def _index(self, contact: Contact) -> None:
        key = self._external_key(contact)
        if key is not None:
            self._j.set(self._s.external_users, key, contact.id)

    def _unindex(self, contact: Contact) -> None:
        key = self._external_key(contact)
        if key is not None:
            self._j.pop(self._s.external_users, key)


class _Users(_Repository):
    def get(self, user_id: str) -> User | None:
        return self._s.users.get(user_id)

    def add(self, user: User) -> None:
        if user.id in self._s.users:
            raise ValidationError({"id": "a user with this id exists; choose another id"})
        self._j.set(self._s.users, user.id, user)

    def for_location(self, location_id: str) -> list[User]:
        return sorted(
            (user for user in self._s.users.values() if user.location_id == location_id),
            key=lambda user: user.id,
        )

    def for_fleet(self, fleet_customer_id: str) -> list[User]:
        return sorted(
            (u for u in self._s.users.values() if u.fleet_customer_id == fleet_customer_id),
            key=lambda user: user.id,
        )


class _History(_Repository):
    def append(self, record: ChangeRecord) -> ChangeRecord:
        seq = self._s.history_seq
        self._j.append(seq, seq[-1] + 1)
        stored = ChangeRecord(
            entity=record.entity,
            entity_id=record.entity_id,
            customer_id=record.customer_id,
            action=record.action,
            actor_id=record.actor_id,
            at=record.at,
            changes=record.changes,
            seq=seq[-1],
        )
        if record.customer_id not in self._s.history:
            self._j.set(self._s.history, record.customer_id, [])
        self._j.append(self._s.history[record.customer_id], stored)
        return stored

    def for_customer(self, customer_id: str) -> list[ChangeRecord]:
        return list(self._s.history.get(customer_id, ()))

    def remove_for_customer(self, customer_id: str) -> int:
        removed = len(self._s.history.get(customer_id, ()))
        self._j.pop(self._s.history, customer_id)
        return removed


class _Reference(_Repository):
    def add_company_type(self, company_type: CompanyType) -> None:
        if company_type.name in self._s.company_types:
            raise ValidationError({"name": "this company type exists already"})
        self._j.set(self._s.company_types, company_type.name, company_type)

    def get_company_type(self, name: str) -> CompanyType | None:
        return self._s.company_types.get(name)

    def company_types(self) -> list[CompanyType]:
        return [self._s.company_types[name] for name in sorted(self._s.company_types)]

    def add_category(self, category: Category) -> None:
        if category.name in self._s.categories:
            raise ValidationError({"name": "this category exists already"})
        self._j.set(self._s.categories, category.name, category)

    def get_category(self, name: str) -> Category | None:
        return self._s.categories.get(name)

    def categories(self) -> list[Category]:
        return [self._s.categories[name] for name in sorted(self._s.categories)]


class _Settings(_Repository):
    def source_enabled(self, source: str, location_id: str) -> bool:
        return self._s.settings.get((source, location_id), False)

    def set_source_enabled(self, source: str, location_id: str, enabled: bool) -> None:
        self._j.set(self._s.settings, (source, location_id), enabled)


class _Merges(_Repository):
    def add(self, merge_id: str, record: Mapping[str, Any]) -> None:
        self._j.set(self._s.merges, merge_id, dict(record))

    def get(self, merge_id: str) -> Mapping[str, Any] | None:
        return self._s.merges.get(merge_id)

    def update(self, merge_id: str, record: Mapping[str, Any]) -> None:
        self._j.set(self._s.merges, merge_id, dict(record))


class MemoryUnitOfWork:
    """A transaction over a :class:`MemoryStore`: all of it is kept at commit, or none of it."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._journal = _Journal()
        self._touched: dict[str, Customer | None] = {}
        state, parts = store.state, (store.state, self._journal, self._touched)
        self.customers = _Customers(*parts)
        self.contacts = _Contacts(*parts)
        self.users = _Users(*parts)
        self.history = _History(*parts)
        self.reference = _Reference(*parts)
        self.settings = _Settings(*parts)
        self.merges = _Merges(*parts)
        self._state = state

    def __enter__(self) -> Self:
        self._store.lock.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._journal.undo()
            self._touched.clear()
        finally:
            self._store.lock.release()

    def commit(self) -> None:
        """Keep every change and bring the search index up to date, all or nothing."""
        index, customers = self._state.index, self._state.customers
        try:
            live = []
            for customer_id in sorted(self._touched):
                customer = customers.get(customer_id)
                if customer is not None and customer.is_live:
                    live.append(search_document(customer))
                else:
                    index.remove(customer_id)
            if len(live) >= _BULK_INDEX:
                index.bulk_load(live)  # create_many: one segment build, not one upsert each
            else:
                for document in live:
                    index.upsert(document)
        except BaseException:
            # The data rolls back in __exit__; put every touched entry of the index back too.
            for customer_id, before in self._touched.items():
                _reindex(index, customer_id, before)
            raise
        self._touched.clear()
        self._journal.steps.clear()


def _reindex(index: MemorySearchIndex, customer_id: str, customer: Customer | None) -> None:
    if customer is not None and customer.is_live:
        index.upsert(search_document(customer))
    else:
        index.remove(customer_id)


class MemoryStore:
    """Holds a memory book's data; hands out units of work (the ``Store`` protocol)."""

    def __init__(self) -> None:
        self.state = _State()
        self.lock = threading.RLock()

    def unit_of_work(self) -> MemoryUnitOfWork:
        """A new unit of work; use it in a ``with`` block."""
        return MemoryUnitOfWork(self)

    def close(self) -> None:
        """Nothing to release for memory."""
