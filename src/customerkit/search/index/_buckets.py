"""One query against one segment: each query word's matching words, and each bucket's hits.

A bucket is the hits of one tier (exact, prefix, infix, fuzzy) and one class (NAME, other
fields); it is filled from the query word with the fewest postings, in document order.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from customerkit.model import SearchField
from customerkit.search import rules
from customerkit.search.index._arrays import Array, expand, sorted_unique, within
from customerkit.search.index._segment import Segment
from customerkit.search.index._vocabulary import Vocabulary
from customerkit.search.query import ALL_FIELDS, SearchQuery

#: A query word thins the candidates by bitmap when its postings number at most this many
#: times the candidates otherwise left to check (marking a posting costs about a hundredth of
#: checking a candidate through the forward index).
_FILTER_RATIO: Final = 64
#: Below one match in this many checked candidates, the other words may build bitmaps.
_SPARSE: Final = 4
#: Documents checked in a bucket's first chunk beyond those needed; later chunks double.
_FIRST_CHUNK: Final = 64


class _WordPlan:
    """One query word within one segment: which vocabulary words match it, how strongly."""

    def __init__(self, vocabulary: Vocabulary, text: str, query: SearchQuery) -> None:
        self.text = text
        self._vocabulary = vocabulary
        self._lo, self._hi = vocabulary.prefix_range(text)
        self._exact = self._lo < self._hi and vocabulary.word(self._lo) == text
        self._exact_only = query.exact_only
        reachable = rules.reachable_strengths(text, query)
        self._infix = rules.INFIX in reachable
        self._fuzzy = rules.FUZZY in reachable
        self._ranges: dict[int, tuple[Array, Array, Array]] = {}
        self._typo_cache: dict[int, bool] = {}

    def ranges(self, tier: int) -> tuple[Array, Array, Array]:
        """The words matching at ``tier`` or above.

        Returns:
            Disjoint sorted word-number ranges ``[start, end)`` as two arrays, and each
            range's strength.
        """
        if tier not in self._ranges:
            self._ranges[tier] = self._build_ranges(tier)
        return self._ranges[tier]

    def _build_ranges(self, tier: int) -> tuple[Array, Array, Array]:
        starts: list[Array] = []
        strengths: list[Array] = []
        ends: list[Array] = []

        def add(first: Array, last: Array, strength: int) -> None:
            starts.append(first)
            ends.append(last)
            strengths.append(np.full(len(first), strength, dtype=np.int8))

        lo, hi = self._lo, self._hi
        if self._exact:
            add(np.array([lo]), np.array([lo + 1]), rules.EXACT)
            lo += 1
        if tier <= rules.PREFIX and not self._exact_only and lo < hi:
            add(np.array([lo]), np.array([hi]), rules.PREFIX)
        infix = None
        if tier <= rules.INFIX and self._infix:
            infix = self._vocabulary.infix_ids(self.text, self._lo, self._hi)
            add(infix, infix + 1, rules.INFIX)
        if tier <= rules.FUZZY and self._fuzzy:
            typos = self._vocabulary.fuzzy_ids(self.text)
            typos = typos[(typos < self._lo) | (typos >= self._hi)]
            if infix is not None:
                typos = typos[~within(typos, infix)]
            add(typos, typos + 1, rules.FUZZY)
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

    def strengths(self, word_ids: Array, tier: int) -> Array:
        """Strength (or -1) of each word number, counting only strengths at ``tier`` or above.

        For the fuzzy tier the typo check runs only on the words actually seen, so only the
        bucket's driving word pays for a scan of the vocabulary.
        """
        first, last, strength = self.ranges(max(tier, rules.INFIX))
        if not len(first):
            out = np.full(len(word_ids), -1, dtype=np.int8)
        else:
            at = np.searchsorted(first, word_ids, side="right") - 1
            clipped = np.maximum(at, 0)
            hit = (at >= 0) & (word_ids < last[clipped])
            out = np.where(hit, strength[clipped], -1).astype(np.int8)
        if tier == rules.FUZZY and self._fuzzy:
            unknown = sorted_unique(word_ids[out < 0])
            typo = np.array([self._is_typo(int(i)) for i in unknown], dtype=bool)
            if typo.any():
                out[within(word_ids, unknown[typo])] = rules.FUZZY
        return out

    def _is_typo(self, word_id: int) -> bool:
        if word_id not in self._typo_cache:
            self._typo_cache[word_id] = rules.is_fuzzy_match(
                self.text, self._vocabulary.word(word_id)
            )
        return self._typo_cache[word_id]


class _Candidates:
    """The distinct live documents posted under some words, in some fields, smallest first."""

    def __init__(
        self, segment: Segment, first: Array, last: Array, ordered: bool, fields: Array
    ) -> None:
        """Candidates from the postings of the words in ranges ``[first, last)``.

        ``ordered`` says those postings are in document order already (one word).
        """
        self._segment = segment
        self._postings = segment.postings_of(first, last)
        self._fields = fields
        self._masks: list[Array] = []
        self._at = 0
        self._pending: Array | None = None
        if not ordered:
            self._pending = self._admitted(self._documents(self._postings))

    def take(self, size: int) -> Array | None:
        """About the next ``size`` candidates, or ``None`` when there are no more."""
        if self._pending is None:
            return self._take_ordered(size)
        pending = self._pending
        if not len(pending):
            return None
        if len(pending) <= size:
            self._pending = pending[:0]
            return sorted_unique(pending)
        part = np.partition(pending, size - 1)
        bound = part[size - 1]
        rest = part[size:]
        self._pending = rest[rest > bound]
        return sorted_unique(part[:size])

    def _take_ordered(self, size: int) -> Array | None:
        # Read a slice at a time and never the rest; a document's postings stay together.
        postings = self._postings
        if self._at >= len(postings):
            return None
        stop = min(self._at + size, len(postings))
        while stop < len(postings) and postings[stop] >> 2 == postings[stop - 1] >> 2:
            stop += 1
        part = postings[self._at : stop]
        self._at = stop
        return self._admitted(sorted_unique(self._documents(part)))

    def _documents(self, postings: Array) -> Array:
        if not self._fields.all():
            postings = postings[self._fields[postings & 3]]
        return postings >> 2

    def remaining(self) -> int:
        """About how many candidates are left (postings, for words in document order)."""
        if self._pending is None:
            return len(self._postings) - self._at
        return len(self._pending)

    def keep(self, mask: Array) -> None:
        """From now on, only candidates set in ``mask``."""
        self._masks.append(mask)
        if self._pending is None:  # thin everything left in one pass, not chunk by chunk
            self._pending = self._admitted(self._documents(self._postings[self._at :]))
        else:
            self._pending = self._pending[mask[self._pending]]

    def _admitted(self, documents: Array) -> Array:
        if self._segment.live < len(self._segment):
            documents = documents[~self._segment.deleted[documents]]
        for mask in self._masks:
            documents = documents[mask[documents]]
        return documents


class SegmentSearch:
    """One query against one segment."""

    def __init__(self, segment: Segment, query: SearchQuery) -> None:
        self.segment = segment
        self._plans = [_WordPlan(segment.vocabulary, text, query) for text in query.words]
        self._usable = np.array([field in query.fields for field in ALL_FIELDS])
        self._name_only = np.array([field is SearchField.NAME for field in ALL_FIELDS])

    def bucket(self, tier: int, name_class: bool, need: int) -> Array:
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
        others = [] if tier == rules.FUZZY else [at for at in range(len(costs)) if at != driver]
        found: list[Array] = []
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
        first, last, _ = plan.ranges(max(tier, rules.INFIX))
        if len(first) == 1:
            return int(self.segment.posting_starts[last[0]] - self.segment.posting_starts[first[0]])
        starts = self.segment.posting_starts
        return int((starts[last] - starts[first]).sum())

    def _documents_with(self, plan: _WordPlan, tier: int, fields: Array) -> Array:
        """A mask of the documents where a word matches at ``tier`` or above in ``fields``."""
        postings = self.segment.postings_of(*plan.ranges(tier)[:2])
        if not fields.all():
            postings = postings[fields[postings & 3]]
        mask = np.zeros(len(self.segment), dtype=bool)
        mask[postings >> 2] = True
        return mask

    def _evaluate(self, documents: Array, tier: int) -> tuple[Array, Array]:
        """Check candidates against every query word through the forward index.

        Returns:
            Each document's tier (-1 when below ``tier``), and whether NAME attains every
            query word's best strength.
        """
        starts = self.segment.forward_starts[documents]
        counts = self.segment.forward_starts[documents + 1] - starts
        entries = self.segment.forward[expand(starts, counts)]
        fields = entries & 3
        usable = self._usable[fields]
        is_name = (fields == 0).astype(np.int8)
        word_ids = entries >> 2
        nonempty = counts > 0
        group_starts = (np.cumsum(counts) - counts)[nonempty]
        tiers = np.full(len(documents), rules.EXACT, dtype=np.int8)
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
        return rules.reported_field(best_fields)
