"""The one place services reach a backend's optional accelerators, or do without them.

Each function here asks ``implements()`` whether the repository implements the accelerator (a
runtime-checkable protocol of ``customerkit.ports``), and calls it when it does. Otherwise it
answers from the required repository methods alone, by the same rules: a store implementing
only the required ports behaves exactly like one implementing them all, only slower on large
locations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeGuard, TypeVar

import attrs

from customerkit.errors import ConcurrentModification
from customerkit.export import ExportRecord, record_of
from customerkit.matching import MatchConfig, MatchIndex
from customerkit.matching.kept import KeptBlocks
from customerkit.matching.table import Kind
from customerkit.model import Contact, Customer
from customerkit.ports import (
    ACCELERATORS,
    BulkLoad,
    BulkMove,
    BulkReads,
    BulkRepoint,
    ContactRepository,
    CustomerRepository,
    CustomerSearch,
    ExportRows,
    KeptBlockReads,
    KeptMatchIndex,
    LocationQueries,
    NewCustomers,
    UnitOfWork,
)
from customerkit.search.query import RankedMatch, SearchQuery, search_document
from customerkit.search.rules import oracle_search

__all__ = [
    "bulk_add",
    "count",
    "created_since",
    "detected",
    "export_records",
    "get_many",
    "implements",
    "keep_blocks",
    "keeps_blocks",
    "kept_blocks",
    "live_contacts",
    "match_index",
    "move",
    "reference_search",
    "repoint",
    "search",
]


P = TypeVar("P")

#: (repository class, protocol) -> whether the class implements it. A runtime-checkable
#: ``isinstance`` looks every method up each time (~5 µs, a few percent of an in-memory search);
#: the answer depends only on the class, so it is worked out once per class.
_IMPLEMENTS: dict[tuple[type, object], bool] = {}


def implements(repository: object, protocol: Callable[..., P]) -> TypeGuard[P]:
    """Whether the repository's class has the accelerator's methods (checked once per class)."""
    key = (type(repository), protocol)
    found = _IMPLEMENTS.get(key)
    if found is None:
        found = _IMPLEMENTS[key] = issubclass(type(repository), protocol)  # type: ignore[arg-type]
    return found


def detected(repository: object) -> list[str]:
    """The names of the accelerator protocols ``repository`` implements, as the services see it."""
    return [protocol.__name__ for protocol in ACCELERATORS if implements(repository, protocol)]


def get_many(customers: CustomerRepository, ids: Sequence[str]) -> dict[str, Customer]:
    """The customers with these ids in any status, by id; unknown ids are left out."""
    if implements(customers, BulkReads):
        return customers.get_many(ids)
    return {i: found for i in ids if (found := customers.get(i)) is not None}


def count(customers: CustomerRepository, location_id: str) -> int:
    """How many live customers a location has."""
    if implements(customers, LocationQueries):
        return customers.count(location_id)
    return sum(1 for _ in customers.iter_location(location_id))


def created_since(
    customers: CustomerRepository, location_id: str, since: datetime
) -> list[Customer]:
    """Live customers of a location created at or after ``since``."""
    if implements(customers, LocationQueries):
        return customers.created_since(location_id, since)
    return [c for c in customers.iter_location(location_id) if c.created_at >= since]


def reference_search(
    customers: Iterable[Customer], location_id: str, query: SearchQuery, *, limit: int
) -> list[RankedMatch]:
    """Search by reading ``customers``: the reference semantics every search index agrees with."""
    documents = (search_document(customer) for customer in customers)
    return oracle_search(documents, location_id, query, limit=limit)


def search(
    customers: CustomerRepository, location_id: str, query: SearchQuery, *, limit: int
) -> list[RankedMatch]:
    """Live customers of a location matching the query, best first (S1-S5)."""
    if implements(customers, CustomerSearch):
        return customers.search(location_id, query, limit=limit)
    return reference_search(customers.iter_location(location_id), location_id, query, limit=limit)


def export_records(
    uow: UnitOfWork, location_id: str, *, ids: Sequence[str] | None = None
) -> Iterator[ExportRecord]:
    """The location's live customers (only ``ids`` when given), in id order, as export rows."""
    customers = uow.customers
    if implements(customers, ExportRows):
        return customers.export_records(location_id, ids=ids)
    return _export_records(uow, location_id, ids)


def _export_records(
    uow: UnitOfWork, location_id: str, ids: Sequence[str] | None
) -> Iterator[ExportRecord]:
    if ids is None:
        chosen: Iterable[Customer] = uow.customers.iter_location(location_id)
    else:
        found = (uow.customers.get(i) for i in sorted(set(ids)))
        chosen = (c for c in found if c is not None and c.location_id == location_id)
    for customer in chosen:
        if customer.is_live:
            yield record_of(customer, uow.contacts.for_customer(customer.id))


