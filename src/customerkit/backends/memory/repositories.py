"""The memory book's repositories: reads and journaled writes on its tables."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

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


class _Customers(_Repository):
    def get(self, customer_id: str) -> Customer | None:
        return self._s.customers.get(customer_id)

    def get_many(self, customer_ids: Sequence[str]) -> dict[str, Customer]:
        table = self._s.customers
        return {i: table[i] for i in customer_ids if i in table}

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
        ordered = self._s.sorted_ids.get(customer.location_id)
        if ordered is None:  # undone with the add, so a failed call leaves nothing behind
            ordered = SortedIds()
            self._j.set(self._s.sorted_ids, customer.location_id, ordered)
        self._j.add_id(ordered, customer.id)
        self._index_keys(customer)
        self._link(customer)

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
        self._unlink(stored)
        self._j.set(self._s.customers, customer.id, customer)
        self._index_keys(customer)
        self._link(customer)

    def remove(self, customer_id: str) -> None:
        stored = self._s.customers.get(customer_id)
        if stored is None:
            return
        self._touch(customer_id)
        self._unindex_keys(stored)
        self._unlink(stored)
        self._j.pop(self._s.customers, customer_id)
        self._j.pop(self._s.by_location.get(stored.location_id, {}), customer_id)
        ordered = self._s.sorted_ids.get(stored.location_id)
        if ordered is not None:
            self._j.discard_id(ordered, customer_id)
        self._forget_dismissals("customer", customer_id)

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

    def merged_into(self, customer_id: str) -> list[Customer]:
        return self._tombstones(self._s.customers, customer_id)

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

    def match_index(
        self, location_id: str, *, region: str, config: MatchConfig | None = None
    ) -> MatchIndex:
        return self._match_index("customer", location_id, region, config)

    def search(self, location_id: str, query: SearchQuery, *, limit: int) -> list[RankedMatch]:
        return self._s.index.search(location_id, query, limit=limit)


class _Contacts(_Repository):
    def get(self, contact_id: str) -> Contact | None:
        return self._s.contacts.get(contact_id)

    def match_index(
        self, location_id: str, *, region: str, config: MatchConfig | None = None
    ) -> MatchIndex:
        return self._match_index("contact", location_id, region, config)

    def _touch(self, contact_id: str) -> None:
        """Remember the contact as it was before this unit of work, for the matching indexes."""
        if contact_id not in self._touched_contacts:
            self._touched_contacts[contact_id] = self._s.contacts.get(contact_id)

    def add(self, contact: Contact) -> None:
        self._check_unique(contact)
        self._touch(contact.id)
        self._j.set(self._s.contacts, contact.id, contact)
        self._j.set(self._s.contacts_of.setdefault(contact.customer_id, {}), contact.id, None)
        self._index(contact)
        self._link(contact)

    def update(self, contact: Contact, *, expected_version: int) -> None:
        stored = self._s.contacts.get(contact.id)
        if stored is None or stored.version != expected_version:
            raise ConcurrentModification("contact", contact.id)
        self._touch(contact.id)
        self._unindex(stored)
        try:
            self._check_unique(contact)
        except Exception:
            self._index(stored)
            raise
        if stored.customer_id != contact.customer_id:
            self._j.pop(self._s.contacts_of.get(stored.customer_id, {}), contact.id)
            self._j.set(self._s.contacts_of.setdefault(contact.customer_id, {}), contact.id, None)
        self._unlink(stored)
        self._j.set(self._s.contacts, contact.id, contact)
        self._index(contact)
        self._link(contact)

    def remove(self, contact_id: str) -> None:
        stored = self._s.contacts.get(contact_id)
        if stored is None:
            return
        self._touch(contact_id)
        self._unindex(stored)
        self._unlink(stored)
        self._j.pop(self._s.contacts, contact_id)
        self._j.pop(self._s.contacts_of.get(stored.customer_id, {}), contact_id)
        self._forget_dismissals("contact", contact_id)

    def merged_into(self, contact_id: str) -> list[Contact]:
        return self._tombstones(self._s.contacts, contact_id)

    def for_customer(self, customer_id: str) -> list[Contact]:
        contacts = [self._s.contacts[i] for i in self._s.contacts_of.get(customer_id, {})]
        return sorted(contacts, key=lambda contact: (contact.created_at, contact.id))

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
