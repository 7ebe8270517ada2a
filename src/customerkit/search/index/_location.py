"""The documents of one location: segments kept few by merging, a pending buffer, ranked search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple, cast

import numpy as np

from customerkit.model import SearchField
from customerkit.search.index._arrays import Array
from customerkit.search.index._buckets import SegmentSearch
from customerkit.search.index._segment import TEXT_OF, Segment
from customerkit.search.query import ALL_FIELDS, RankedMatch, SearchDocument, SearchQuery
from customerkit.search.rules import EXACT, FUZZY, INFIX, PREFIX, match_words, score
from customerkit.text import fold, words

#: Upserts kept in the pending buffer (matched one by one) before they become a segment.
_PENDING_LIMIT: Final = 32
#: A segment absorbs the next newer one while it is at most this many times larger.
_MERGE_RATIO: Final = 4


class _Pending:
    """A recent upsert, matched on its own until the buffer becomes a segment."""

    __slots__ = ("document", "field_words", "key")

    def __init__(self, document: SearchDocument) -> None:
        self.document = document
        name = fold(document.name)
        self.key = (len(name), name, document.id)
        self.field_words = {field: words(TEXT_OF[field](document)) for field in ALL_FIELDS}


class _Hit(NamedTuple):
    """A hit while buckets merge; sorts by its rank key within one bucket."""

    name_length: int
    name: str
    id: str
    tier: int
    #: Known for pending hits and NAME hits; worked out at the end for the others.
    field: SearchField | None
    search: SegmentSearch | None = None
    document: int = -1

    def result(self) -> RankedMatch:
        """The hit as returned to the caller."""
        field = self.field
        if field is None:
            field = cast("SegmentSearch", self.search).field(self.document, self.tier)
        return RankedMatch(customer_id=self.id, score=score(self.tier, field), field=field)


class Location:
    """The documents of one location: segments, oldest and largest first, plus a buffer."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self.pending) + sum(segment.live for segment in self.segments)

    def contains(self, document_id: str) -> bool:
        """Whether a live document has this id."""
        return document_id in self.pending or any(
            segment.find(document_id) >= 0 for segment in self.segments
        )

    def upsert(self, document: SearchDocument) -> None:
        """Add or replace a document."""
        self.discard(document.id)
        self.pending[document.id] = _Pending(document)
        if len(self.pending) >= _PENDING_LIMIT:
            self.flush()

    def discard(self, document_id: str) -> None:
        """Drop a document if present."""
        if self.pending.pop(document_id, None) is not None:
            return
        for segment in self.segments:
            document = segment.find(document_id)
            if document >= 0:
                segment.delete(document)
                if segment.live * 2 < len(segment):
                    self._replace(
                        [Segment.merged([s]) if s is segment else s for s in self.segments]
                    )
                return

    def add_documents(self, documents: Sequence[SearchDocument]) -> None:
        """Index documents whose ids are not here yet, as one new segment."""
        self._add(Segment.from_documents(documents))

    def flush(self) -> None:
        """Turn the pending buffer into a segment."""
        if not self.pending:
            return
        documents = [item.document for item in self.pending.values()]
        self.pending = {}
        self._add(Segment.from_documents(documents))

    def rebuild(self) -> None:
        """Merge everything, the buffer included, into one segment."""
        self.flush()
        if len(self.segments) > 1 or any(s.live < len(s) for s in self.segments):
            self._replace([Segment.merged(self.segments)])

    def _add(self, segment: Segment) -> None:
        segments = [*self.segments, segment]
        # Merging neighbours of similar size keeps the count logarithmic and each document is
        # rewritten a logarithmic number of times.
        while len(segments) > 1 and segments[-2].live <= _MERGE_RATIO * segments[-1].live:
            segments[-2:] = [Segment.merged(segments[-2:])]
        self._replace(segments)

    def _replace(self, segments: list[Segment]) -> None:
        self.segments = [segment for segment in segments if segment.live]

    def live_hashes(self) -> Array:
        """``hash(id)`` of every live document."""
        pending = np.fromiter(map(hash, self.pending), dtype=np.int64, count=len(self.pending))
        return np.concatenate([pending, *(segment.live_hashes() for segment in self.segments)])

    def search(self, query: SearchQuery, limit: int) -> list[RankedMatch]:
        """The best ``limit`` hits, best first (rule S5)."""
        searches = [SegmentSearch(segment, query) for segment in self.segments]
        pending = self._pending_hits(query)
        classes = [field is SearchField.NAME for field in query.fields]
        hits: list[_Hit] = []
        # Buckets in rank order: each tier's NAME hits, then its other hits.
        for tier in _tiers(query):
            for name_class in (True, False):
                need = limit - len(hits)
                if need <= 0 or name_class not in classes:
                    continue
                found = [
                    hit
                    for hit in pending
                    if hit.tier == tier and (hit.field is SearchField.NAME) == name_class
                ]
                field = SearchField.NAME if name_class else None
                for search in searches:
                    for document in search.bucket(tier, name_class, need).tolist():
                        key = search.segment.key(document)
                        found.append(_Hit(*key, tier, field, search, document))
                found.sort(key=lambda hit: hit[:3])
                hits.extend(found[:need])
        return [hit.result() for hit in hits]

    def _pending_hits(self, query: SearchQuery) -> list[_Hit]:
        hits = []
        for item in self.pending.values():
            found = match_words(item.field_words, query)
            if found is not None:
                hits.append(_Hit(*item.key, *found))
        return hits


def _tiers(query: SearchQuery) -> tuple[int, ...]:
    if query.exact_only:
        return (EXACT,)
    return (EXACT, PREFIX, INFIX, FUZZY) if query.fuzzy else (EXACT, PREFIX, INFIX)
