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
"""

from __future__ import annotations

import itertools
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, NamedTuple, cast

import numpy as np
import numpy.typing as npt

from customerkit.model import SearchField
from customerkit.search.query import ALL_FIELDS, RankedMatch, SearchDocument, SearchQuery
from customerkit.search.rules import (
    EXACT,
    FUZZY,
    INFIX,
    MIN_FUZZY_LENGTH,
    MIN_INFIX_LENGTH,
    PREFIX,
    is_fuzzy_match,
    match_words,
    max_typos,
    reported_field,
    score,
)
from customerkit.text import fold, words, words_of_texts

_Array = npt.NDArray[Any]

#: Upserts kept in the pending buffer (matched one by one) before they become a segment.
_PENDING_LIMIT: Final = 32
#: A segment absorbs the next newer one while it is at most this many times larger.
_MERGE_RATIO: Final = 4
#: A query word thins the candidates by bitmap when its postings number at most this many
#: times the candidates otherwise left to check (marking a posting costs about a hundredth of
#: checking a candidate through the forward index).
_FILTER_RATIO: Final = 64
#: Below one match in this many checked candidates, the other words may build bitmaps.
_SPARSE: Final = 4
#: Documents checked in a bucket's first chunk beyond those needed; later chunks double.
_FIRST_CHUNK: Final = 64
#: One vocabulary word in this many is kept as a Python string for bisecting.
_SAMPLE_STEP: Final = 64
#: Sorts after every word character, so ``q + _AFTER`` bounds the words starting with ``q``.
_AFTER: Final = "\U0010ffff"
#: Bits a packed (trigram, word) pair may use; otherwise the pairs sort with ``np.lexsort``.
_PACKED_BITS: Final = 63
#: Most documents one segment may hold: document numbers are shifted left by two in int32.
_MAX_SEGMENT: Final = (1 << 29) - 1

_ID: Final = operator.attrgetter("id")
_TEXT_OF: Final[dict[SearchField, Callable[[SearchDocument], str]]] = {
    SearchField.NAME: operator.attrgetter("name"),
    SearchField.CITY: operator.attrgetter("city"),
    SearchField.STATE: operator.attrgetter("state"),
    SearchField.NUMBER: operator.attrgetter("number"),
}


class _Entries(NamedTuple):
    """Indexed words of fields, one per position of three equally long arrays."""

    documents: _Array
    words: _Array
    fields: _Array


def _join(parts: Sequence[_Entries]) -> _Entries:
    return _Entries(*(np.concatenate([part[i] for part in parts]) for i in range(3)))


def _offsets(lengths: _Array) -> _Array:
    """Start offsets (plus the end) for items of these lengths, in the smallest safe dtype."""
    ends = np.cumsum(lengths, dtype=np.int64)
    total = int(ends[-1]) if len(ends) else 0
    dtype = np.int32 if total < 2**31 else np.int64
    out = np.zeros(len(lengths) + 1, dtype=dtype)
    out[1:] = ends
    return out


def _distinct(ordered: _Array) -> _Array:
    """The distinct values of a sorted array."""
    fresh = np.ones(len(ordered), dtype=bool)
    fresh[1:] = ordered[1:] != ordered[:-1]
    return ordered[fresh]


def _unique(values: _Array) -> _Array:
    """Sorted distinct values: ``np.unique``, which is over ten times slower in numpy 2.4."""
    return _distinct(np.sort(values))


def _within(values: _Array, ordered: _Array) -> _Array:
    """Whether each value occurs in the sorted array ``ordered`` (a fast ``np.isin``)."""
    if not len(ordered):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    return np.asarray(ordered[at] == values)


def _rank_order(names: Sequence[str], ids: Sequence[str]) -> list[int]:
    """Positions sorted by rank key (name length, name, id).

    One zero-padded string per key sorts about twice as fast as tuples.
    """
    keys = [
        f"{len(name):010d}{name}\x00{document_id}"
        for name, document_id in zip(names, ids, strict=True)
    ]
    return sorted(range(len(keys)), key=keys.__getitem__)


def _expand(starts: _Array, counts: _Array) -> _Array:
    """Indices ``starts[i] .. starts[i] + counts[i]`` for every ``i``, concatenated."""
    ends = np.cumsum(counts)
    shifts: _Array = np.repeat(starts - (ends - counts), counts)
    return np.arange(int(ends[-1]) if len(ends) else 0) + shifts


class _Strings:
    """An immutable list of strings stored as one string and an offsets array (compact)."""

    def __init__(self, items: Sequence[str]) -> None:
        self._blob = "".join(items)
        self._starts = _offsets(np.fromiter(map(len, items), dtype=np.int64, count=len(items)))

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, index: int) -> str:
        return self._blob[self._starts[index] : self._starts[index + 1]]


class _Vocabulary:
    """The sorted distinct words of a segment, with lookups by prefix, infix and typo.

    Words are stored newline-separated in one string (words never hold a newline); every
    ``_SAMPLE_STEP``-th word is kept as a Python string so a lookup bisects those, then
    one small block.
    """

    def __init__(self, sorted_words: Sequence[str]) -> None:
        self._blob = "\n".join(sorted_words) + "\n"
        lengths = np.fromiter(map(len, sorted_words), dtype=np.int64, count=len(sorted_words))
        self._starts = _offsets(lengths + 1)
        self._sample = list(sorted_words[::_SAMPLE_STEP])
        chars = np.frombuffer(self._blob.encode("utf-32-le"), dtype=np.uint32)
        present = np.zeros(int(chars.max()) + 1, dtype=bool)
        present[chars] = True
        # Trigrams are packed from each character's rank in the alphabet, in few bits.
        self._alphabet = np.flatnonzero(present)
        self._bits = len(self._alphabet).bit_length()
        ranks = np.cumsum(present, dtype=np.int64)[chars]
        self._grams, self._gram_starts, self._gram_words = self._trigram_index(chars, ranks)

    def __len__(self) -> int:
        return len(self._starts) - 1

    def word(self, index: int) -> str:
        """The word with this number."""
        return self._blob[self._starts[index] : self._starts[index + 1] - 1]

    def _block(self, first: int, last: int) -> list[str]:
        return self._blob[self._starts[first] : self._starts[last] - 1].split("\n")

    def lower_bound(self, text: str) -> int:
        """The number of words sorting before ``text``."""
        block = bisect_right(self._sample, text) - 1
        if block < 0:
            return 0
        first = block * _SAMPLE_STEP
        last = min(first + _SAMPLE_STEP, len(self))
        return first + bisect_left(self._block(first, last), text)

    def prefix_range(self, prefix: str) -> tuple[int, int]:
        """The numbers ``lo, hi`` of the words starting with ``prefix``.

        ``prefix`` itself is word ``lo`` when it is a word.
        """
        return self.lower_bound(prefix), self.lower_bound(prefix + _AFTER)

    def _trigram_index(self, chars: _Array, ranks: _Array) -> tuple[_Array, _Array, _Array]:
        """For each trigram occurring past a word's first character, the words holding it.

        Returns the sorted packed trigrams, offsets into the third array, and the word numbers
        holding each trigram, ascending. (trigram, word) pairs sort as one packed int64.
        """
        # Trigram ``i`` starts at character ``i + 1``: never at a word's first character.
        newline = chars == ord("\n")
        inside = ~(newline[:-3] | newline[1:-2] | newline[2:-1] | newline[3:])
        bits = self._bits
        grams = ((ranks[1:-2] << 2 * bits) | (ranks[2:-1] << bits) | ranks[3:])[inside]
        owners = np.cumsum(newline, dtype=np.int64)[1:-2][inside]
        shift = max(1, len(self).bit_length())
        if 3 * bits + shift < _PACKED_BITS:
            packed = _distinct(np.sort((grams << shift) | owners))
            grams, owners = packed >> shift, packed & ((1 << shift) - 1)
        else:  # a huge alphabet: sort the pairs the slow way
            order = np.lexsort((owners, grams))
            grams, owners = grams[order], owners[order]
            fresh = np.ones(len(grams), dtype=bool)
            fresh[1:] = (grams[1:] != grams[:-1]) | (owners[1:] != owners[:-1])
            grams, owners = grams[fresh], owners[fresh]
        first = np.ones(len(grams), dtype=bool)
        first[1:] = grams[1:] != grams[:-1]
        starts = _offsets(np.diff(np.append(np.flatnonzero(first), len(grams))))
        return grams[first], starts, owners.astype(np.int32)

    def _gram_code(self, gram: str) -> int | None:
        """A trigram packed as in the index, or ``None`` when a character never occurs."""
        code = 0
        for char in gram:
            at = int(np.searchsorted(self._alphabet, ord(char)))
            if at == len(self._alphabet) or int(self._alphabet[at]) != ord(char):
                return None
            code = (code << self._bits) | (at + 1)
        return code

    def all_words(self) -> list[str]:
        """Every word, in order."""
        return self._blob.split("\n")[:-1] if len(self) else []

    def _holding(self, gram: str) -> _Array | None:
        code = self._gram_code(gram)
        if code is None:
            return None
        at = int(np.searchsorted(self._grams, code))
        if at == len(self._grams) or int(self._grams[at]) != code:
            return None
        return self._gram_words[self._gram_starts[at] : self._gram_starts[at + 1]]

    def infix_ids(self, text: str, lo: int, hi: int) -> _Array:
        """Words holding ``text`` past their first character, apart from ``lo <= id < hi``."""
        lists = []
        for at in range(len(text) - 2):
            found = self._holding(text[at : at + 3])
            if found is None:
                return np.empty(0, dtype=np.int32)
            lists.append(found)
        lists.sort(key=len)
        ids = lists[0]
        for other in lists[1:]:
            ids = ids[_within(ids, other)]
        ids = ids[(ids < lo) | (ids >= hi)]
        if len(text) > 3:  # the trigrams are all there; check they are in a row
            ids = ids[[self.word(int(i)).find(text, 1) >= 0 for i in ids]]
        return ids

    def _length(self, index: int) -> int:
        return int(self._starts[index + 1] - self._starts[index]) - 1

    def children(self, depth: int, lo: int, hi: int) -> list[tuple[str, int, int]]:
        """The characters following a shared prefix of length ``depth``, with word ranges.

        Words ``lo .. hi`` must share their first ``depth`` characters and be longer.
        """
        out = []
        if hi - lo <= _SAMPLE_STEP:  # a few words: one slice of the string beats bisecting
            block = self._block(lo, hi)
            start = 0
            for end in range(1, len(block) + 1):
                if end == len(block) or block[end][depth] != block[start][depth]:
                    out.append((block[start][depth], lo + start, lo + end))
                    start = end
            return out
        at = lo
        while at < hi:
            word = self.word(at)
            end = min(hi, self.lower_bound(word[: depth + 1] + _AFTER))
            out.append((word[depth], at, end))
            at = end
        return out

    def fuzzy_ids(self, text: str) -> _Array:
        """Words a typo or two away from ``text``, or whose start is (see the oracle).

        Walks the vocabulary as a trie, one OSA distance row per prefix, and prunes prefixes
        no longer word can bring back within reach: only words near ``text`` are visited.
        """
        size, reach = len(text), max_typos(text)
        singles: list[int] = []
        ranges: list[_Array] = []
        # depth, word range, distance rows of this prefix and the one a character shorter,
        # and the prefix's last character (for transpositions).
        stack: list[tuple[int, int, int, list[int], list[int] | None, str]] = [
            (0, 0, len(self), list(range(size + 1)), None, "")
        ]
        while stack:
            depth, lo, hi, row, before, last = stack.pop()
            if depth and self._length(lo) == depth:  # the prefix is a word itself
                if row[size] <= reach:
                    singles.append(lo)
                lo += 1
            if depth == size and row[size] <= reach:  # every longer word starts close enough
                ranges.append(np.arange(lo, hi))
                continue
            # Rows never drop below min(this row, the row before + 1) further down.
            hopeless = min(row) > reach and (before is None or min(before) >= reach)
            if depth >= size + reach or hopeless or lo >= hi:
                continue
            for char, start, end in self.children(depth, lo, hi):
                stack.append(
                    (depth + 1, start, end, _osa_row(text, row, before, char, last), row, char)
                )
        return np.concatenate([np.array(singles, dtype=np.int64), *ranges]).astype(np.int32)


def _osa_row(
    text: str, row: list[int], before: list[int] | None, char: str, last: str
) -> list[int]:
    """The next row of the OSA distance table between ``text`` and a word, one character on.

    ``row`` belongs to the word's prefix ending in ``last``; ``before`` to the one before it.
    """
    out = [row[0] + 1]
    for column in range(1, len(text) + 1):
        expected = text[column - 1]
        value = min(row[column] + 1, out[column - 1] + 1, row[column - 1] + (expected != char))
        if before is not None and column > 1 and char == text[column - 2] and last == expected:
            value = min(value, before[column - 2] + 1)
        out.append(value)
    return out


class _WordPlan:
    """One query word within one segment: which vocabulary words match it, how strongly."""

    def __init__(self, vocabulary: _Vocabulary, text: str, query: SearchQuery) -> None:
        self.text = text
        self._vocabulary = vocabulary
        self._lo, self._hi = vocabulary.prefix_range(text)
        self._exact = self._lo < self._hi and vocabulary.word(self._lo) == text
        self._exact_only = query.exact_only
        self._infix = len(text) >= MIN_INFIX_LENGTH and not query.exact_only
        self._fuzzy = query.fuzzy and len(text) >= MIN_FUZZY_LENGTH and not query.exact_only
        self._ranges: dict[int, tuple[_Array, _Array, _Array]] = {}
        self._typo_cache: dict[int, bool] = {}

    def ranges(self, tier: int) -> tuple[_Array, _Array, _Array]:
        """The words matching at ``tier`` or above.

        Returns:
            Disjoint sorted word-number ranges ``[start, end)`` as two arrays, and each
            range's strength.
        """
        if tier not in self._ranges:
            self._ranges[tier] = self._build_ranges(tier)
        return self._ranges[tier]

    def _build_ranges(self, tier: int) -> tuple[_Array, _Array, _Array]:
        starts: list[_Array] = []
        strengths: list[_Array] = []
        ends: list[_Array] = []

        def add(first: _Array, last: _Array, strength: int) -> None:
            starts.append(first)
            ends.append(last)
            strengths.append(np.full(len(first), strength, dtype=np.int8))

        lo, hi = self._lo, self._hi
        if self._exact:
            add(np.array([lo]), np.array([lo + 1]), EXACT)
            lo += 1
        if tier <= PREFIX and not self._exact_only and lo < hi:
            add(np.array([lo]), np.array([hi]), PREFIX)
        infix = None
        if tier <= INFIX and self._infix:
            infix = self._vocabulary.infix_ids(self.text, self._lo, self._hi)
            add(infix, infix + 1, INFIX)
        if tier <= FUZZY and self._fuzzy:
            typos = self._vocabulary.fuzzy_ids(self.text)
            typos = typos[(typos < self._lo) | (typos >= self._hi)]
            if infix is not None:
                typos = typos[~_within(typos, infix)]
            add(typos, typos + 1, FUZZY)
        if not starts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0, dtype=np.int8)
        first, last, strength = (
            np.concatenate(starts),
            np.concatenate(ends),
            np.concatenate(strengths),
        )
        order = np.argsort(first)
        return first[order].astype(np.int64), last[order].astype(np.int64), strength[order]

    def strengths(self, word_ids: _Array, tier: int) -> _Array:
        """Strength (or -1) of each word number, counting only strengths at ``tier`` or above.

        For the fuzzy tier the typo check runs only on the words actually seen, so only the
        bucket's driving word pays for a scan of the vocabulary.
        """
        first, last, strength = self.ranges(max(tier, INFIX))
        if not len(first):
            out = np.full(len(word_ids), -1, dtype=np.int8)
        else:
            at = np.searchsorted(first, word_ids, side="right") - 1
            clipped = np.maximum(at, 0)
            hit = (at >= 0) & (word_ids < last[clipped])
            out = np.where(hit, strength[clipped], -1).astype(np.int8)
        if tier == FUZZY and self._fuzzy:
            unknown = _unique(word_ids[out < 0])
            typo = np.array([self._is_typo(int(i)) for i in unknown], dtype=bool)
            if typo.any():
                out[_within(word_ids, unknown[typo])] = FUZZY
        return out

    def _is_typo(self, word_id: int) -> bool:
        if word_id not in self._typo_cache:
            self._typo_cache[word_id] = is_fuzzy_match(self.text, self._vocabulary.word(word_id))
        return self._typo_cache[word_id]


class _Segment:
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
        self.vocabulary = _Vocabulary(distinct)
        del distinct

        word_ids = renumber[entries.words].astype(np.int64)
        del renumber
        codes = (entries.documents.astype(np.int64) << 2) | entries.fields
        # Sorting one packed int64 is several times faster than a stable argsort.
        shift = max(1, len(self.vocabulary).bit_length())
        packed = _distinct(np.sort((codes << shift) | word_ids))  # a word may repeat in a text
        self.forward = (((packed & ((1 << shift) - 1)) << 2) | ((packed >> shift) & 3)).astype(
            np.int32
        )
        self.forward_starts = _offsets(np.bincount(packed >> (shift + 2), minlength=len(ids)))
        packed = _distinct(np.sort((word_ids << 31) | codes))
        self.postings = (packed & ((1 << 31) - 1)).astype(np.int32)
        self.posting_starts = _offsets(np.bincount(packed >> 31, minlength=len(self.vocabulary)))
        del packed, codes, word_ids

        self.ids = _Strings(ids)
        self.names = _Strings(names)
        hashes = np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))
        self._hash_order = np.argsort(hashes).astype(np.int32)
        self._hashes = hashes[self._hash_order]
        self.deleted = np.zeros(len(ids), dtype=bool)
        self.live = len(ids)

    @classmethod
    def from_documents(cls, documents: Sequence[SearchDocument]) -> _Segment:
        """A segment of new documents (distinct ids)."""
        names = [fold(document.name) for document in documents]
        ids = list(map(_ID, documents))
        order = _rank_order(names, ids)
        ordered = [documents[at] for at in order]
        words: list[str] = []
        parts: list[_Entries] = []
        for code, field in enumerate(ALL_FIELDS):
            texts = list(map(_TEXT_OF[field], ordered))
            distinct = dict.fromkeys(texts)
            found, counts = words_of_texts(list(distinct))
            per_text = np.array(counts, dtype=np.int64)
            starts = _offsets(per_text)[:-1].astype(np.int64) + len(words)
            words.extend(found)
            if len(distinct) < len(texts):  # many share a city or a state: tokenised once
                numbers = dict(zip(distinct, itertools.count()))
                text_of = np.fromiter(map(numbers.__getitem__, texts), np.int64, len(texts))
                per_text, starts = per_text[text_of], starts[text_of]
            owners = np.repeat(np.arange(len(ordered), dtype=np.int32), per_text)
            indexes = _expand(starts, per_text)
            parts.append(_Entries(owners, indexes, np.full(len(indexes), code, dtype=np.int8)))
        return cls([ids[at] for at in order], [names[at] for at in order], words, _join(parts))

    @classmethod
    def merged(cls, segments: Sequence[_Segment]) -> _Segment:
        """One segment holding the live documents of several."""
        names: list[str] = []
        ids: list[str] = []
        parts_of_sources: list[_Array] = []
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

    def live_hashes(self) -> _Array:
        """``hash(id)`` of every live document."""
        return self._hashes[~self.deleted[self._hash_order]]

    def entries(self, document: int) -> _Array:
        """A document's ``(word << 2) | field`` entries."""
        return self.forward[self.forward_starts[document] : self.forward_starts[document + 1]]

    def postings_of(self, first: _Array, last: _Array) -> _Array:
        """The postings of the words in sorted ranges ``[first, last)``, concatenated."""
        # Touching ranges (a word and the rest of its prefix range) read as one slice.
        joined = np.ones(len(first), dtype=bool)
        joined[1:] = first[1:] != last[:-1]
        begin = self.posting_starts[first[joined]]
        end = self.posting_starts[last[np.append(joined[1:], True)]]
        if len(begin) == 1:
            return self.postings[int(begin[0]) : int(end[0])]
        return self.postings[_expand(begin, end - begin)]


