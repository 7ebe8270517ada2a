"""Every seam of customerkit in one place: repositories, unit of work, search index, sources, clock.

Services use only these protocols. A backend implements them (``backends/memory/``,
``backends/sqlalchemy/``); ``customerkit.testing`` holds the contract suite any implementation
can run. Repositories store and find records and enforce uniqueness; every rule about *whether*
a change is allowed lives in the services.

The repository protocols name what every backend must do. The *accelerators* below them
(``CustomerSearch``, ``KeptMatchIndex``, ``ExportRows``, ...) are optional: a repository that
implements one is used through it, found with ``isinstance`` (they are runtime checkable), and
otherwise the services compute the same answer from the required methods
(``customerkit.services.accelerators``).

Uniqueness the repositories enforce, raising the library error on a clash:

* live customers of one location by `customerkit.text.number_key()` of the number
  (``DuplicateCustomerNumber``; blank numbers never clash),
* customers (live or tombstoned) by canonical username (``DuplicateUsername``),
* live external-user contacts by canonical email (``DuplicateExternalUser``),
* live customers by the source record they were imported from (``AlreadyImported``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, runtime_checkable

import attrs

from customerkit.matching import MatchConfig, MatchIndex
from customerkit.matching.kept import KeptBlocks
from customerkit.model import (
    Category,
    ChangeRecord,
    CompanyType,
    Contact,
    Customer,
    CustomerKind,
    Dismissal,
    SearchField,
    SourceLink,
    SourceRecord,
    User,
)
from customerkit.search.query import RankedMatch, SearchQuery

if TYPE_CHECKING:
    from customerkit.export import ExportRecord

#: A zero-argument callable returning an aware UTC datetime.
Clock = Callable[[], datetime]
#: ``progress(done, total)``; ``total`` is ``None`` when unknown up front.
Progress = Callable[[int, int | None], None]

T = TypeVar("T")


class CustomerRepository(Protocol):
    """Customers, tombstones included: what every store must do (accelerators may add more)."""

    def get(self, customer_id: str) -> Customer | None:
        """The customer with this id in any status, or ``None``."""

    def add(self, customer: Customer) -> None:
        """Store a new customer."""

    def update(self, customer: Customer, *, expected_version: int) -> None:
        """Replace a stored customer whose stored version is ``expected_version``.

        Raises ``ConcurrentModification`` when the stored version differs.
        """

    def remove(self, customer_id: str) -> None:
        """Forget a customer entirely: its tombstone and the dismissals naming it too."""

    def merged_into(self, customer_id: str) -> list[Customer]:
        """The tombstones whose ``merged_into`` is this customer, in id order."""

    def find_by_username(self, username_key: str) -> Customer | None:
        """The customer (live or tombstoned) holding this canonical username."""

    def find_by_source(self, source: str, external_id: str) -> Customer | None:
        """The live customer imported from this source record."""

    def iter_location(self, location_id: str) -> Iterator[Customer]:
        """Live customers of a location in id order (search, export and matching read them)."""


class ContactRepository(Protocol):
    """Contacts, tombstones included: what every store must do (accelerators may add more)."""

    def get(self, contact_id: str) -> Contact | None:
        """The contact with this id in any status, or ``None``."""

    def add(self, contact: Contact) -> None:
        """Store a new contact."""

    def update(self, contact: Contact, *, expected_version: int) -> None:
        """Replace a stored contact whose stored version is ``expected_version``."""

    def remove(self, contact_id: str) -> None:
        """Forget a contact entirely, with the dismissals naming it."""

    def merged_into(self, contact_id: str) -> list[Contact]:
        """The tombstones whose ``merged_into`` is this contact, in id order."""

    def for_customer(self, customer_id: str) -> list[Contact]:
        """The customer's contacts in any status, oldest first (then by id)."""


# -- accelerators: optional; a repository implementing one is used through it -------------------


@runtime_checkable
class BulkReads(Protocol):
    """Customers read by id in one go (search hits, a page of results), not one read per id."""

    def get_many(self, customer_ids: Sequence[str]) -> dict[str, Customer]:
        """The customers with these ids in any status, by id; unknown ids are left out."""


