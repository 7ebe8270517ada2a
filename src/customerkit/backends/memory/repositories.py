"""The memory book's repositories: reads and journaled writes on its tables."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import attrs

from customerkit.backends.memory.state import (
    SortedIds,
    _dismissal_key,
    _Journal,
    _live_customers,
    _oldest_first,
    _State,
)
from customerkit.errors import (
    AlreadyImported,
    ConcurrentModification,
    DuplicateCustomerNumber,
    DuplicateExternalUser,
    DuplicateUsername,
    ValidationError,
)
from customerkit.export import ExportRecord, record_of
from customerkit.identity import email_key, username_key
from customerkit.matching import MatchConfig, MatchIndex
from customerkit.model import (
    Category,
    ChangeRecord,
    CompanyType,
    Contact,
    Customer,
    Dismissal,
    User,
)
from customerkit.search.query import RankedMatch, SearchQuery
from customerkit.text import number_key


class _Repository:
    def __init__(
        self,
        state: _State,
        journal: _Journal,
        touched: dict[str, Customer | None],
        touched_contacts: dict[str, Contact | None],
    ) -> None:
        self._s = state
        self._j = journal
        self._touched = touched
        self._touched_contacts = touched_contacts

    def _link(self, record: Customer | Contact) -> None:
        if record.merged_into is not None:
            self._j.set(self._s.merged_into.setdefault(record.merged_into, {}), record.id, None)

    def _unlink(self, record: Customer | Contact) -> None:
        if record.merged_into is not None:
            self._j.pop(self._s.merged_into.get(record.merged_into, {}), record.id)

    def _tombstones(self, table: Mapping[str, Any], target_id: str) -> list[Any]:
        return [table[i] for i in sorted(self._s.merged_into.get(target_id, {})) if i in table]

    def _forget_dismissals(self, kind: str, record_id: str) -> None:
        """Remove the dismissals naming a record that is removed for good."""
        for key in list(self._s.dismissals_of.get((kind, record_id), {})):
            _Dismissals.drop(self._s, self._j, key)

    def _match_index(
        self, kind: str, location_id: str, region: str, config: MatchConfig | None
    ) -> MatchIndex:
        """The location's matching index; kept only when built from committed data."""
        config = config or MatchConfig()
        key = (kind, location_id, region, config)
        index = self._s.match.get(key)
        if index is not None:
            return index
        if kind == "customer":
            records: list[Any] = list(_live_customers(self._s, location_id))
        else:
            records = list(self._s.live_contacts(location_id))
        index = MatchIndex.build(
            records,
            kind="customer" if kind == "customer" else "contact",
            config=config,
            region=region,
        )
        if not self._j.steps:
            self._s.match[key] = index
        return index


#: A record with a version, unique keys and merge links: a customer or a contact.
R = TypeVar("R", Customer, Contact)
T = TypeVar("T")


