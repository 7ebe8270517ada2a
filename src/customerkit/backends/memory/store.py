"""The memory store and its unit of work: one at a time, all of it kept at commit or none."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Self, TypeVar

from customerkit.backends.memory.repositories import (
    _Contacts,
    _Customers,
    _Dismissals,
    _History,
    _Merges,
    _Reference,
    _Settings,
    _Users,
)
from customerkit.backends.memory.state import _Journal, _State
from customerkit.model import Contact, Customer
from customerkit.search.index import MemorySearchIndex
from customerkit.search.query import search_document

T = TypeVar("T")

#: From this many customers changed in one unit of work, the index is bulk-loaded.
_BULK_INDEX = 256
#: From this many records changed in one unit of work, a matching index is dropped, not updated.
_REBUILD_MATCH = 10_000


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

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._journal.undo()
            self._touched.clear()
            self._touched_contacts.clear()
        finally:
            self._store.lock.release()

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