@runtime_checkable
class LocationQueries(Protocol):
    """Questions about a location's live customers answered without reading them all."""

    def count(self, location_id: str) -> int:
        """How many live customers a location has."""

    def created_since(self, location_id: str, since: datetime) -> list[Customer]:
        """Live customers of a location created at or after ``since``."""


@runtime_checkable
class CustomerSearch(Protocol):  # rules S1-S5
    """A search index: without one, every search reads the location's customers."""

    # Rule S5 ranks them.
    def search(self, location_id: str, query: SearchQuery, *, limit: int) -> list[RankedMatch]:
        """Live customers of a location matching the query, best first.

        The results must be exactly those of ``customerkit.search.rules.oracle_search`` over
        the location's live customers (``search_document`` of each).
        """


@runtime_checkable
class ExportRows(Protocol):
    """Export rows filled straight from storage, which is what makes a million-row export fast."""

    def export_records(  # rule C8
        self, location_id: str, *, ids: Sequence[str] | None = None
    ) -> Iterator[ExportRecord]:
        """`iter_location()` (only ``ids`` when given) with each customer's contacts.

        Each row is what ``customerkit.export.record_of(customer, contacts)`` makes.
        """


@runtime_checkable
class KeptMatchIndex(Protocol):  # rule M6
    """A matching index the backend keeps, or builds from blocks it stores.

    Customers: of the location's live customers; contacts: of the live contacts of the
    location's live customers. Without one, each ``find_similar`` builds an index in memory.
    """

    def match_index(
        self, location_id: str, *, region: str, config: MatchConfig | None = None
    ) -> MatchIndex:
        """The location's matching index, as last committed.

        Read it, never change it: a backend may keep it between calls and update it itself.
        It scores with ``config`` (the default ``MatchConfig`` when None). A backend storing
        blocks itself hands ``MatchIndex`` a ``customerkit.matching.BlockSource``.
        """


@runtime_checkable
class KeptBlockReads(Protocol):  # rules M1, M2
    """Blocking keys the backend keeps, read a chunk at a time for a location's duplicates.

    Customers only. Without it, ``find_duplicates`` reads the location's customers into
    memory and blocks them there.
    """

    def keep_blocks(self, location_id: str, *, region: str) -> None:
        """Compute and keep the location's blocking keys unless they are kept (in ``region``).

        May write: commit the unit of work to keep them.
        """

    def kept_blocks(self, location_id: str) -> KeptBlocks:
        """The location's live records and kept keys, read through this unit of work."""


@runtime_checkable
class BulkRepoint(Protocol):
    """Tombstones re-pointed in one write (a merge of records that absorbed others)."""

    def repoint(self, ids: Sequence[str], *, from_id: str, to_id: str, at: datetime) -> list[Any]:
        """Point the tombstones ``ids`` from ``from_id`` at ``to_id``.

        Each gets ``merged_into=to_id``, ``updated_at=at`` and its version bumped; they are
        returned as stored (customers or contacts, as the repository holds), in id order.
        Raises ``ConcurrentModification`` when one is gone or no longer points at ``from_id``.
        """


@runtime_checkable
class BulkMove(Protocol):
    """Contacts moved to another customer in one write (a customer merge)."""

    def move(
        self, ids: Sequence[str], *, from_customer: str, to_customer: str, at: datetime
    ) -> list[Contact]:
        """Move the contacts ``ids`` from ``from_customer`` to ``to_customer``.

        As ``BulkRepoint.repoint``, with ``customer_id`` for ``merged_into``.
        """