class _Candidates:
    """The distinct live documents posted under some words, in some fields, smallest first."""

    def __init__(
        self, segment: _Segment, first: _Array, last: _Array, ordered: bool, fields: _Array
    ) -> None:
        """Candidates from the postings of the words in ranges ``[first, last)``.

        ``ordered`` says those postings are in document order already (one word).
        """
        self._segment = segment
        self._postings = segment.postings_of(first, last)
        self._fields = fields
        self._masks: list[_Array] = []
        self._at = 0
        self._pending: _Array | None = None
        if not ordered:
            self._pending = self._admitted(self._documents(self._postings))

    def take(self, size: int) -> _Array | None:
        """About the next ``size`` candidates, or ``None`` when there are no more."""
        if self._pending is None:
            return self._take_ordered(size)
        pending = self._pending
        if not len(pending):
            return None
        if len(pending) <= size:
            self._pending = pending[:0]
            return _unique(pending)
        part = np.partition(pending, size - 1)
        bound = part[size - 1]
        rest = part[size:]
        self._pending = rest[rest > bound]
        return _unique(part[:size])

    def _take_ordered(self, size: int) -> _Array | None:
        # Read a slice at a time and never the rest; a document's postings stay together.
        postings = self._postings
        if self._at >= len(postings):
            return None
        stop = min(self._at + size, len(postings))
        while stop < len(postings) and postings[stop] >> 2 == postings[stop - 1] >> 2:
            stop += 1
        part = postings[self._at : stop]
        self._at = stop
        return self._admitted(_unique(self._documents(part)))

    def _documents(self, postings: _Array) -> _Array:
        if not self._fields.all():
            postings = postings[self._fields[postings & 3]]
        return postings >> 2

    def remaining(self) -> int:
        """About how many candidates are left (postings, for words in document order)."""
        if self._pending is None:
            return len(self._postings) - self._at
        return len(self._pending)

    def keep(self, mask: _Array) -> None:
        """From now on, only candidates set in ``mask``."""
        self._masks.append(mask)
        if self._pending is None:  # thin everything left in one pass, not chunk by chunk
            self._pending = self._admitted(self._documents(self._postings[self._at :]))
        else:
            self._pending = self._pending[mask[self._pending]]

    def _admitted(self, documents: _Array) -> _Array:
        if self._segment.live < len(self._segment):
            documents = documents[~self._segment.deleted[documents]]
        for mask in self._masks:
            documents = documents[mask[documents]]
        return documents