def keeps_blocks(uow: UnitOfWork, config: MatchConfig) -> bool:
    """Whether the backend can keep the customers' blocking keys for a location's duplicates.

    False when the customers repository keeps none (``KeptBlockReads``), or when the matching
    settings add comparisons, whose keys are not kept: the duplicates are then found in memory.
    """
    return not config.comparisons and implements(uow.customers, KeptBlockReads)


def keep_blocks(uow: UnitOfWork, location_id: str, *, region: str) -> None:
    """Have the backend keep the location's customer blocking keys (after ``keeps_blocks``)."""
    customers = uow.customers
    if not implements(customers, KeptBlockReads):
        raise TypeError(_NO_KEPT_BLOCKS)
    customers.keep_blocks(location_id, region=region)


def kept_blocks(uow: UnitOfWork, location_id: str) -> KeptBlocks:
    """The location's kept customer blocks (after ``keep_blocks``), read through ``uow``."""
    customers = uow.customers
    if not implements(customers, KeptBlockReads):
        raise TypeError(_NO_KEPT_BLOCKS)
    return customers.kept_blocks(location_id)


_NO_KEPT_BLOCKS = "the customers repository keeps no blocks; ask keeps_blocks first"


def live_contacts(uow: UnitOfWork, location_id: str) -> list[Contact]:
    """The live contacts of the location's live customers (what contact matching reads)."""
    return [
        contact
        for customer in uow.customers.iter_location(location_id)
        for contact in uow.contacts.for_customer(customer.id)
        if contact.is_live
    ]


def match_index(
    uow: UnitOfWork, kind: Kind, location_id: str, *, region: str, config: MatchConfig | None = None
) -> MatchIndex:
    """A matching index of the location's live customers, or of their live contacts.

    Read it, never change it.
    """
    repository = uow.customers if kind == "customer" else uow.contacts
    if implements(repository, KeptMatchIndex):
        return repository.match_index(location_id, region=region, config=config)
    records: Sequence[Customer | Contact] = (
        list(uow.customers.iter_location(location_id))
        if kind == "customer"
        else live_contacts(uow, location_id)
    )
    return MatchIndex.build(records, kind=kind, config=config, region=region)


def repoint(
    repository: CustomerRepository | ContactRepository,
    ids: Sequence[str],
    *,
    from_id: str,
    to_id: str,
    at: datetime,
    entity: str,
) -> list[Any]:
    """Point the tombstones ``ids`` from ``from_id`` at ``to_id``, in id order.

    Raises ``ConcurrentModification`` (naming ``entity``) when one is gone or points elsewhere.
    """
    if implements(repository, BulkRepoint):
        return repository.repoint(ids, from_id=from_id, to_id=to_id, at=at)
    return _rewrite_each(
        repository, ids, "merged_into", from_id=from_id, to_id=to_id, at=at, entity=entity
    )


def move(
    contacts: ContactRepository,
    ids: Sequence[str],
    *,
    from_customer: str,
    to_customer: str,
    at: datetime,
) -> list[Contact]:
    """Move the contacts ``ids`` from ``from_customer`` to ``to_customer``, in id order."""
    if implements(contacts, BulkMove):
        return contacts.move(ids, from_customer=from_customer, to_customer=to_customer, at=at)
    return _rewrite_each(
        contacts,
        ids,
        "customer_id",
        from_id=from_customer,
        to_id=to_customer,
        at=at,
        entity="contact",
    )


def _rewrite_each(
    repository: Any,
    ids: Sequence[str],
    field: str,
    *,
    from_id: str,
    to_id: str,
    at: datetime,
    entity: str,
) -> list[Any]:
    """``repoint`` and ``move`` by one ``get`` and ``update`` per record, in id order."""
    moved = []
    for record_id in sorted(set(ids)):
        stored = repository.get(record_id)
        if stored is None or getattr(stored, field) != from_id:
            raise ConcurrentModification(entity, record_id)
        changed = attrs.evolve(stored, **{field: to_id}, updated_at=at, version=stored.version + 1)
        repository.update(changed, expected_version=stored.version)
        moved.append(changed)
    return moved


def bulk_add(uow: UnitOfWork, chunk: NewCustomers) -> None:
    """Add a chunk of a bulk load: in batches where the store can, else one at a time."""
    if implements(uow, BulkLoad):
        uow.bulk_add(chunk)
        return
    for customer in chunk.customers():
        uow.customers.add(customer)
    for record in chunk.records():
        uow.history.append(record)
