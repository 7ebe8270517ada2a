"""Customer search in the database (S1-S5): indexes rank candidates, the oracle's rules decide.

The database never hands over all rows, and Python never looks at every match:

1. *Indexed words*: every query word but short ones matching a large share of the index (a
   capped count). The database finds their rows through the word table's
   indexes: B-tree ranges for exact words and prefixes, trigram look-ups for infixes; fuzzy
   words are found through :mod:`.anchors`, checked one distinct word at a time with the
   oracle's rule, and passed in as a list.
2. Per customer matching all indexed words, it computes the weakest word's best strength
   ``s``, whether NAME attains every word's best, and the folded name's length, and returns
   the first customers sorted on ``B = (-s, NAME attains all ? 0 : 1, name length)``, with
   their stored fields, a page at a time (one statement each; a next page is 4x larger).
   With one indexed word, the matching rows are sorted on their own bound instead, with no
   grouping; a customer's first row carries its B. Words left out (1-2 characters) reach
   the exact tier only where some indexed word equals them: otherwise B is capped at prefix.
3. In that order, the candidates are judged with the oracle's rules (``word_strength``,
   ``reported_field``, ``rank_key``, ``score``) on their stored fields; the words left out
   are checked only here.
4. ``B`` never exceeds a candidate's true rank key (words left out can only lower the tier
   and spoil the NAME flag), so once the ``limit``-th best key found ranks before the next
   candidate's ``B``, nobody further down can make the page: stop. When every query word is
   indexed, ``B`` is the key itself: only the hits and their ties are judged.

Results equal ``oracle_search`` by construction; a property test checks it on random data.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    column,
    func,
    literal,
    or_,
    select,
    table,
    union,
    union_all,
)

from customerkit.backends.sqlalchemy import schema
from customerkit.backends.sqlalchemy.anchors import Anchor, fuzzy_anchors, successor
from customerkit.backends.sqlalchemy.convert import SEARCH_FIELDS, words_of
from customerkit.model import SearchField
from customerkit.search.oracle import (
    MIN_FUZZY_LENGTH,
    MIN_INFIX_LENGTH,
    RankKey,
    max_typos,
    rank_key,
    reported_field,
    score,
    word_strength,
)
from customerkit.search.query import (
    EXACT,
    FUZZY,
    INFIX,
    PREFIX,
    RankedMatch,
    SearchDocument,
    SearchQuery,
)

_W = schema.customer_words.c
_C = schema.customers.c
_VOCAB = schema.search_vocab.c
_FTS = table("search_vocab_fts", column("rowid"), column("word"))
_FIELD_COLUMNS = {field: _C[attribute] for field, (_, attribute) in SEARCH_FIELDS.items()}
#: Index entries a short query word may match and still be grouped by the database.
COUNT_CAP = 5000
#: Candidates of the first page, as a multiple of the limit; each next page is 4x larger.
#: Hits tied on (tier, field, name length) with the last one on the page need their names
#: compared, so a page holds more than the limit.
FIRST_PAGE = 4


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class _Words:
    """Conditions on the word table (or the vocabulary) for one search."""

    def __init__(self, connection: Connection, location_id: str, query: SearchQuery) -> None:
        self.connection = connection
        self.query = query
        self.sqlite = connection.dialect.name == "sqlite"
        self.codes = sorted(SEARCH_FIELDS[field][0] for field in query.fields)
        self.mine = (_W.location_id == location_id, _W.field.in_(self.codes))

    def _vocabulary_containing(self, text: str, skip: tuple[str, str] | None = None) -> Any:
        # SQLite: an FTS5 trigram phrase query over the distinct words.
        ids = select(_FTS.c.rowid).where(_FTS.c.word.op("MATCH")(_fts_phrase(text)))
        found = select(_VOCAB.word.label("word")).where(_VOCAB.id.in_(ids))
        if skip is not None:
            found = found.where(or_(_VOCAB.word < skip[0], _VOCAB.word >= skip[1]))
        return found

    def contains(self, text: str, skip: tuple[str, str] | None = None) -> ColumnElement[bool]:
        """Word-table rows whose word contains ``text`` (3+ characters).

        SQLite leaves out the words in ``skip`` (a range) before reading any row: the word
        itself contains ``text``, and its rows (46,000 for "group" among 10^6 customers)
        would be read only to be dropped.
        """
        if self.sqlite:  # then B-tree probes for each word found
            return _W.word.in_(self._vocabulary_containing(text, skip))
        # pg_trgm's GIN index answers LIKE '%...%' with the pattern's trigrams.
        return _W.word.like(f"%{_escape_like(text)}%", escape="\\")

    def branches(self, word: str) -> list[tuple[int, ColumnElement[bool]]]:
        """``(strength, condition)`` of disjoint row sets matching ``word`` without typos.

        Kept apart rather than OR-ed: SQLite uses the word index for each on its own, but for
        none of them in an OR. Disjoint, so no row is read, grouped and sorted twice.
        """
        if self.query.exact_only:
            return [(EXACT, _W.word == word)]
        following = successor(word)
        found = [(EXACT, _W.word == word), (PREFIX, and_(_W.word > word, _W.word < following))]
        if len(word) >= MIN_INFIX_LENGTH:
            outside = or_(_W.word < word, _W.word >= following)
            found.append((INFIX, and_(self.contains(word, (word, following)), outside)))
        return found

    def count(self, word: str) -> tuple[int, int]:
        """Index entries matching ``word`` without typos, and those matching it exactly.

        Each kind is counted up to COUNT_CAP, all in one round trip.
        """
        counts: list[Any] = []
        for _, condition in self.branches(word):
            capped = select(literal(1)).where(*self.mine, condition).limit(COUNT_CAP).subquery()
            counts.append(select(func.count()).select_from(capped).scalar_subquery())
        total = counts[0]
        for count in counts[1:]:
            total = total + count
        found = self.connection.execute(select(total, counts[0])).one()
        return int(found[0] or 0), int(found[1] or 0)

    def typo_words(self, word: str) -> list[str]:
        """The indexed words that match ``word`` with a typo only (strength FUZZY)."""
        if not self.query.fuzzy or len(word) < MIN_FUZZY_LENGTH:
            return []
        looked_up = [self._distinct_words(a) for a in fuzzy_anchors(word, max_typos(word))]
        found = set(self.connection.scalars(union(*looked_up)))  # one round trip
        return sorted(w for w in found if word_strength(word, w, fuzzy=True) == FUZZY)

    def _distinct_words(self, anchor: Anchor) -> Any:
        if self.sqlite:  # the vocabulary holds each word once: cheaper than the word table
            if anchor.kind == "contains":
                return self._vocabulary_containing(anchor.text)
            return select(_VOCAB.word.label("word")).where(
                _VOCAB.word >= anchor.text, _VOCAB.word < successor(anchor.text)
            )
        if anchor.kind == "contains":
            condition = self.contains(anchor.text)
        else:
            condition = and_(_W.word >= anchor.text, _W.word < successor(anchor.text))
        return select(_W.word.label("word")).where(*self.mine, condition)


def _indexed_words(words: _Words, query: SearchQuery) -> tuple[list[str], int]:
    """The query words the database ranks by, and a cap on every candidate's tier.

    All words, but short words that match too much. Grouping an index entry in the database
    costs ~1.6 us; judging a candidate in Python ~50 us: the tighter the bound, the fewer
    candidates to judge. A word of 1-2 characters (prefix only) may match a large share of the
    index ("john t"), though: when it matches COUNT_CAP entries or more it is only checked on
    the candidates.

    Such a word is an exact match or a prefix, nothing else; when no indexed word equals it,
    no customer can rank above the prefix tier. Capping the bound there keeps it a bound and
    stops the search after the first page ("group g" at 10^6: one page instead of 80,000
    candidates judged, because the uncapped bound promised the exact tier nobody reaches).
    """
    indexed = [w for w in query.words if len(w) >= MIN_INFIX_LENGTH or query.exact_only]
    cap = EXACT
    for word in query.words:
        if word in indexed:
            continue
        total, exact = words.count(word)
        if total < COUNT_CAP:
            indexed.append(word)
        elif exact == 0:
            cap = PREFIX
    return indexed or sorted(query.words, key=len, reverse=True)[:1], cap


def _candidates(words: _Words, indexed: list[str], cap: int = EXACT) -> Any:
    """Candidates matching every indexed word, with their bound B, in B order.

    Per customer and indexed word: the best strength and whether NAME attains it; B takes the
    weakest word's strength, at most ``cap``, and is a NAME bound only when NAME attains every
    word's best.
    """
    branches = []
    for position, word in enumerate(indexed):
        found = words.branches(word)
        typos = words.typo_words(word)
        if typos:
            found.append((FUZZY, _W.word.in_(typos)))
        branches += [(position, strength, condition) for strength, condition in found]
    rows = union_all(
        *(
            select(
                _W.customer_id,
                _W.field,
                _W.name_length,
                literal(position).label("position"),
                literal(strength).label("strength"),
            ).where(*words.mine, condition)
            for position, strength, condition in branches
        )
    ).subquery()
    best = func.max(rows.c.strength)
    name_best = func.max(case((rows.c.field == schema.NAME, rows.c.strength), else_=-1))
    not_name = case((name_best == best, 0), else_=1)
    length = func.min(rows.c.name_length)
    if len(indexed) == 1:
        # One word: the rows themselves, in order of their own bound, with no grouping (a
        # top-N sort instead of grouping every match: 7 ms instead of 35 for 46,000 rows).
        # A customer's first row has the greatest strength, on NAME if NAME attains it: its
        # B, or one ranking before it, so first rows come in B order; the search skips the
        # customer's later rows.
        row_tier = _capped(rows.c.strength, cap)
        on_name = case((rows.c.field == schema.NAME, 0), else_=1)
        return select(rows.c.customer_id, row_tier, on_name, rows.c.name_length).order_by(
            row_tier.desc(), on_name, rows.c.name_length, rows.c.customer_id
        )
    # Per customer and word, then per customer. (Measured on SQLite: twice as fast as one
    # grouping with a conditional aggregate per word, which evaluates every CASE per row.)
    per_word = (
        select(
            rows.c.customer_id,
            best.label("best"),
            not_name.label("not_name"),
            length.label("length"),
        )
        .group_by(rows.c.customer_id, rows.c.position)
        .subquery()
    )
    tier = _capped(func.min(per_word.c.best), cap)
    any_not_name = func.max(per_word.c.not_name)
    shortest = func.min(per_word.c.length)
    return (
        select(per_word.c.customer_id, tier, any_not_name, shortest)
        .group_by(per_word.c.customer_id)
        .having(func.count() == len(indexed))
        .order_by(tier.desc(), any_not_name, shortest, per_word.c.customer_id)
    )


def _capped(strength: Any, cap: int) -> Any:
    return strength if cap >= EXACT else case((strength > cap, literal(cap)), else_=strength)


def _page(candidates: Any, query: SearchQuery, size: int) -> Any:
    """The first ``size`` candidates in B order, with the texts the judge needs.

    One statement, so one round trip: bound, then company name and the searched fields.
    """
    top = candidates.limit(size).subquery()
    customer_id, tier, not_name, length = top.c
    texts = [_C.company_name, *(_FIELD_COLUMNS[field] for field in query.fields)]
    return (
        select(customer_id, tier, not_name, length, *texts)
        .join(schema.customers, _C.id == customer_id)
        .order_by(tier.desc(), not_name, length, customer_id)
    )


class _Judge:
    """The oracle's ``match_document`` for one query, with its per-word results cached.

    Same rules (the oracle's ``word_strength`` and ``reported_field``) on the cached words of
    the candidates' fields. The words the database did not check go first: the likeliest to
    fail.
    """

    def __init__(self, query: SearchQuery, *, first: Sequence[str]) -> None:
        self.query = query
        self.order = [*first, *(w for w in query.words if w not in first)]
        self._strengths: dict[tuple[str, str], int] = {}

    def _strength(self, query_word: str, word: str) -> int:
        """The oracle's strength, or -1 for no match."""
        key = (query_word, word)
        found = self._strengths.get(key)
        if found is None:
            strength = word_strength(query_word, word, fuzzy=self.query.fuzzy)
            if strength is None or (self.query.exact_only and strength != EXACT):
                strength = -1
            found = self._strengths[key] = strength
        return found

    def match(self, texts: Sequence[str]) -> tuple[int, SearchField] | None:
        """Tier and reported field of a candidate with these texts (``query.fields`` order)."""
        field_words = [words_of(text) for text in texts]
        tier = EXACT
        best_fields: list[set[SearchField]] = []
        for query_word in self.order:
            strengths = [
                max((self._strength(query_word, word) for word in found), default=-1)
                for found in field_words
            ]
            best = max(strengths)
            if best < 0:
                return None
            tier = min(tier, best)
            fields = zip(self.query.fields, strengths, strict=True)
            best_fields.append({field for field, strength in fields if strength == best})
        return tier, reported_field(best_fields)


def search(
    connection: Connection, location_id: str, query: SearchQuery, *, limit: int
) -> list[RankedMatch]:
    """The live customers of a location matching ``query``, ranked as ``oracle_search`` does."""
    if not query.words:
        return []
    words = _Words(connection, location_id, query)
    indexed, cap = _indexed_words(words, query)
    judge = _Judge(query, first=[word for word in query.words if word not in indexed])
    candidates = _candidates(words, indexed, cap)
    hits: list[tuple[RankKey, RankedMatch]] = []  # sorted by key
    judged: set[str] = set()
    size = FIRST_PAGE * limit
    while True:
        rows = connection.execute(_page(candidates, query, size)).all()
        for customer_id, strength, not_name, length, name, *fields in rows:
            if len(hits) >= limit and hits[limit - 1][0][:3] < (-strength, not_name, length):
                return [match for _, match in hits[:limit]]  # nobody further can make the page
            if customer_id in judged:
                continue  # read on an earlier page
            judged.add(customer_id)
            matched = judge.match(fields)
            if matched is None:
                continue
            tier, field = matched
            document = SearchDocument(id=customer_id, location_id=location_id, name=name)
            match = RankedMatch(customer_id=customer_id, score=score(tier, field), field=field)
            bisect.insort(hits, (rank_key(tier, field, document), match), key=lambda hit: hit[0])
        if len(rows) < size:
            return [match for _, match in hits[:limit]]  # every candidate was judged
        size *= 4
