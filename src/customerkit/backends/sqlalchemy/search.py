"""Customer search in the database (S1-S5): indexes find candidates, the oracle ranks them.

The database never hands over all rows. For the most selective query word (the longest) the
word table yields the rows of every word that can match it (:mod:`.anchors`: B-tree ranges
for exact words and prefixes, trigram look-ups for infixes and typos). The other query words
are then checked on those candidates only: on the candidates' own words while they are few,
else through their own anchors. Strengths, tiers, the reported field, scores and the order
come from :mod:`customerkit.search.oracle` itself, applied to the candidates, so results equal
``oracle_search`` by construction; names are fetched only for the hits that can make the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from customerkit.backends.sqlalchemy import convert, schema
from customerkit.backends.sqlalchemy.anchors import Anchor, anchors, successor
from customerkit.backends.sqlalchemy.convert import SEARCH_FIELDS
from customerkit.model import SearchField
from customerkit.search.oracle import field_strength, rank_key, reported_field, score
from customerkit.search.query import RankedMatch, SearchDocument, SearchQuery
from sqlalchemy import ColumnElement, Connection, and_, column, select, table

_W = schema.customer_words.c
_FIELD_OF_CODE = {code: field for field, (code, _) in SEARCH_FIELDS.items()}
_FTS = table("search_vocab_fts", column("rowid"), column("word"))
_VOCAB = schema.search_vocab.c
#: While there are at most this many candidates, later query words are checked on the
#: candidates' own words rather than looked up in the index.
RESTRICT_LIMIT = 2000
#: Ids per ``IN (...)`` list.
CHUNK = 500

#: Per candidate and query word: the best strength in each field (by field code).
Strengths = dict[int, int]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _condition(anchor: Anchor, dialect: str) -> ColumnElement[bool]:
    if anchor.kind == "equals":
        return _W.word == anchor.text
    if anchor.kind == "prefix":
        return and_(_W.word >= anchor.text, _W.word < successor(anchor.text))
    if dialect == "sqlite":
        # FTS5 trigram phrase query over the vocabulary, then B-tree probes per word found.
        phrase = '"' + anchor.text.replace('"', '""') + '"'
        ids = select(_FTS.c.rowid).where(_FTS.c.word.op("MATCH")(phrase))
        return _W.word.in_(select(_VOCAB.word).where(_VOCAB.id.in_(ids)))
    # pg_trgm's GIN index answers LIKE '%...%' with the pattern's trigrams.
    return _W.word.like(f"%{_escape_like(anchor.text)}%", escape="\\")


class _Evaluation:
    """Strengths of the query words found so far, per candidate."""

    def __init__(self, query: SearchQuery) -> None:
        self.query = query
        self.candidates: dict[str, list[Strengths]] = {}
        self.name_length: dict[str, int] = {}
        self._cache: dict[tuple[str, str], int | None] = {}

    def strength(self, query_word: str, word: str) -> int | None:
        key = (query_word, word)
        if key not in self._cache:
            # The oracle's rule, on one word: a field's strength is the best of its words'.
            self._cache[key] = field_strength(query_word, (word,), self.query)
        return self._cache[key]

    def first(self, query_word: str, rows: Iterable[Any]) -> None:
        """Start from the rows found for the first query word."""
        for customer_id, code, word, name_length in rows:
            strength = self.strength(query_word, word)
            if strength is None:
                continue
            found = self.candidates.setdefault(customer_id, [{}])[0]
            found[code] = max(found.get(code, strength), strength)
            self.name_length[customer_id] = name_length

    def narrow(self, query_word: str, rows: Iterable[Any]) -> None:
        """Keep the candidates that some row matches for ``query_word``."""
        found: dict[str, Strengths] = {}
        for customer_id, code, word, _ in rows:
            if customer_id not in self.candidates:
                continue
            strength = self.strength(query_word, word)
            if strength is not None:
                best = found.setdefault(customer_id, {})
                best[code] = max(best.get(code, strength), strength)
        self.candidates = {
            customer_id: [*strengths, found[customer_id]]
            for customer_id, strengths in self.candidates.items()
            if customer_id in found
        }

    def ranked(self) -> list[tuple[str, int, SearchField]]:
        """``(customer id, tier, reported field)`` of every candidate."""
        out = []
        for customer_id, per_word in self.candidates.items():
            tier = min(max(strengths.values()) for strengths in per_word)
            best_fields = []
            for strengths in per_word:
                best = max(strengths.values())
                best_fields.append(
                    {_FIELD_OF_CODE[code] for code, value in strengths.items() if value == best}
                )
            out.append((customer_id, tier, reported_field(best_fields)))
        return out


class _Reader:
    """The word-table queries of one search."""

    def __init__(self, connection: Connection, location_id: str, query: SearchQuery) -> None:
        self.connection = connection
        self.location_id = location_id
        self.query = query
        self.codes = sorted(SEARCH_FIELDS[field][0] for field in query.fields)
        self.dialect = connection.dialect.name

    def _rows(self, *where: ColumnElement[bool]) -> Sequence[Any]:
        statement = select(_W.customer_id, _W.field, _W.word, _W.name_length).where(
            _W.field.in_(self.codes), *where
        )
        return self.connection.execute(statement).all()

    def matching(self, query_word: str) -> list[Any]:
        """Rows of the location whose word may match ``query_word``."""
        rows: list[Any] = []
        for anchor in anchors(query_word, self.query):
            rows += self._rows(_W.location_id == self.location_id, _condition(anchor, self.dialect))
        return rows

    def of_customers(self, customer_ids: Sequence[str]) -> list[Any]:
        """Rows of these customers' words in the searched fields, from their stored values.

        Read by primary key and tokenised here: the same words the word table holds for them.
        """
        c = schema.customers.c
        attributes = [SEARCH_FIELDS[field] for field in self.query.fields]
        rows: list[Any] = []
        for start in range(0, len(customer_ids), CHUNK):
            part = customer_ids[start : start + CHUNK]
            statement = select(c.id, *(c[attribute] for _, attribute in attributes)).where(
                c.id.in_(part)
            )
            for found in self.connection.execute(statement):
                rows += [
                    (found[0], code, word, None)
                    for (code, _), text in zip(attributes, found[1:], strict=True)
                    for word in convert.words_of(text)
                ]
        return rows

    def names(self, customer_ids: Sequence[str]) -> dict[str, str]:
        """Company names of these customers."""
        names: dict[str, str] = {}
        c = schema.customers.c
        for start in range(0, len(customer_ids), CHUNK):
            part = customer_ids[start : start + CHUNK]
            statement = select(c.id, c.company_name).where(c.id.in_(part))
            names.update((row[0], row[1]) for row in self.connection.execute(statement))
        return names


def search(
    connection: Connection, location_id: str, query: SearchQuery, *, limit: int
) -> list[RankedMatch]:
    """The live customers of a location matching ``query``, ranked as ``oracle_search`` does."""
    if not query.words:
        return []
    reader = _Reader(connection, location_id, query)
    evaluation = _Evaluation(query)
    first, *others = sorted(query.words, key=len, reverse=True)
    evaluation.first(first, reader.matching(first))
    own_rows: list[Any] | None = None
    for query_word in others:
        if not evaluation.candidates:
            return []
        if own_rows is None and len(evaluation.candidates) <= RESTRICT_LIMIT:
            own_rows = reader.of_customers(sorted(evaluation.candidates))
        rows = own_rows if own_rows is not None else reader.matching(query_word)
        evaluation.narrow(query_word, rows)
    # Words were evaluated longest first; the order of words does not change tier or field.
    return _page(reader, evaluation, limit)


def _page(reader: _Reader, evaluation: _Evaluation, limit: int) -> list[RankedMatch]:
    hits = evaluation.ranked()
    if not hits:
        return []

    def coarse(hit: tuple[str, int, SearchField]) -> tuple[int, int, int]:
        customer_id, tier, field = hit
        return (-tier, 0 if field is SearchField.NAME else 1, evaluation.name_length[customer_id])

    hits.sort(key=coarse)
    # Everything ranking at or above the limit-th hit by (tier, field, name length) may make the
    # page; only those need their names for the last two keys (name, then id).
    cut = coarse(hits[min(limit, len(hits)) - 1])
    contenders = [hit for hit in hits if coarse(hit) <= cut]
    names = reader.names(sorted(hit[0] for hit in contenders))
    keyed = []
    for customer_id, tier, field in contenders:
        document = SearchDocument(
            id=customer_id, location_id=reader.location_id, name=names[customer_id]
        )
        keyed.append((rank_key(tier, field, document), customer_id, tier, field))
    keyed.sort(key=lambda item: item[0])
    return [
        RankedMatch(customer_id=customer_id, score=score(tier, field), field=field)
        for _, customer_id, tier, field in keyed[:limit]
    ]
