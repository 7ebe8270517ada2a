"""The in-memory backend: a product, not a test double.

Same behaviour and errors as the SQL backend. A unit of work holds the store's lock for its whole
life, so units of work run one at a time; every write records how to undo itself, and leaving a
unit of work without committing undoes them in reverse order. The search index is updated at
commit, from the customers the unit of work touched; so are the matching indexes of rule M6, which
are built for a location the first time ``find_similar`` needs one.
"""

from __future__ import annotations

# The repositories are private; tests reach them here to inject faults into their writes.
from customerkit.backends.memory.repositories import _Contacts as _Contacts
from customerkit.backends.memory.repositories import _Customers as _Customers
from customerkit.backends.memory.repositories import _Dismissals as _Dismissals
from customerkit.backends.memory.repositories import _History as _History
from customerkit.backends.memory.repositories import _Merges as _Merges
from customerkit.backends.memory.repositories import _Reference as _Reference
from customerkit.backends.memory.repositories import _Settings as _Settings
from customerkit.backends.memory.repositories import _Users as _Users
from customerkit.backends.memory.state import SortedIds
from customerkit.backends.memory.store import MemoryStore, MemoryUnitOfWork
from customerkit.search.index import MemorySearchIndex
from customerkit.search.query import search_document

__all__ = ["MemorySearchIndex", "MemoryStore", "MemoryUnitOfWork", "SortedIds", "search_document"]