class _SegmentSearch:
    """One query against one segment."""

    def __init__(self, segment: _Segment, query: SearchQuery) -> None:
        self.segment = segment
        self._plans = [_WordPlan(segment.vocabulary, text, query) for text in query.words]
        self._usable = np.array([field in query.fields for field in ALL_FIELDS])
        self._name_only = np.array([field is SearchField.NAME for field in ALL_FIELDS])

    def bucket(self, tier: int, name_class: bool, need: int) -> _Array:
        """The first ``need`` live documents of a tier and class, in document order."""
        costs = [self._cost(plan, tier) for plan in self._plans]
        driver = costs.index(min(costs))
        first, last, _ = self._plans[driver].ranges(tier)
        if not len(first):
            return np.empty(0, dtype=np.int32)
        fields = self._name_only if name_class else self._usable
        one_word = len(first) == 1 and int(last[0]) - int(first[0]) == 1
        candidates = _Candidates(self.segment, first, last, one_word, fields)
        # When few candidates hold every word, bitmaps of the other words' documents thin the
        # rest, if a word's postings are few enough to pay for it: marking a posting costs
        # about a hundredth of checking a candidate. Typos are known only per checked word,
        # so the fuzzy tier never filters.
        others = [] if tier == FUZZY else [at for at in range(len(costs)) if at != driver]
        found: list[_Array] = []
        missing = need
        size = _FIRST_CHUNK + need
        checked = matched = 0
        while missing > 0 and (chunk := candidates.take(size)) is not None:
            tiers, all_name = self._evaluate(chunk, tier)
            hits = chunk[(tiers == tier) & (all_name == name_class)]
            found.append(hits[:missing])
            missing -= len(hits)
            size *= 2
            checked += len(chunk)
            # In a NAME bucket only candidates with every word best in NAME could be hits.
            matched += int(np.count_nonzero((tiers >= tier) & (all_name | (not name_class))))
            if others and missing > 0 and matched * _SPARSE < checked:
                ahead = min(candidates.remaining(), missing * checked // max(matched, 1))
                worth = [at for at in others if costs[at] <= _FILTER_RATIO * ahead]
                for at in worth:
                    candidates.keep(self._documents_with(self._plans[at], tier, fields))
                others = [at for at in others if at not in worth]
        return np.concatenate(found) if found else np.empty(0, dtype=np.int32)

    def _cost(self, plan: _WordPlan, tier: int) -> int:
        """How many postings a word has at ``tier`` or above (typos not counted)."""
        first, last, _ = plan.ranges(max(tier, INFIX))
        if len(first) == 1:
            return int(self.segment.posting_starts[last[0]] - self.segment.posting_starts[first[0]])
        starts = self.segment.posting_starts
        return int((starts[last] - starts[first]).sum())

    def _documents_with(self, plan: _WordPlan, tier: int, fields: _Array) -> _Array:
        """A mask of the documents where a word matches at ``tier`` or above in ``fields``."""
        postings = self.segment.postings_of(*plan.ranges(tier)[:2])
        if not fields.all():
            postings = postings[fields[postings & 3]]
        mask = np.zeros(len(self.segment), dtype=bool)
        mask[postings >> 2] = True
        return mask

    def _evaluate(self, documents: _Array, tier: int) -> tuple[_Array, _Array]:
        """Check candidates against every query word through the forward index.

        Returns:
            Each document's tier (-1 when below ``tier``), and whether NAME attains every
            query word's best strength.
        """
        starts = self.segment.forward_starts[documents]
        counts = self.segment.forward_starts[documents + 1] - starts
        entries = self.segment.forward[_expand(starts, counts)]
        fields = entries & 3
        usable = self._usable[fields]
        is_name = (fields == 0).astype(np.int8)
        word_ids = entries >> 2
        nonempty = counts > 0
        group_starts = (np.cumsum(counts) - counts)[nonempty]
        tiers = np.full(len(documents), EXACT, dtype=np.int8)
        all_name = np.ones(len(documents), dtype=bool)
        for plan in self._plans:
            strength = plan.strengths(word_ids, tier)
            code = np.where(usable & (strength >= 0), 2 * strength + is_name, -1).astype(np.int8)
            best = np.full(len(documents), -1, dtype=np.int8)
            if len(code):
                best[nonempty] = np.maximum.reduceat(code, group_starts)
            tiers = np.minimum(tiers, best >> 1)
            all_name &= (best & 1) == 1
        return tiers, all_name

    def field(self, document: int, tier: int) -> SearchField:
        """The field a hit of this tier is reported under (see the oracle)."""
        entries = self.segment.entries(document)
        word_ids = entries >> 2
        fields = entries & 3
        best_fields: list[set[SearchField]] = []
        for plan in self._plans:
            strength = plan.strengths(word_ids, tier)
            best: dict[int, int] = {}
            for code, value in zip(fields.tolist(), strength.tolist(), strict=True):
                if value >= 0 and self._usable[code]:
                    best[code] = max(best.get(code, -1), value)
            top = max(best.values())
            best_fields.append({ALL_FIELDS[code] for code, value in best.items() if value == top})
        return reported_field(best_fields)


class _Pending:
    """A recent upsert, matched on its own until the buffer becomes a segment."""

    __slots__ = ("document", "field_words", "key")

    def __init__(self, document: SearchDocument) -> None:
        self.document = document
        name = fold(document.name)
        self.key = (len(name), name, document.id)
        self.field_words = {field: words(_TEXT_OF[field](document)) for field in ALL_FIELDS}


class _Hit(NamedTuple):
    """A hit while buckets merge; sorts by its rank key within one bucket."""

    name_length: int
    name: str
    id: str
    tier: int
    #: Known for pending hits and NAME hits; worked out at the end for the others.
    field: SearchField | None
    search: _SegmentSearch | None = None
    document: int = -1

    def result(self) -> RankedMatch:
        """The hit as returned to the caller."""
        field = self.field
        if field is None:
            field = cast("_SegmentSearch", self.search).field(self.document, self.tier)
        return RankedMatch(customer_id=self.id, score=score(self.tier, field), field=field)


class _Location:
    """The documents of one location: segments, oldest and largest first, plus a buffer."""

    def __init__(self) -> None:
        self.segments: list[_Segment] = []
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
                        [_Segment.merged([s]) if s is segment else s for s in self.segments]
                    )
                return

    def add_documents(self, documents: Sequence[SearchDocument]) -> None:
        """Index documents whose ids are not here yet, as one new segment."""
        self._add(_Segment.from_documents(documents))

    def flush(self) -> None:
        """Turn the pending buffer into a segment."""
        if not self.pending:
            return
        documents = [item.document for item in self.pending.values()]
        self.pending = {}
        self._add(_Segment.from_documents(documents))

    def rebuild(self) -> None:
        """Merge everything, the buffer included, into one segment."""
        self.flush()
        if len(self.segments) > 1 or any(s.live < len(s) for s in self.segments):
            self._replace([_Segment.merged(self.segments)])

    def _add(self, segment: _Segment) -> None:
        segments = [*self.segments, segment]
        # Merging neighbours of similar size keeps the count logarithmic and each document is
        # rewritten a logarithmic number of times.
        while len(segments) > 1 and segments[-2].live <= _MERGE_RATIO * segments[-1].live:
            segments[-2:] = [_Segment.merged(segments[-2:])]
        self._replace(segments)

    def _replace(self, segments: list[_Segment]) -> None:
        self.segments = [segment for segment in segments if segment.live]

    def live_hashes(self) -> _Array:
        """``hash(id)`` of every live document."""
        pending = np.fromiter(map(hash, self.pending), dtype=np.int64, count=len(self.pending))
        return np.concatenate([pending, *(segment.live_hashes() for segment in self.segments)])

    def search(self, query: SearchQuery, limit: int) -> list[RankedMatch]:
        """The best ``limit`` hits, best first (S5)."""
        searches = [_SegmentSearch(segment, query) for segment in self.segments]
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


