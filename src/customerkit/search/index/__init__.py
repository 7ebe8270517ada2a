"""An in-memory search index over millions of customers (rules S1-S5).

``MemorySearchIndex`` returns exactly what ``customerkit.search.rules.oracle_search``
returns, in the same order, without reading every document.

Design, per location:

* Documents live in immutable *segments* plus a tiny *pending* buffer of recent upserts. A
  full buffer becomes a segment; a segment merges with its older neighbour when that one is at
  most ``_MERGE_RATIO`` times larger, so there are few segments and each document is
  rewritten a logarithmic number of times. Replacing or removing a document only marks it
  deleted; a segment that is mostly deleted is rebuilt.
* A segment numbers its documents in rank order (folded name length, folded name, id), so
  within one tier and class the best hits are the smallest numbers.
* One sorted vocabulary of distinct words over all four fields, stored as one string. Postings
  of word ``w`` are ``(document << 2) | field`` in document order, concatenated in vocabulary
  order: the documents of a prefix are one contiguous slice. A trigram index over the
  vocabulary (trigrams not at a word's start) finds infix words; typos are found by walking the
  sorted vocabulary as a trie, with one edit-distance row per prefix.
* A forward index (each document's ``(word << 2) | field`` entries) checks candidate documents
  against every query word with a few numpy operations.

Field codes (NAME 0, CITY 1, STATE 2, NUMBER 3: the order of ``ALL_FIELDS``) sit in the low two
bits of postings and forward entries.

A query runs tier by tier (exact, prefix, infix, fuzzy) and, within a tier, NAME hits before the
others. Each such *bucket* is filled from the query word with the fewest postings, read in
document order in growing chunks until it holds enough hits, so a query touches about as many
documents as it returns. When few candidates hold the other query words, bitmaps of those
words' documents thin the rest first.

Which location holds an id is kept as a sorted table of ``hash(id)`` (ids cost too much memory
as dictionary keys), plus a dictionary of the ids upserted since the table was last built.

The caller serialises access (the memory backend holds a lock); the index itself is not
thread-safe.

The package's modules, one reason to change each: ``_arrays`` (numpy helpers),
``_vocabulary`` (word lookups), ``_segment`` (postings and forward index), ``_buckets`` (one
query against one segment), ``_location`` (segment upkeep and ranked merging of buckets); the
id-to-location table and ``MemorySearchIndex`` are here.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from customerkit.search.index._arrays import Array, within
from customerkit.search.index._location import Location
from customerkit.search.query import RankedMatch, SearchDocument, SearchQuery

__all__ = ["MemorySearchIndex"]


class MemorySearchIndex:
    """The in-memory ``customerkit.ports.SearchIndex``: oracle results, fast.

    Upserts and removals are visible to the next search at once; they cost little (a buffer of
    ``_PENDING_LIMIT`` recent documents is matched one by one, then indexed as a small
    segment that later merges into larger ones). Use ``bulk_load`` to index many documents
    at once and ``rebuild`` to merge every location into a single segment.

    The index is not thread-safe: callers hold a lock around every call.
    """

    def __init__(self) -> None:
        self._locations: dict[str, Location] = {}
        # Which location holds an id: ``_recent`` for ids upserted since the last settlement,
        # else a sorted table of id hashes (ids themselves cost too much memory per record).
        self._recent: dict[str, str] = {}
        self._settled_hashes: Array = np.empty(0, dtype=np.int64)
        self._settled_locations: Array = np.empty(0, dtype=np.int32)
        self._settled_names: list[str] = []

    def __len__(self) -> int:
        return sum(len(location) for location in self._locations.values())

    def upsert(self, document: SearchDocument) -> None:
        """Add or replace a document."""
        holder = self._holder(document.id)
        if holder is not None and holder != document.location_id:
            self._locations[holder].discard(document.id)
        self._location(document.location_id).upsert(document)
        self._recent[document.id] = document.location_id
        if len(self._recent) > max(4096, len(self._settled_hashes) // 4):
            self._settle()

    def remove(self, document_id: str) -> None:
        """Drop a document (no error when absent)."""
        holder = self._holder(document_id)
        if holder is not None:
            self._locations[holder].discard(document_id)
        self._recent.pop(document_id, None)

    def bulk_load(self, documents: Iterable[SearchDocument]) -> None:
        """Add or replace many documents at once, much faster than one upsert each.

        Args:
            documents: The documents; for a repeated id the last one wins.
        """
        latest = {document.id: document for document in documents}
        if self._recent or len(self._settled_hashes):
            hashes = np.fromiter(map(hash, latest), dtype=np.int64, count=len(latest))
            maybe = within(hashes, self._settled_hashes)
            for document_id, settled in zip(latest, maybe.tolist(), strict=True):
                if settled or document_id in self._recent:
                    self.remove(document_id)
        groups: dict[str, list[SearchDocument]] = {}
        for document in latest.values():
            groups.setdefault(document.location_id, []).append(document)
        del latest
        for location_id, group in groups.items():
            self._location(location_id).add_documents(group)
        self._settle()

    def rebuild(self) -> None:
        """Merge each location's documents, recent ones included, into a single segment."""
        for location in self._locations.values():
            location.rebuild()
        self._settle()

    def search(self, location_id: str, query: SearchQuery, *, limit: int) -> list[RankedMatch]:
        """Documents of a location matching the query, ranked as rule S5 says.

        Args:
            location_id: The location searched (rule S1).
            query: A parsed query (``customerkit.search.query.parse_query``).
            limit: How many hits to return at most.

        Returns:
            Exactly what ``customerkit.search.rules.oracle_search`` returns.
        """
        location = self._locations.get(location_id)
        if location is None or limit <= 0 or not query.words or not query.fields:
            return []
        return location.search(query, limit)

    def _location(self, location_id: str) -> Location:
        if location_id not in self._locations:
            self._locations[location_id] = Location()
        return self._locations[location_id]

    def _holder(self, document_id: str) -> str | None:
        """The id of the location holding a live document with this id."""
        if document_id in self._recent:
            return self._recent[document_id]
        wanted = hash(document_id)
        at = int(np.searchsorted(self._settled_hashes, wanted))
        while at < len(self._settled_hashes) and int(self._settled_hashes[at]) == wanted:
            name = self._settled_names[int(self._settled_locations[at])]
            if self._locations[name].contains(document_id):
                return name
            at += 1
        return None

    def _settle(self) -> None:
        """Rebuild the id-hash table from every location and forget the recent ids."""
        self._locations = {name: loc for name, loc in self._locations.items() if len(loc)}
        self._settled_names = list(self._locations)
        parts = [location.live_hashes() for location in self._locations.values()]
        hashes = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        codes = np.repeat(np.arange(len(parts), dtype=np.int32), [len(part) for part in parts])
        order = np.argsort(hashes, kind="stable")
        self._settled_hashes = hashes[order]
        self._settled_locations = codes[order]
        self._recent.clear()
