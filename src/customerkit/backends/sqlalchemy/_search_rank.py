"""Judging a database search's candidates by the oracle's rules, and keeping the best hits.

The database finds candidates; whether one matches, its tier, reported field and rank key
are decided here on its stored texts, by the functions ``oracle_search`` uses.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from customerkit.backends.sqlalchemy._rows import words_of
from customerkit.model import SearchField
from customerkit.search.query import RankedMatch, SearchDocument, SearchQuery
from customerkit.search.rules import (
    EXACT,
    RankKey,
    query_strength,
    rank_key,
    reported_field,
    score,
)


class Judge:
    """The oracle's ``match_document`` for one query, with its per-word results cached.

    Same rules (the oracle's ``query_strength`` and ``reported_field``) on the words of the
    candidates' fields, each text's strengths computed once per search.
    """

    def __init__(self, query: SearchQuery) -> None:
        self.query = query
        self._strengths: dict[tuple[str, str], int] = {}
        #: Each text judged: every query word's best strength on its words (-1: none).
        self._texts: dict[str, tuple[int, ...]] = {}

    def _strength(self, query_word: str, word: str) -> int:
        """The oracle's strength, or -1 for no match."""
        key = (query_word, word)
        found = self._strengths.get(key)
        if found is None:
            strength = query_strength(query_word, word, self.query)
            found = self._strengths[key] = -1 if strength is None else strength
        return found

    def _best(self, text: str) -> tuple[int, ...]:
        """Each query word's best strength on the words of ``text``: cities, states repeat."""
        found = self._texts.get(text)
        if found is None:
            words = words_of(text)
            found = self._texts[text] = tuple(
                max((self._strength(query_word, word) for word in words), default=-1)
                for query_word in self.query.words
            )
        return found

    def match(self, texts: Sequence[str]) -> tuple[int, SearchField] | None:
        """Tier and reported field of a candidate with these texts (``query.fields`` order)."""
        per_field = [self._best(text) for text in texts]
        tier = EXACT
        best_fields: list[set[SearchField]] = []
        for at in range(len(self.query.words)):
            strengths = [found[at] for found in per_field]
            best = max(strengths)
            if best < 0:
                return None
            tier = min(tier, best)
            fields = zip(self.query.fields, strengths, strict=True)
            best_fields.append({field for field, strength in fields if strength == best})
        return tier, reported_field(best_fields)


class BestHits:
    """The best ``limit`` hits so far, in rank key order, and whether more could still make them.

    A hit ranking after the ``limit``-th is dropped at once: hits only ever get better, so it
    could never be returned (a one-word search ranks 100-200 candidates tied on name length).
    """

    def __init__(self, location_id: str, limit: int) -> None:
        self.location_id = location_id
        self.limit = limit
        #: (rank key, tier, field) of the best hits, at most ``limit``.
        self.hits: list[tuple[RankKey, int, SearchField]] = []
        self.seen: set[str] = set()  # every customer judged, hit or not

    def closed_before(self, bound: tuple[int, ...] | tuple[int, int, int, str]) -> bool:
        """Whether the page is full with hits ranking before anyone bounded by ``bound``."""
        if len(self.hits) < self.limit:
            return False
        return self.hits[-1][0][: len(bound)] < bound

    def add(self, customer_id: str, name: str, tier: int, field: SearchField) -> None:
        """Place a hit by its rank key (keys are unique: they end with the customer's id)."""
        document = SearchDocument(id=customer_id, location_id=self.location_id, name=name)
        key = rank_key(tier, field, document)
        if len(self.hits) >= self.limit:
            if not self.hits or key >= self.hits[-1][0]:
                return
            self.hits.pop()
        bisect.insort(self.hits, (key, tier, field))

    def result(self) -> list[RankedMatch]:
        """The best ``limit`` hits, best first."""
        return [
            RankedMatch(customer_id=key[-1], score=score(tier, field), field=field)
            for key, tier, field in self.hits
        ]