class MemorySearchIndex:
    """The in-memory ``customerkit.ports.SearchIndex``: oracle results, fast.

    Upserts and removals are visible to the next search at once; they cost little (a buffer of
    ``_PENDING_LIMIT`` recent documents is matched one by one, then indexed as a small
    segment that later merges into larger ones). Use ``bulk_load`` to index many documents
    at once and ``rebuild`` to merge every location into a single segment.

    The index is not thread-safe: callers hold a lock around every call.
    """

    def __init__(self) -> None:
        self._locations: dict[str, _Location] = {}
        # Which location holds an id: ``_recent`` for ids upserted since the last settlement,
        # else a sorted table of id hashes (ids themselves cost too much memory per record).
        self._recent: dict[str, str] = {}
        self._settled_hashes: _Array = np.empty(0, dtype=np.int64)
        self._settled_locations: _Array = np.empty(0, dtype=np.int32)
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
            maybe = _within(hashes, self._settled_hashes)
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
        """Documents of a location matching the query, ranked as S5 says.

        Args:
            location_id: The location searched (S1).
            query: A parsed query (``customerkit.search.query.parse_query``).
            limit: How many hits to return at most.

        Returns:
            Exactly what ``customerkit.search.rules.oracle_search`` returns.
        """
        location = self._locations.get(location_id)
        if location is None or limit <= 0 or not query.words or not query.fields:
            return []
        return location.search(query, limit)

    def _location(self, location_id: str) -> _Location:
        if location_id not in self._locations:
            self._locations[location_id] = _Location()
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