class _Records(_Repository, Generic[R]):
    """What the customers and contacts tables share: versioned writes, unique keys, links.

    A subclass names its table and kind, its unique keys, and what else a record's add,
    update and removal change (``_placed``, ``_moved``, ``_dropped``).
    """

    _kind: Literal["customer", "contact"]
    #: The records by id, and those this unit of work changed as they were before it.
    _records: dict[str, R]
    _before: dict[str, R | None]

    def _keys(self, record: R) -> list[tuple[dict[Any, str], Any]]:
        """The unique keys a live record holds: (key table, key)."""
        raise NotImplementedError

    def _check_unique(self, record: R) -> None:
        raise NotImplementedError

    def _placed(self, record: R) -> None:
        """Index a new record beyond its unique keys."""

    def _moved(self, stored: R, record: R) -> None:
        """Re-index a record an update changes (``stored`` is the version it replaces)."""

    def _dropped(self, stored: R) -> None:
        """Forget a removed record beyond its unique keys."""

    def get(self, record_id: str) -> R | None:
        return self._records.get(record_id)

    def _touch(self, record_id: str) -> None:
        """Remember the record as it was before this unit of work, for the indexes."""
        if record_id not in self._before:
            self._before[record_id] = self._records.get(record_id)

    def add(self, record: R) -> None:
        self._check_unique(record)
        self._touch(record.id)
        self._j.set(self._records, record.id, record)
        self._placed(record)
        self._index_keys(record)
        self._link(record)

    def update(self, record: R, *, expected_version: int) -> None:
        stored = self._records.get(record.id)
        if stored is None or stored.version != expected_version:
            raise ConcurrentModification(self._kind, record.id)
        self._unindex_keys(stored)
        try:
            self._check_unique(record)
        except Exception:
            self._index_keys(stored)
            raise
        self._touch(record.id)
        self._moved(stored, record)
        self._unlink(stored)
        self._j.set(self._records, record.id, record)
        self._index_keys(record)
        self._link(record)

    def remove(self, record_id: str) -> None:
        stored = self._records.get(record_id)
        if stored is None:
            return
        self._touch(record_id)
        self._unindex_keys(stored)
        self._unlink(stored)
        self._j.pop(self._records, record_id)
        self._dropped(stored)
        self._forget_dismissals(self._kind, record_id)

    def _index_keys(self, record: R) -> None:
        for table, key in self._keys(record):
            self._j.set(table, key, record.id)

    def _unindex_keys(self, record: R) -> None:
        for table, key in self._keys(record):
            self._j.pop(table, key)

    def merged_into(self, record_id: str) -> list[R]:
        return self._tombstones(self._records, record_id)

    def match_index(
        self, location_id: str, *, region: str, config: MatchConfig | None = None
    ) -> MatchIndex:
        return self._match_index(self._kind, location_id, region, config)


class _Customers(_Records[Customer]):
    _kind = "customer"

    def __init__(self, *parts: Any) -> None:
        super().__init__(*parts)
        self._records, self._before = self._s.customers, self._touched

    def get_many(self, customer_ids: Sequence[str]) -> dict[str, Customer]:
        table = self._s.customers
        return {i: table[i] for i in customer_ids if i in table}

    def _placed(self, customer: Customer) -> None:
        members = self._s.by_location.setdefault(customer.location_id, {})
        self._j.set(members, customer.id, None)
        ordered = self._s.sorted_ids.get(customer.location_id)
        if ordered is None:  # undone with the add, so a failed call leaves nothing behind
            ordered = SortedIds()
            self._j.set(self._s.sorted_ids, customer.location_id, ordered)
        self._j.add_id(ordered, customer.id)

    def _dropped(self, stored: Customer) -> None:
        self._j.pop(self._s.by_location.get(stored.location_id, {}), stored.id)
        ordered = self._s.sorted_ids.get(stored.location_id)
        if ordered is not None:
            self._j.discard_id(ordered, stored.id)

    def _check_unique(self, customer: Customer) -> None:
        if customer.username is not None:
            holder = self._s.usernames.get(username_key(customer.username))
            if holder is not None and holder != customer.id:
                raise DuplicateUsername(customer.username)
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
        return _live_customers(self._s, location_id, ids)

    def export_records(
        self, location_id: str, *, ids: Sequence[str] | None = None
    ) -> Iterator[ExportRecord]:
        contacts_of, contacts = self._s.contacts_of, self._s.contacts
        for customer in _live_customers(self._s, location_id, ids):
            held = contacts_of.get(customer.id)  # most customers of a bulk load have none
            people = sorted(map(contacts.__getitem__, held), key=_oldest_first) if held else ()
            yield record_of(customer, people)

    def search(self, location_id: str, query: SearchQuery, *, limit: int) -> list[RankedMatch]:
        return self._s.index.search(location_id, query, limit=limit)


