"""The reference semantics of search (rules S2-S5), as a brute-force scan.

This module *defines* what every search backend returns: the in-memory index and the SQL
backends are tested against ``oracle_search`` on random data. It favours being obviously
correct over being fast; it reads every document on every query.

The rules, per query word ``q`` and indexed word ``w`` of a field (see ``word_strength``):

* ``EXACT`` when ``w == q``; ``PREFIX`` when ``w`` starts with ``q``;
* ``INFIX`` when ``q`` has 3+ characters and occurs inside ``w``;
* ``FUZZY`` (only for fuzzy queries, ``q`` of 4+ characters) when the OSA distance between ``q``
  and ``w`` or ``q`` and the first ``len(q)`` characters of ``w`` is at most 1 (2 from 8
  characters on).

A document matches when every query word has a strength in some searched field; it ranks by its
weakest word (the *tier*), then NAME hits before others, then shorter folded name, then folded
name, then id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rapidfuzz.distance import OSA

from customerkit.model import SearchField
from customerkit.search.query import ALL_FIELDS, RankedMatch, SearchDocument, SearchQuery
from customerkit.text import fold, words

# Match strengths, defined by ``word_strength``: a hit ranks by its weakest query word (rule S5).
EXACT = 3
PREFIX = 2
INFIX = 1
FUZZY = 0

#: Shortest query word that may match inside a word.
MIN_INFIX_LENGTH = 3
#: Shortest query word that may match with a typo.
MIN_FUZZY_LENGTH = 4

#: A rank key: smaller sorts first (see ``rank_key``).
RankKey = tuple[int, int, int, str, str]


def max_typos(query_word: str) -> int:
    """How many edits a fuzzy match of ``query_word`` may need: 1, or 2 from 8 characters on."""
    return 1 if len(query_word) < 8 else 2


def is_fuzzy_match(query_word: str, word: str) -> bool:
    """Whether ``word``, or its start as long as ``query_word``, is a typo away from it."""
    if len(query_word) < MIN_FUZZY_LENGTH:
        return False
    k = max_typos(query_word)
    return (
        OSA.distance(query_word, word[: len(query_word)], score_cutoff=k) <= k
        or OSA.distance(query_word, word, score_cutoff=k) <= k
    )


def word_strength(query_word: str, word: str, *, fuzzy: bool = False) -> int | None:
    """How strongly one indexed word matches one query word, or ``None``.

    >>> word_strength("john", "johnson") == PREFIX
    True
    """
    if word == query_word:
        return EXACT
    if word.startswith(query_word):
        return PREFIX
    if len(query_word) >= MIN_INFIX_LENGTH and query_word in word:
        return INFIX
    if fuzzy and is_fuzzy_match(query_word, word):
        return FUZZY
    return None


def reachable_strengths(query_word: str, query: SearchQuery) -> tuple[int, ...]:
    """The strengths ``query_word`` can match with in ``query``, strongest first.

    Only EXACT for an exact-only query; else PREFIX too, INFIX from MIN_INFIX_LENGTH
    characters on, and FUZZY in a fuzzy query from MIN_FUZZY_LENGTH on. An index need look
    up no other.

    >>> reachable_strengths("jo", SearchQuery(words=("jo",), fields=ALL_FIELDS)) == (EXACT, PREFIX)
    True
    """
    if query.exact_only:
        return (EXACT,)
    found = [EXACT, PREFIX]
    if len(query_word) >= MIN_INFIX_LENGTH:
        found.append(INFIX)
    if query.fuzzy and len(query_word) >= MIN_FUZZY_LENGTH:
        found.append(FUZZY)
    return tuple(found)


def query_strength(query_word: str, word: str, query: SearchQuery) -> int | None:
    """``word_strength`` within ``query``: under an exact-only query, EXACT or ``None``."""
    strength = word_strength(query_word, word, fuzzy=query.fuzzy)
    if strength is None or (query.exact_only and strength != EXACT):
        return None
    return strength


def field_strength(query_word: str, field_words: Iterable[str], query: SearchQuery) -> int | None:
    """The best strength of a query word over the indexed words of one field, or ``None``."""
    best: int | None = None
    for word in field_words:
        strength = query_strength(query_word, word, query)
        if strength is None:
            continue
        if best is None or strength > best:
            best = strength
    return best


def reported_field(best_fields: Iterable[set[SearchField]]) -> SearchField:
    """The field a hit is reported under, from the fields attaining each word's best strength.

    NAME when NAME is among the best fields of every query word, else the first of CITY, STATE,
    NUMBER that is, else ``SearchField.ALL``.
    """
    common = set.intersection(*best_fields)
    return next((field for field in ALL_FIELDS if field in common), SearchField.ALL)


def match_words(
    field_words: Mapping[SearchField, Sequence[str]], query: SearchQuery
) -> tuple[int, SearchField] | None:
    """A document's tier and reported field from its indexed words per field, or ``None``.

    Args:
        field_words: The indexed words (``customerkit.text.words``) of each searched field.
        query: The parsed query.
    """
    if not query.words:
        return None
    tier = EXACT
    best_fields: list[set[SearchField]] = []
    for query_word in query.words:
        strengths = {
            field: field_strength(query_word, field_words[field], query) for field in query.fields
        }
        found = [strength for strength in strengths.values() if strength is not None]
        if not found:
            return None
        best = max(found)
        tier = min(tier, best)
        best_fields.append({field for field, strength in strengths.items() if strength == best})
    return tier, reported_field(best_fields)


def match_document(document: SearchDocument, query: SearchQuery) -> tuple[int, SearchField] | None:
    """A document's tier and reported field when it matches the query, else ``None``."""
    return match_words({field: words(document.text(field)) for field in query.fields}, query)


def rank_key(tier: int, field: SearchField, document: SearchDocument) -> RankKey:
    """The sort key of a hit (rule S5): stronger tier, NAME hits, shorter name, name, then id."""
    name = fold(document.name)
    return (-tier, 0 if field is SearchField.NAME else 1, len(name), name, document.id)


def score(tier: int, field: SearchField) -> float:
    """A hit's score in (0, 1]: its tier's share, a little lower when not on NAME."""
    return round((tier + 1) / (EXACT + 1) * (1.0 if field is SearchField.NAME else 0.9), 6)


def oracle_search(
    documents: Iterable[SearchDocument], location_id: str, query: SearchQuery, *, limit: int
) -> list[RankedMatch]:
    """Search by reading every document: the definition of rules S1-S5 results and order.

    Args:
        documents: Candidate documents; those of other locations are ignored.
        location_id: The location searched.
        query: A parsed query (see ``customerkit.search.query.parse_query``).
        limit: How many hits to return at most.

    Returns:
        The best ``limit`` hits, best first.
    """
    ranked: list[tuple[RankKey, RankedMatch]] = []
    for document in documents:
        if document.location_id != location_id:
            continue
        found = match_document(document, query)
        if found is None:
            continue
        tier, field = found
        match = RankedMatch(customer_id=document.id, score=score(tier, field), field=field)
        ranked.append((rank_key(tier, field, document), match))
    ranked.sort(key=lambda item: item[0])
    return [match for _, match in ranked[: max(limit, 0)]]
