"""The in-memory backend: a product, not a test double.

Same behaviour and errors as the SQL backend. A unit of work holds the store's lock for its whole
life, so units of work run one at a time; every write records how to undo itself, and leaving a
unit of work without committing undoes them in reverse order. The search index is updated at
commit, from the customers the unit of work touched; so are the matching indexes of M6, which
are built for a location the first time ``find_similar`` needs one.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
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
from customerkit.ports import READ_ONLY_REFUSAL
from customerkit.search.index import MemorySearchIndex
from customerkit.search.query import RankedMatch, SearchQuery, search_document
from customerkit.text import number_key

T = TypeVar("T")

_MISSING: Any = object()
#: From this many customers changed in one unit of work, the index is bulk-loaded.
_BULK_INDEX = 256
#: From this many records changed in one unit of work, a matching index is dropped, not updated.
_REBUILD_MATCH = 10_000


class _Journal:
    """Undo steps of the running unit of work; every write of the memory book goes through it.

    A read-only unit of work's journal refuses every write, as SQL databases refuse them.
    """

    def __init__(self, *, read_only: bool = False) -> None:
        self.steps: list[Callable[[], None]] = []
        self.read_only = read_only

    def check_writable(self) -> None:
        """Raise ``RuntimeError`` in a read-only unit of work."""
        if self.read_only:
            raise RuntimeError(READ_ONLY_REFUSAL)

    def set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self.check_writable()
        old = table.get(key, _MISSING)
        table[key] = value
        self.steps.append(lambda: self._restore(table, key, old))

    def pop(self, table: dict[Any, Any], key: Any) -> None:
        self.check_writable()
        old = table.pop(key, _MISSING)
        self.steps.append(lambda: self._restore(table, key, old))

    def append(self, items: list[Any], item: Any) -> None:
        self.check_writable()
        items.append(item)
        self.steps.append(items.pop)

    def add_id(self, ids: SortedIds, key: str) -> None:
        self.check_writable()
        if ids.add(key):
            self.steps.append(lambda: ids.forget(key))

    def discard_id(self, ids: SortedIds, key: str) -> None:
        self.check_writable()
        if ids.discard(key):
            self.steps.append(lambda: ids.put(key))

    @staticmethod
    def _restore(table: dict[Any, Any], key: Any, old: Any) -> None:
        if old is _MISSING:
            table.pop(key, None)
        else:
            table[key] = old

    def undo(self) -> None:
        while self.steps:
            self.steps.pop()()


class SortedIds:
    """A set of ids kept in ascending order, read in constant memory (exports, matching).

    A sorted list of blocks, each at most ``2 * block`` ids long: adding or removing an id
    moves at most a block's worth of pointers, and reading in order from any id on walks the
    blocks, so an export of a million customers needs no sorted copy of a million ids.
    """

    def __init__(self, block: int = 1000) -> None:
        self._block = block
        self._blocks: list[list[str]] = []
        self._last: list[str] = []  # the largest id of each block, for bisecting

    def __len__(self) -> int:
        return sum(map(len, self._blocks))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SortedIds):
            return NotImplemented
        return self._blocks == other._blocks or list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"SortedIds({list(self)!r})"

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        i = bisect_left(self._last, key)
        if i == len(self._last):
            return False
        block = self._blocks[i]
        j = bisect_left(block, key)
        return j < len(block) and block[j] == key

    def add(self, key: str) -> bool:
        """Add ``key``; whether it was new."""
        if not self._blocks:
            self._blocks.append([key])
            self._last.append(key)
            return True
        i = min(bisect_left(self._last, key), len(self._last) - 1)
        block = self._blocks[i]
        j = bisect_left(block, key)
        if j < len(block) and block[j] == key:
            return False
        block.insert(j, key)
        self._last[i] = block[-1]
        if len(block) > 2 * self._block:
            half = len(block) // 2
            self._blocks[i : i + 1] = [block[:half], block[half:]]
            self._last[i : i + 1] = [block[half - 1], block[-1]]
        return True

    def discard(self, key: str) -> bool:
        """Remove ``key`` if present; whether it was."""
        i = bisect_left(self._last, key)
        if i == len(self._last):
            return False
        block = self._blocks[i]
        j = bisect_left(block, key)
        if j == len(block) or block[j] != key:
            return False
        del block[j]
        if block:
            self._last[i] = block[-1]
        else:
            del self._blocks[i], self._last[i]
        return True

    def put(self, key: str) -> None:
        """``add``, for an undo step."""
        self.add(key)

    def forget(self, key: str) -> None:
        """``discard``, for an undo step."""
        self.discard(key)

    def after(self, key: str | None, limit: int) -> list[str]:
        """Up to ``limit`` ids greater than ``key`` (all ids when ``None``), in order."""
        out: list[str] = []
        i = 0 if key is None else bisect_right(self._last, key)
        while i < len(self._blocks) and len(out) < limit:
            block = self._blocks[i]
            j = 0 if key is None else bisect_right(block, key)
            out.extend(block[j : j + limit - len(out)])
            i += 1
        return out

    def __iter__(self) -> Iterator[str]:
        # Keyset pagination: a page at a time, each starting after the last id returned, so
        # adding or removing ids while a reader is paused never skips or repeats one.
        key: str | None = None
        while page := self.after(key, self._block):
            yield from page
            key = page[-1]


class _State:
    """Every table of a memory book, with its secondary indexes."""

    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}
        self.by_location: dict[str, dict[str, None]] = {}
        #: The same ids in ascending order, for reading a location in id order.
        self.sorted_ids: dict[str, SortedIds] = {}
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
        #: target id -> ids of the tombstones merged into it (customers and contacts alike).
        self.merged_into: dict[str, dict[str, None]] = {}
        #: (location id, kind, left id, right id) -> the dismissal of that pair.
        self.dismissals: dict[tuple[str, str, str, str], Dismissal] = {}
        #: (kind, record id) -> keys of the dismissals naming the record (purges remove them).
        self.dismissals_of: dict[tuple[str, str], dict[tuple[str, str, str, str], None]] = {}
        self.index = MemorySearchIndex()
        #: (kind, location id, phone region, config) -> matching index of the live records, as
        #: committed.
        self.match: dict[tuple[str, str, str, MatchConfig], MatchIndex] = {}

    def live_contacts(self, location_id: str) -> Iterator[Contact]:
        """The live contacts of the location's live customers."""
        for customer_id in self.sorted_ids.get(location_id, ()):
            if self.customers[customer_id].is_live:
                for contact_id in self.contacts_of.get(customer_id, {}):
                    if self.contacts[contact_id].is_live:
                        yield self.contacts[contact_id]


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


