"""A segment: an immutable, rank-ordered set of documents with postings and a forward index."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

import numpy as np

from customerkit.model import SearchField
from customerkit.search.index._arrays import Array, expand, offsets, sorted_distinct
from customerkit.search.index._vocabulary import Vocabulary
from customerkit.search.query import ALL_FIELDS, SearchDocument
from customerkit.text import fold, words_of_texts

#: Most documents one segment may hold: document numbers are shifted left by two in int32.
_MAX_SEGMENT: Final = (1 << 29) - 1

_ID: Final = operator.attrgetter("id")
TEXT_OF: Final[dict[SearchField, Callable[[SearchDocument], str]]] = {
    SearchField.NAME: operator.attrgetter("name"),
    SearchField.CITY: operator.attrgetter("city"),
    SearchField.STATE: operator.attrgetter("state"),
    SearchField.NUMBER: operator.attrgetter("number"),
}


class _Entries(NamedTuple):
    """Indexed words of fields, one per position of three equally long arrays."""

    documents: Array
    words: Array
    fields: Array


def _join(parts: Sequence[_Entries]) -> _Entries:
    return _Entries(*(np.concatenate([part[i] for part in parts]) for i in range(3)))


def _rank_order(names: Sequence[str], ids: Sequence[str]) -> list[int]:
    """Positions sorted by rank key (name length, name, id).

    One zero-padded string per key sorts about twice as fast as tuples.
    """
    keys = [
        f"{len(name):010d}{name}\x00{document_id}"
        for name, document_id in zip(names, ids, strict=True)
    ]
    return sorted(range(len(keys)), key=keys.__getitem__)


class _Strings:
    """An immutable list of strings stored as one string and an offsets array (compact)."""

    def __init__(self, items: Sequence[str]) -> None:
        self._blob = "".join(items)
        self._starts = offsets(np.fromiter(map(len, items), dtype=np.int64, count=len(items)))

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, index: int) -> str:
        return self._blob[self._starts[index] : self._starts[index + 1]]


class Segment:
    """An immutable, rank-ordered set of documents of one location, with deletion marks."""

    def __init__(
        self, ids: Sequence[str], names: Sequence[str], words: Sequence[str], entries: _Entries
    ) -> None:
        """Index documents numbered in rank order.

        Args:
            ids: Document ids, by document number.
            names: Folded names, by document number.
            words: Words the entries point into; repeats are allowed.
            entries: One (document number, index into ``words``, field code) per indexed
                word of a field, in any order.
        """
        if len(ids) > _MAX_SEGMENT:
            raise ValueError("too many documents for one segment")
        distinct = sorted(set(words))
        position = dict(zip(distinct, range(len(distinct)), strict=True))
        renumber = np.fromiter(map(position.__getitem__, words), dtype=np.int32, count=len(words))
        del position
        self.vocabulary = Vocabulary(distinct)
        del distinct

        word_ids = renumber[entries.words].astype(np.int64)
        del renumber
        codes = (entries.documents.astype(np.int64) << 2) | entries.fields
        # Sorting one packed int64 is several times faster than a stable argsort.
        shift = max(1, len(self.vocabulary).bit_length())
        packed = sorted_distinct(
            np.sort((codes << shift) | word_ids)
        )  # a word may repeat in a text
        self.forward = (((packed & ((1 << shift) - 1)) << 2) | ((packed >> shift) & 3)).astype(
            np.int32
        )
        self.forward_starts = offsets(np.bincount(packed >> (shift + 2), minlength=len(ids)))
        packed = sorted_distinct(np.sort((word_ids << 31) | codes))
        self.postings = (packed & ((1 << 31) - 1)).astype(np.int32)
        self.posting_starts = offsets(np.bincount(packed >> 31, minlength=len(self.vocabulary)))
        del packed, codes, word_ids

        self.ids = _Strings(ids)
        self.names = _Strings(names)
        hashes = np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))
        self._hash_order = np.argsort(hashes).astype(np.int32)
        self._hashes = hashes[self._hash_order]
        self.deleted = np.zeros(len(ids), dtype=bool)
        self.live = len(ids)

    @classmethod
    def from_documents(cls, documents: Sequence[SearchDocument]) -> Segment:
        """A segment of new documents (distinct ids)."""
        names = [fold(document.name) for document in documents]
        ids = list(map(_ID, documents))
        order = _rank_order(names, ids)
        ordered = [documents[at] for at in order]
        words: list[str] = []
        parts: list[_Entries] = []
        for code, field in enumerate(ALL_FIELDS):
            texts = list(map(TEXT_OF[field], ordered))
            distinct = dict.fromkeys(texts)
            found, counts = words_of_texts(list(distinct))
            per_text = np.array(counts, dtype=np.int64)
            starts = offsets(per_text)[:-1].astype(np.int64) + len(words)
            words.extend(found)
            if len(distinct) < len(texts):  # many share a city or a state: tokenised once
                numbers = dict(zip(distinct, itertools.count()))
                text_of = np.fromiter(map(numbers.__getitem__, texts), np.int64, len(texts))
                per_text, starts = per_text[text_of], starts[text_of]
            owners = np.repeat(np.arange(len(ordered), dtype=np.int32), per_text)
            indexes = expand(starts, per_text)
            parts.append(_Entries(owners, indexes, np.full(len(indexes), code, dtype=np.int8)))
        return cls([ids[at] for at in order], [names[at] for at in order], words, _join(parts))

    @classmethod
    def merged(cls, segments: Sequence[Segment]) -> Segment:
        """One segment holding the live documents of several."""
        names: list[str] = []
        ids: list[str] = []
        parts_of_sources: list[Array] = []
        for number, segment in enumerate(segments):
            live = np.flatnonzero(~segment.deleted)
            names.extend(map(segment.names.__getitem__, live.tolist()))
            ids.extend(map(segment.ids.__getitem__, live.tolist()))
            parts_of_sources.append((number << 32) | live)
        order = _rank_order(names, ids)
        # (segment << 32) | document number, in the new document order.
        sources = np.concatenate(parts_of_sources)[order]
        words: list[str] = []
        parts: list[_Entries] = []
        for number, segment in enumerate(segments):
            mine = (sources >> 32) == number
            renumber = np.full(len(segment), -1, dtype=np.int32)
            renumber[sources[mine] & 0xFFFFFFFF] = np.flatnonzero(mine)
            owners = renumber[np.repeat(np.arange(len(segment)), np.diff(segment.forward_starts))]
            kept = owners >= 0
            forward = segment.forward[kept]
            parts.append(_Entries(owners[kept], (forward >> 2) + len(words), forward & 3))
            words.extend(segment.vocabulary.all_words())
        return cls([ids[at] for at in order], [names[at] for at in order], words, _join(parts))

    def __len__(self) -> int:
        return len(self.deleted)

    def key(self, document: int) -> tuple[int, str, str]:
        """A document's rank key without the tier: (name length, folded name, id)."""
        name = self.names[document]
        return len(name), name, self.ids[document]

    def find(self, document_id: str) -> int:
        """The number of the live document with this id, or -1."""
        wanted = hash(document_id)
        at = int(np.searchsorted(self._hashes, wanted))
        while at < len(self._hashes) and int(self._hashes[at]) == wanted:
            document = int(self._hash_order[at])
            if not self.deleted[document] and self.ids[document] == document_id:
                return document
            at += 1
        return -1

    def delete(self, document: int) -> None:
        """Mark a document deleted."""
        self.deleted[document] = True
        self.live -= 1

    def live_hashes(self) -> Array:
        """``hash(id)`` of every live document."""
        return self._hashes[~self.deleted[self._hash_order]]

    def entries(self, document: int) -> Array:
        """A document's ``(word << 2) | field`` entries."""
        return self.forward[self.forward_starts[document] : self.forward_starts[document + 1]]

    def postings_of(self, first: Array, last: Array) -> Array:
        """The postings of the words in sorted ranges ``[first, last)``, concatenated."""
        # Touching ranges (a word and the rest of its prefix range) read as one slice.
        joined = np.ones(len(first), dtype=bool)
        joined[1:] = first[1:] != last[:-1]
        begin = self.posting_starts[first[joined]]
        end = self.posting_starts[last[np.append(joined[1:], True)]]
        if len(begin) == 1:
            return self.postings[int(begin[0]) : int(end[0])]
        return self.postings[expand(begin, end - begin)]