class _Contacts(_Records[Contact]):
    _kind = "contact"

    def __init__(self, *parts: Any) -> None:
        super().__init__(*parts)
        self._records, self._before = self._s.contacts, self._touched_contacts

    def _placed(self, contact: Contact) -> None:
        self._j.set(self._s.contacts_of.setdefault(contact.customer_id, {}), contact.id, None)

    def _moved(self, stored: Contact, contact: Contact) -> None:
        if stored.customer_id != contact.customer_id:
            self._j.pop(self._s.contacts_of.get(stored.customer_id, {}), contact.id)
            self._placed(contact)

    def _dropped(self, stored: Contact) -> None:
        self._j.pop(self._s.contacts_of.get(stored.customer_id, {}), stored.id)

    def for_customer(self, customer_id: str) -> list[Contact]:
        contacts = [self._s.contacts[i] for i in self._s.contacts_of.get(customer_id, {})]
        return sorted(contacts, key=lambda contact: (contact.created_at, contact.id))

    def _keys(self, contact: Contact) -> list[tuple[dict[Any, str], Any]]:
        # K3: a live external user's canonical email is unique among live external users.
        if contact.external_user and contact.is_live and contact.email:
            return [(self._s.external_users, email_key(contact.email))]
        return []

    def _check_unique(self, contact: Contact) -> None:
        for table, key in self._keys(contact):
            holder = table.get(key)
            if holder is not None and holder != contact.id:
                raise DuplicateExternalUser(holder)


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
        stored = attrs.evolve(record, seq=seq[-1])
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
    def _add_named(self, table: dict[str, Any], item: CompanyType | Category, what: str) -> None:
        if item.name in table:
            raise ValidationError({"name": f"this {what} exists already"})
        self._j.set(table, item.name, item)

    def add_company_type(self, company_type: CompanyType) -> None:
        self._add_named(self._s.company_types, company_type, "company type")

    def get_company_type(self, name: str) -> CompanyType | None:
        return self._s.company_types.get(name)

    def company_types(self) -> list[CompanyType]:
        return _by_name(self._s.company_types)

    def add_category(self, category: Category) -> None:
        self._add_named(self._s.categories, category, "category")

    def get_category(self, name: str) -> Category | None:
        return self._s.categories.get(name)

    def categories(self) -> list[Category]:
        return _by_name(self._s.categories)


def _by_name(table: dict[str, T]) -> list[T]:
    return [table[name] for name in sorted(table)]


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

    def remove(self, merge_id: str) -> None:
        if merge_id in self._s.merges:
            self._j.pop(self._s.merges, merge_id)


class _Dismissals(_Repository):
    def add(self, dismissal: Dismissal) -> Dismissal | None:
        key = _dismissal_key(
            dismissal.location_id, dismissal.kind, dismissal.left_id, dismissal.right_id
        )
        stored = self._s.dismissals.get(key)
        if stored is not None:
            return stored
        self._j.set(self._s.dismissals, key, dismissal)
        for record_id in key[2:]:
            self._j.set(self._s.dismissals_of.setdefault((key[1], record_id), {}), key, None)
        return None

    def remove(self, location_id: str, kind: str, left_id: str, right_id: str) -> bool:
        return self.drop(self._s, self._j, _dismissal_key(location_id, kind, left_id, right_id))

    @staticmethod
    def drop(state: _State, journal: _Journal, key: tuple[str, str, str, str]) -> bool:
        """Forget the dismissal with this key and its entries in the per-record index."""
        if key not in state.dismissals:
            return False
        journal.pop(state.dismissals, key)
        for record_id in key[2:]:
            journal.pop(state.dismissals_of.get((key[1], record_id), {}), key)
        return True

    def for_location(self, location_id: str, kind: str) -> list[Dismissal]:
        found = [d for key, d in self._s.dismissals.items() if key[:2] == (location_id, kind)]
        return sorted(found, key=lambda d: (d.left_id, d.right_id))