def _rewrite_each(
    repo: Any,
    ids: Sequence[str],
    field: str,
    *,
    from_id: str,
    to_id: str,
    at: datetime,
    entity: str,
) -> list[Any]:
    """``repoint`` and ``move`` of the protocols, one update at a time (cheap in memory)."""
    moved = []
    for record_id in sorted(set(ids)):
        stored = repo.get(record_id)
        if stored is None or getattr(stored, field) != from_id:
            raise ConcurrentModification(entity, record_id)
        changed = attrs.evolve(stored, **{field: to_id}, updated_at=at, version=stored.version + 1)
        repo.update(changed, expected_version=stored.version)
        moved.append(changed)
    return moved


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

    def repoint(
        self, ids: Sequence[str], *, from_id: str, to_id: str, at: datetime
    ) -> list[Customer]:
        return _rewrite_each(
            self, ids, "merged_into", from_id=from_id, to_id=to_id, at=at, entity="customer"
        )

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

    def repoint(
        self, ids: Sequence[str], *, from_id: str, to_id: str, at: datetime
    ) -> list[Contact]:
        return _rewrite_each(
            self, ids, "merged_into", from_id=from_id, to_id=to_id, at=at, entity="contact"
        )

    def move(
        self, ids: Sequence[str], *, from_customer: str, to_customer: str, at: datetime
    ) -> list[Contact]:
        return _rewrite_each(
            self,
            ids,
            "customer_id",
            from_id=from_customer,
            to_id=to_customer,
            at=at,
            entity="contact",
        )

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


def _dismissal_key(
    location_id: str, kind: str, left_id: str, right_id: str
) -> tuple[str, str, str, str]:
    low, high = sorted((left_id, right_id))
    return location_id, kind, low, high