@attrs.frozen(kw_only=True)
class NewCustomers:
    """One chunk of a bulk load: new customers checked by ``create``'s rules, column by column.

    All were made at one location by one actor at one moment; customer ``i`` has id
    ``ids[i]``, kind ``kinds[i]``, the cleaned values ``values[i]`` (what validation returned,
    the password taken out), ``password_hashes[i]`` and the history ``changes[i]`` of its
    creation. A store may write the columns as they are, without a ``Customer`` per row;
    ``customers`` and ``records`` give what ``create`` would have built.
    """

    location_id: str
    actor_id: str
    #: The history action: ``"create"``, or ``"import"`` for customers from a source.
    action: str
    source: SourceLink | None
    at: datetime
    ids: Sequence[str]
    kinds: Sequence[CustomerKind]
    values: Sequence[Mapping[str, Any]]
    password_hashes: Sequence[str | None]
    changes: Sequence[Mapping[str, tuple[Any, Any]]]

    def __len__(self) -> int:
        return len(self.ids)

    def customers(self) -> list[Customer]:
        """The chunk's customers, as ``create`` makes them."""
        return [
            Customer(
                id=customer_id,
                location_id=self.location_id,
                kind=kind,
                password_hash=password_hash,
                source=self.source,
                created_at=self.at,
                updated_at=self.at,
                **values,
            )
            for customer_id, kind, values, password_hash in zip(
                self.ids, self.kinds, self.values, self.password_hashes, strict=True
            )
        ]

    def records(self) -> list[ChangeRecord]:
        """The history records of the chunk's creation (no ``seq`` yet)."""
        return [
            ChangeRecord(
                entity="customer",
                entity_id=customer_id,
                customer_id=customer_id,
                action=self.action,
                actor_id=self.actor_id,
                at=self.at,
                changes=changes,
            )
            for customer_id, changes in zip(self.ids, self.changes, strict=True)
        ]


@runtime_checkable
class BulkLoad(Protocol):
    """A unit of work writing a chunk of a bulk load in batches (``book.customers.load``)."""

    def bulk_add(self, chunk: NewCustomers) -> None:
        """Add a chunk's new customers and their creation records.

        The same as ``customers.add`` of each of ``chunk.customers()``, then
        ``history.append`` of each of ``chunk.records()`` (their ``seq`` is allocated here),
        and the same errors; a backend may write the columns in batches and build indexes
        once, when the unit of work commits.
        """


#: Every accelerator, in the order ``customerkit.services.accelerators.detected`` lists them.
ACCELERATORS: tuple[type, ...] = (
    BulkReads,
    LocationQueries,
    CustomerSearch,
    ExportRows,
    KeptMatchIndex,
    KeptBlockReads,
    BulkRepoint,
    BulkMove,
    BulkLoad,
)


# -- the other required repositories ---------------------------------------------------------


class UserRepository(Protocol):
    """Dealer staff and fleet users."""

    def get(self, user_id: str) -> User | None:
        """The user with this id, or ``None``."""

    def add(self, user: User) -> None:
        """Store a new user (ids are unique)."""

    def for_location(self, location_id: str) -> list[User]:
        """Users of a location, by id."""

    def for_fleet(self, fleet_customer_id: str) -> list[User]:
        """Fleet users of a fleet customer, by id."""


class HistoryRepository(Protocol):
    """The append-only change history."""

    def append(self, record: ChangeRecord) -> ChangeRecord:
        """Store a record and return it with its sequence number set."""

    def for_customer(self, customer_id: str) -> list[ChangeRecord]:
        """Every record about a customer or its contacts, oldest first."""

    def remove_for_customer(self, customer_id: str) -> int:  # rule C6
        """Delete a customer's history (a delete with ``delete_history=True``); return the count."""


class ReferenceRepository(Protocol):  # rule C4
    """Company types and customer categories."""

    def add_company_type(self, company_type: CompanyType) -> None:
        """Store a company type (names are unique)."""

    def get_company_type(self, name: str) -> CompanyType | None:
        """The company type with this name."""

    def company_types(self) -> list[CompanyType]:
        """All company types by name."""

    def add_category(self, category: Category) -> None:
        """Store a category (names are unique)."""

    def get_category(self, name: str) -> Category | None:
        """The category with this name."""

    def categories(self) -> list[Category]:
        """All categories by name."""


class SettingsRepository(Protocol):  # rule D2
    """Per-location switches, such as which external sources are enabled."""

    def source_enabled(self, source: str, location_id: str) -> bool:
        """Whether the source is enabled for the location."""

    def set_source_enabled(self, source: str, location_id: str, enabled: bool) -> None:
        """Enable or disable a source for a location."""


class MergeRepository(Protocol):  # rules M3, M4
    """Merge records, kept so a merge can be repeated idempotently or undone."""

    def add(self, merge_id: str, record: Mapping[str, Any]) -> None:
        """Store a merge record."""

    def get(self, merge_id: str) -> Mapping[str, Any] | None:
        """The merge record with this id."""

    def update(self, merge_id: str, record: Mapping[str, Any]) -> None:
        """Replace a merge record (to mark it undone)."""

    def remove(self, merge_id: str) -> None:
        """Forget a merge record (a purge erases it); no error when absent."""


class DismissalRepository(Protocol):
    """Pairs a person decided are not duplicates, keyed (location, kind, left id, right id).

    ``kind`` is ``"contact"`` or ``"customer"``; ``left_id`` sorts before ``right_id``.
    Removing a contact or customer from its repository removes the dismissals naming it.
    """

    def add(self, dismissal: Dismissal) -> Dismissal | None:
        """Store a dismissal, unless its pair is dismissed already.

        Returns ``None`` when stored, else the dismissal already stored (nothing written): on a
        database, possibly one another transaction committed meanwhile.
        """

    def remove(self, location_id: str, kind: str, left_id: str, right_id: str) -> bool:
        """Forget a dismissal (ids in either order); whether there was one to forget."""

    def for_location(self, location_id: str, kind: str) -> list[Dismissal]:
        """A location's dismissals of one kind, by left id then right id."""


class UnitOfWork(Protocol):
    """One transaction over every repository: commit it, or nothing it did is kept.

    Used as a context manager; leaving the block without `commit()` rolls back.
    """

    @property
    def customers(self) -> CustomerRepository:
        """The customers repository of this unit of work."""

    @property
    def contacts(self) -> ContactRepository:
        """The contacts repository of this unit of work."""

    @property
    def users(self) -> UserRepository:
        """The users repository of this unit of work."""

    @property
    def history(self) -> HistoryRepository:
        """The history repository of this unit of work."""

    @property
    def reference(self) -> ReferenceRepository:
        """The reference repository of this unit of work."""

    @property
    def settings(self) -> SettingsRepository:
        """The settings repository of this unit of work."""

    @property
    def merges(self) -> MergeRepository:
        """The merges repository of this unit of work."""

    @property
    def dismissals(self) -> DismissalRepository:
        """The dismissals repository of this unit of work."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make every change of this unit of work permanent and visible."""


#: What a read-only unit of work says, on every backend, when asked to write or commit.
READ_ONLY_REFUSAL = "a read-only unit of work cannot write or commit; open one without read_only"


class Store(Protocol):
    """A backend: hands out units of work."""

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        """A new unit of work (a transaction).

        ``read_only=True`` promises it only reads, so the backend may run it beside writers
        (SQLite then takes no write lock). It refuses to write or commit with ``RuntimeError``
        (``READ_ONLY_REFUSAL``): at the write (memory, PostgreSQL) or at the latest at
        ``commit`` (SQLite), keeping nothing.
        """

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work``, which opens and commits its own units of work; may run it again.

        A backend whose database reports transient failures (serialization failures,
        deadlocks) runs ``work`` again a bounded number of times; others call it once.
        """

    def close(self) -> None:
        """Release connections and files."""


@runtime_checkable
class CustomerSource(Protocol):  # rule D1
    """An external customer system, such as a dealer management system."""

    @property
    def name(self) -> str:
        """The source's name, unique within a book."""

    def search(self, query: str, field: SearchField) -> Sequence[SourceRecord | Mapping[str, Any]]:
        """Source records matching a query on a field.

        Each a ``SourceRecord``, or a mapping with its ``external_id`` and ``data``.
        """

    def fetch(self, external_id: str) -> SourceRecord | Mapping[str, Any] | None:
        """The current data of one record (as ``search`` gives it), or ``None`` when gone."""