class MemoryUnitOfWork:
    """A transaction over a ``MemoryStore``: all of it is kept at commit, or none of it."""

    def __init__(self, store: MemoryStore, *, read_only: bool = False) -> None:
        self._store = store
        self._journal = _Journal(read_only=read_only)
        self._touched: dict[str, Customer | None] = {}
        self._touched_contacts: dict[str, Contact | None] = {}
        state = store.state
        parts = (state, self._journal, self._touched, self._touched_contacts)
        self.customers = _Customers(*parts)
        self.contacts = _Contacts(*parts)
        self.users = _Users(*parts)
        self.history = _History(*parts)
        self.reference = _Reference(*parts)
        self.settings = _Settings(*parts)
        self.merges = _Merges(*parts)
        self.dismissals = _Dismissals(*parts)
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
            self._touched_contacts.clear()
        finally:
            self._store.lock.release()

    def bulk_add(self, customers: Sequence[Customer], records: Sequence[ChangeRecord]) -> None:
        """Add a chunk of a bulk load: each customer, then each record, as one at a time."""
        for customer in customers:
            self.customers.add(customer)
        for record in records:
            self.history.append(record)

    def commit(self) -> None:
        """Keep every change and bring the search index up to date, all or nothing."""
        self._journal.check_writable()
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
        self._refresh_match_indexes()
        self._touched.clear()
        self._touched_contacts.clear()
        self._journal.steps.clear()

    def _refresh_match_indexes(self) -> None:
        """Bring the built matching indexes up to date with what this unit of work changed."""
        state = self._state
        if not state.match:
            return
        customers: dict[str, Any] = {i: state.customers.get(i) for i in self._touched}
        contacts: dict[str, Any] = {i: state.contacts.get(i) for i in self._touched_contacts}
        # A customer deleted or merged away takes its contacts out of matching.
        for customer_id in self._touched:
            for contact_id in state.contacts_of.get(customer_id, {}):
                contacts[contact_id] = state.contacts.get(contact_id)
        stale = []
        try:
            for key, index in state.match.items():
                kind, location_id, *_ = key
                changed = customers if kind == "customer" else contacts
                if len(changed) > max(_REBUILD_MATCH, len(index) // 4):
                    stale.append(key)  # a bulk change: rebuilding later costs less than this
                    continue
                for record_id, record in sorted(changed.items()):
                    if record_id in index:
                        index.remove(record_id)
                    if record is not None and self._matchable(kind, record, location_id):
                        index.add(record)
        except Exception:  # never leave a stale index behind: it is rebuilt when next needed
            state.match.clear()
        for key in stale:
            del state.match[key]

    def _matchable(self, kind: str, record: Any, location_id: str) -> bool:
        if not record.is_live:
            return False
        if kind == "customer":
            return bool(record.location_id == location_id)
        customer = self._state.customers.get(record.customer_id)
        return customer is not None and customer.is_live and customer.location_id == location_id


def _live_customers(
    state: _State, location_id: str, ids: Sequence[str] | None = None
) -> Iterator[Customer]:
    members = state.by_location.get(location_id, {})
    wanted: Iterable[str]
    if ids is None:
        wanted = state.sorted_ids.get(location_id, ())  # in order, without a sorted copy
    else:
        wanted = sorted(set(ids) & members.keys())
    for customer_id in wanted:
        customer = state.customers.get(customer_id)
        if customer is not None and customer.is_live:
            yield customer


def _oldest_first(contact: Contact) -> tuple[datetime, str]:
    """The order contacts are listed in (``for_customer``, exports)."""
    return contact.created_at, contact.id


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

    def unit_of_work(self, *, read_only: bool = False) -> MemoryUnitOfWork:
        """A new unit of work; use it in a ``with`` block (reads hold the lock too).

        A read-only one refuses writes and ``commit`` with ``RuntimeError``, as SQL does.
        """
        return MemoryUnitOfWork(self, read_only=read_only)

    def run(self, work: Callable[[], T]) -> T:
        """Call ``work`` once: a memory book has no transient failures to retry."""
        return work()

    def close(self) -> None:
        """Nothing to release for memory."""
