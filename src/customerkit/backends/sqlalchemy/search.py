"""Customer search in the database (S1-S5): the word index in rank order, the oracle's rules.

The word table's key is ``(location_id, field, word, name_length, customer_id)``: the rows of
one word on one field come shortest name first, S5's third key. A search reads candidates in
rank order and stops as soon as its page is full, instead of grouping and sorting every match
(46,000 rows for "group" among 10^6 customers):

1. *Plans*: for each query word, the distinct indexed words it matches, by strength: itself
   (exact), the words it starts (prefix), the words it is inside of (infix, 3+ characters),
   those a typo away (fuzzy), listed from the vocabulary of distinct words: a B-tree range for
   prefixes, its trigram index for infixes (FTS5 on SQLite, pg_trgm on PostgreSQL). A list
   too long to read one word at a time stays one condition, whose rows the database sorts.
   One statement looks up every query word's lists, and the counts of its rows (below).
2. *Buckets*, in rank order: by tier (exact, prefix, infix, fuzzy), then hits whose every
   word is best on NAME before the others. A hit ranks by its weakest word, so bucket
   ``(t, NAME)`` holds customers with every word matching at ``t`` or better on NAME, and
   ``(t, other)`` those with every word matching at ``t`` or better in any field; customers
   of an earlier bucket are skipped. When a word has no exact match in the index, no hit
   ranks above the prefix tier: the tiers are capped there.
3. The *driver*, the rarest word on the bucket's fields at its tier (that can drive: not a
   1-2 character word matching a large share of the index; counted per field, capped), gives
   each bucket its candidates: one statement per page reads its
   rows in ``(name_length, customer_id)`` order, a merge of one index range per field and
   listed word (SQLite's MERGE (UNION ALL), PostgreSQL's Merge Append), continued by keyset,
   each page 4x larger. The same statement checks the other words, at the bucket's tier and
   fields: by an index probe on the candidate's full key when their listed words are few
   (and, on PostgreSQL, the page small: a seek costs more there), else by reading their rows
   within the page's name lengths once, a seek per vocabulary word. Only the customers that
   hold every word come back, with their stored texts, looked up one by one.
4. A candidate of bucket ``(t, NAME ? 0 : 1)`` with name length ``L`` ranks at best
   ``(-t, 0 or 1, L)``; words the database could not check (a 1-2 character word starting
   too many words) can only make it worse. The candidates are judged with the oracle's rules
   (``word_strength``, ``reported_field``, ``rank_key``, ``score``) on their stored texts;
   for a one-word query the bucket and row *are* the tier and field, and only the folded name
   is needed, to break ties. Once the ``limit``-th best key found ranks before the next
   candidate's bound (or a whole bucket's), nobody further down can make the page: stop.
   Hits tied with the last one on (tier, field, name length) are all read: names decide.

Results equal ``oracle_search`` by construction; property tests check it on random data,
with the page sizes and list limits forced down so that every path runs.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    and_,
    cast,
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
from customerkit.backends.sqlalchemy._rows import SEARCH_FIELDS, words_of
from customerkit.backends.sqlalchemy.anchors import Anchor, fuzzy_anchors, successor
from customerkit.model import SearchField
from customerkit.search.query import ALL_FIELDS, RankedMatch, SearchDocument, SearchQuery
from customerkit.search.rules import (
    EXACT,
    FUZZY,
    INFIX,
    MIN_FUZZY_LENGTH,
    MIN_INFIX_LENGTH,
    PREFIX,
    RankKey,
    max_typos,
    rank_key,
    reported_field,
    score,
    word_strength,
)

_W = schema.customer_words.c
_VOCAB = schema.search_vocab.c
_FTS = table("search_vocab_fts", column("rowid"), column("word"))
_FIELD_OF_CODE = {SEARCH_FIELDS[field][0]: field for field in ALL_FIELDS}
#: Index entries a short query word may match and still be indexed (see _indexed_words).
COUNT_CAP = 5000
#: Distinct indexed words read one index range each; more are read as one condition, whose
#: rows the database sorts.
MAX_LISTED = 32
#: Index seeks per candidate (listed words times fields) to check another word by probing.
MAX_PROBES = 8
#: Index seeks per page, at most, to check another word by probing; past them a page reads the
#: word's rows in its name lengths once instead. A seek costs some 10 us on PostgreSQL (a whole
#: descent, buffer pins), 1-2 us on SQLite, against 0.2 us per row read into a hash.
PAGE_PROBES = 40960
PG_PAGE_PROBES = 1024
#: Distinct words a short common word may start, at most, to be checked in the database.
MAX_CHECKED = 1024
#: Set once per connection of the store's engine (``configure_postgres_session``), not per
#: search: a statement per search cost a round trip, a fifth of a warm one-word search. None
#: of them changes a statement's result, only its plan. A search reads a few pages of rows:
#: starting parallel workers costs it more (a few ms each statement, on a busy machine) than
#: they could save; customerkit's other statements read by key, in pages too. Its statements
#: repeat with other values: psycopg prepares a statement run five times, and PostgreSQL may
#: then plan it once for any values (a generic plan), blind to how many rows a word or a LIMIT
#: means. And a large page's estimated cost passes the JIT threshold: compiling took 33 ms of
#: a 120 ms page; no statement of ours runs long enough to win that back.
PG_SESSION_SETTINGS = (
    "SET max_parallel_workers_per_gather = 0",
    "SET plan_cache_mode = force_custom_plan",
    "SET jit = off",
)
#: Candidates of a class's first page, as a multiple of the limit; each next page is 4x larger,
#: up to MAX_PAGE.
FIRST_PAGE = 4
MAX_PAGE = 5120
#: Kinds of row of the look-up statement (_Words.look_up).
_LISTED, _COUNTED, _STARTED = 0, 1, 2


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class _Sql(NamedTuple):
    """A piece of SQL with ``?`` placeholders, and its parameters, in order.

    The page statements are written as text: building them through SQLAlchemy Core cost
    2-4 ms each in Python, more than the database took to run them. Only our own constants
    (field codes, strengths, column names) are spliced into the text; every value is a
    parameter.
    """

    text: str
    parameters: tuple[Any, ...] = ()


def _is_in(words: Sequence[str]) -> _Sql:
    return _Sql(f"word IN ({', '.join('?' * len(words))})", tuple(words))


class _Strength(NamedTuple):
    """The indexed words matching a query word with one strength."""

    strength: int
    #: The distinct words, or None when they are many: then ``condition`` finds them.
    listed: list[str] | None
    #: A condition on ``word`` in the word table finding them.
    condition: _Sql
    #: Whether candidates may be checked against these rows in the database: not when a
    #: short word starts too many words to seek one by one.
    checkable: bool = True
    #: PostgreSQL, words not listed: ``condition`` as an array of the vocabulary's words, one
    #: index seek each (a range on ``word`` would read every name length of the range).
    seek: _Sql | None = None

    def seekable(self) -> _Sql:
        """The words as one condition that keeps the name length a seek (not a range scan)."""
        if self.listed is not None:
            return _is_in(self.listed)
        return self.condition if self.seek is None else self.seek

    def conditions(self) -> list[_Sql]:
        """One condition per index range to merge, or the one condition."""
        if self.listed is None:
            return [self.condition]
        return [_Sql("word = ?", (word,)) for word in self.listed]


class _Plan(NamedTuple):
    """How the index finds one query word: its strengths, strongest first."""

    word: str
    strengths: list[_Strength]

    def mergeable(self) -> bool:
        """Whether every strength listed its words (each then read as its own range)."""
        return all(strength.listed is not None for strength in self.strengths)


class _Words:
    """The word index of one location, as one search sees it."""

    def __init__(self, connection: Connection, location_id: str, query: SearchQuery) -> None:
        self.connection = connection
        self.location_id = location_id
        self.query = query
        self.sqlite = connection.dialect.name == "sqlite"
        self.codes = sorted(SEARCH_FIELDS[field][0] for field in query.fields)
        self.mine = (_W.location_id == location_id, _W.field.in_(self.codes))
        #: What look_up found, by query word: (kind, key) -> listed words or counts.
        self.found: dict[str, dict[tuple[int, int], list[Any]]] = {}

    # -- the distinct words a query word matches ------------------------------------------

    def plan(self, word: str) -> _Plan:
        """The strengths of ``word``: exact, prefix and infix words, then typos."""
        exact = _Strength(EXACT, [word], _Sql("word = ?", (word,)))
        strengths = [exact]
        if not self.query.exact_only:
            following = successor(word)
            held, listed, inside = self._listed(word)
            if not held:  # no row holds the word itself: its exact buckets need no statement
                strengths[0] = exact._replace(listed=[])
            prefix = _Strength(PREFIX, listed, self._prefix_condition(word, following))
            if not self.sqlite:
                found = "SELECT word FROM search_vocab WHERE word > ? AND word < ?"
                prefix = prefix._replace(
                    seek=_Sql(f"word = ANY(ARRAY({found}))", (word, following))
                )
            strengths.append(prefix)
            if len(word) >= MIN_INFIX_LENGTH:
                strengths.append(self._infix(word, following, inside))
        typos = self.typo_words(word)
        if typos:
            listed = typos if len(typos) <= MAX_LISTED else None
            strengths.append(_Strength(FUZZY, listed, _is_in(typos)))
        return _Plan(word, strengths)

    def common_plan(self, word: str) -> _Plan:
        """The plan of a short word matching too much to drive: checked on the candidates.

        In the database, within each page's name lengths, as long as its words are few
        enough to seek one by one; a word with more is left to Python in the tiers it
        reaches by prefix.
        """
        plan = self.plan(word)
        if self._found(word, _STARTED, 0)[0] <= MAX_CHECKED:
            return plan
        return _Plan(word, [s._replace(checkable=s.strength == EXACT) for s in plan.strengths])

    def _prefix_condition(self, word: str, following: str) -> _Sql:
        if self.sqlite:  # the vocabulary's words, each a seek, so that name lengths are too
            found = "SELECT word FROM search_vocab WHERE word > ? AND word < ?"
            return _Sql(f"word IN ({found})", (word, following))
        return _Sql("word > ? AND word < ?", (word, following))

    def _listed(self, word: str) -> tuple[bool, list[str] | None, list[str] | None]:
        """Whether ``word`` is indexed, the words it starts, and those it is inside of.

        The lists unless too many (see _listed_parts), as look_up found them.
        """
        prefixed, inside = (
            sorted(listed) if len(listed) <= MAX_LISTED else None
            for listed in (self._found(word, _LISTED, s) for s in (PREFIX, INFIX))
        )
        return bool(self._found(word, _LISTED, EXACT)), prefixed, inside

    def _listed_parts(self, word: str, following: str) -> list[tuple[int, Any]]:
        """(strength, select of words): ``word`` if indexed, the words it starts and contains.

        Each list stops past MAX_LISTED. Infixes only for 3+ characters. The vocabulary holds
        every word ever indexed, in any location: a word missing from it has no rows, and a
        prefix or infix query ("rent", "ental") then skips its exact buckets instead of
        reading them empty, a statement each.
        """
        itself = select(_VOCAB.word).where(_VOCAB.word == word)
        ranged = select(_VOCAB.word).where(_VOCAB.word > word, _VOCAB.word < following)
        found = [(EXACT, itself), (PREFIX, ranged.order_by(_VOCAB.word))]
        if len(word) >= MIN_INFIX_LENGTH:  # unordered: the trigram query stops at the limit
            found.append((INFIX, self._vocabulary_containing(word, (word, following))))
        return [(strength, statement.limit(MAX_LISTED + 1)) for strength, statement in found]

    def _infix(self, word: str, following: str, listed: list[str] | None) -> _Strength:
        """The words containing ``word`` but not starting with it (those are exact or prefix).

        ``listed``: those words, or None when many; then the vocabulary's words, each found
        by the word table's key.
        """
        outside = (word, following)
        if self.sqlite:
            containing = (
                "word IN (SELECT v.word FROM search_vocab v WHERE v.id IN (SELECT rowid FROM "
                "search_vocab_fts WHERE search_vocab_fts.word MATCH ?) "
                "AND (v.word < ? OR v.word >= ?))"
            )
            return _Strength(INFIX, listed, _Sql(containing, (_fts_phrase(word), *outside)))
        found = (
            "SELECT v.word FROM search_vocab v WHERE v.word LIKE ? ESCAPE '\\' "
            "AND (v.word < ? OR v.word >= ?)"
        )
        parameters = (f"%{_escape_like(word)}%", *outside)
        return _Strength(
            INFIX,
            listed,
            _Sql(f"word IN ({found})", parameters),
            seek=_Sql(f"word = ANY(ARRAY({found}))", parameters),
        )

    def _vocabulary_containing(self, text: str, skip: tuple[str, str] | None = None) -> Any:
        """The distinct words containing ``text``, by the vocabulary's trigram index.

        SQLite: an FTS5 trigram phrase query; PostgreSQL: ``LIKE`` on the pg_trgm index.
        Leaves out the words in ``skip`` (a range) before any row of theirs is read.
        """
        if self.sqlite:
            ids = select(_FTS.c.rowid).where(_FTS.c.word.op("MATCH")(_fts_phrase(text)))
            word: ColumnElement[Any] = _VOCAB.word
            found = select(word.label("word")).where(_VOCAB.id.in_(ids))
        else:
            # Materialized: under a LIMIT the planner would rather scan the whole vocabulary
            # in the hope of meeting matches early than use the trigram index.
            like = _VOCAB.word.like(f"%{_escape_like(text)}%", escape="\\")
            matched = select(_VOCAB.word).where(like).cte().prefix_with("MATERIALIZED")
            word = matched.c.word
            found = select(word.label("word"))
        if skip is not None:
            found = found.where(or_(word < skip[0], word >= skip[1]))
        return found

    def typo_words(self, word: str) -> list[str]:
        """The indexed words that match ``word`` with a typo only (strength FUZZY)."""
        if not self.query.fuzzy or len(word) < MIN_FUZZY_LENGTH:
            return []
        looked_up = [self._distinct_words(a) for a in fuzzy_anchors(word, max_typos(word))]
        found = set(self.connection.scalars(union(*looked_up)))  # one round trip
        return sorted(w for w in found if word_strength(word, w, fuzzy=True) == FUZZY)

    def _distinct_words(self, anchor: Anchor) -> Any:
        if anchor.kind == "contains":
            return self._vocabulary_containing(anchor.text)
        return select(_VOCAB.word.label("word")).where(
            _VOCAB.word >= anchor.text, _VOCAB.word < successor(anchor.text)
        )

    # -- how many rows a query word matches ------------------------------------------------

    def _count_keys(self) -> list[tuple[int, int]]:
        """The (field code, strength) pairs a word is counted on, in order."""
        strengths = [EXACT] if self.query.exact_only else [EXACT, PREFIX]
        return [(code, strength) for code in self.codes for strength in strengths]

    def _count_parts(self, word: str) -> list[Any]:
        """Index entries matching ``word`` exactly and as a prefix, per searched field.

        One count per _count_keys pair, each up to its share of COUNT_CAP, so that counting
        reads no more than COUNT_CAP rows. Infixes are left out: finding them costs more than
        counting (a number fragment is inside thousands of numbers), and short words have none.
        """
        keys = self._count_keys()
        cap = max(1, COUNT_CAP // len(keys))
        found = []
        for code, strength in keys:
            if strength == EXACT:
                condition = _W.word == word
            else:
                condition = and_(_W.word > word, _W.word < successor(word))
            mine = (_W.location_id == self.location_id, _W.field == code)
            capped = select(literal(1)).where(*mine, condition).limit(cap).subquery()
            found.append(select(func.count()).select_from(capped).scalar_subquery())
        return found

    def count(self, word: str) -> _Counts:
        """The index entries of ``word`` per searched field, as look_up counted them."""
        keys = self._count_keys()
        found = {key: int(self._found(word, _COUNTED, n)[0]) for n, key in enumerate(keys)}
        return _Counts(found, max(1, COUNT_CAP // len(keys)))

    def _found(self, word: str, kind: int, key: int) -> list[Any]:
        return self.found.get(word, {}).get((kind, key), [])

    def look_up(self) -> None:
        """What the plans need to know of every query word, in one statement (round trip).

        The lists of words each one matches, if it needs any; counts of its entries, for a
        query of several words (to pick a driver) or a short word (whether it matches too much
        to drive); and for a short word, how many words it starts (MAX_CHECKED + 1 at most).
        Each row: (query word's position, kind of row, key, word or count).
        """
        several = len(set(self.query.words)) > 1
        unique = list(dict.fromkeys(self.query.words))
        parts: list[Any] = []

        def row(position: int, kind: int, key: int, value: Any) -> Any:
            return select(
                literal(position).label("position"),
                literal(kind).label("kind"),
                literal(key).label("key"),
                value.label("value"),
            )

        for position, word in enumerate(unique):
            indexed = len(word) >= MIN_INFIX_LENGTH or self.query.exact_only
            if not self.query.exact_only:
                for strength, statement in self._listed_parts(word, successor(word)):
                    listed = statement.subquery()
                    parts.append(
                        row(position, _LISTED, strength, listed.c.word).select_from(listed)
                    )
            if several or not indexed:
                for n, count in enumerate(self._count_parts(word)):
                    parts.append(row(position, _COUNTED, n, cast(count, String)))
            if not indexed:
                started = select(_VOCAB.word).where(
                    _VOCAB.word > word, _VOCAB.word < successor(word)
                )
                counted = select(func.count()).select_from(
                    started.limit(MAX_CHECKED + 1).subquery()
                )
                parts.append(row(position, _STARTED, 0, cast(counted.scalar_subquery(), String)))
        if not parts:
            return
        for position, kind, key, value in self.connection.execute(union_all(*parts)):
            found = self.found.setdefault(unique[position], {}).setdefault((kind, key), [])
            found.append(value if kind == _LISTED else int(value))


class _Counts(NamedTuple):
    """A query word's index entries per (field code, strength), each capped at ``cap``."""

    found: dict[tuple[int, int], int]
    cap: int

    def many(self) -> bool:
        """Whether the word has COUNT_CAP entries or more (or so many on one field)."""
        return sum(self.found.values()) >= COUNT_CAP or max(self.found.values()) >= self.cap

    def exact(self) -> int:
        return sum(n for (_, strength), n in self.found.items() if strength == EXACT)

    def within(self, codes: Sequence[int], tier: int) -> int:
        """Entries on these fields matching at ``tier`` or better (infixes not counted)."""
        return sum(
            n for (code, strength), n in self.found.items() if code in codes and strength >= tier
        )


def _indexed_words(words: _Words, query: SearchQuery) -> tuple[list[str], int, dict[str, _Counts]]:
    """The query words that may drive the search, a cap on every hit's tier, and row counts.

    All words, but short words that match too much. A word of 1-2 characters (prefix only)
    may match a large share of the index ("john t"): when it matches COUNT_CAP entries or
    more it is only checked on the candidates, never read as a driver.

    A word no indexed word equals reaches the prefix tier at best, and a hit ranks by its
    weakest word: no hit can rank above the prefix tier then. Capping the tiers there skips
    the exact ones, which would read every row of the other words only to find nobody
    ("group g": one page instead of 80,000 candidates; "sal city": no exact "sal").
    Words of a query of several words are counted anyway, to pick the driver.
    """
    indexed = [w for w in query.words if len(w) >= MIN_INFIX_LENGTH or query.exact_only]
    several = len(set(query.words)) > 1
    cap = EXACT
    counts: dict[str, _Counts] = {}
    for word in dict.fromkeys(query.words):
        if word in indexed and not several:
            continue
        found = counts[word] = words.count(word)
        if found.exact() == 0:
            cap = PREFIX
        if word not in indexed and not found.many():
            indexed.append(word)
    return indexed or sorted(query.words, key=len, reverse=True)[:1], cap, counts


def _driver(
    plans: dict[str, _Plan], counts: dict[str, _Counts], codes: Sequence[int], tier: int
) -> str:
    """The word whose rows drive a bucket: one whose words can be merged, the rarest there.

    Rarest on the bucket's fields at its tier: a bucket reads its driver's rows until its page
    is full, all of them when few hold the other words ("tir spr": 30,000 "tires" on NAME,
    no "spr" on NAME at all). A word with too many distinct words to merge is read by
    sorting its rows.
    """
    if len(plans) == 1:
        return next(iter(plans))
    return min(
        plans,
        key=lambda word: (
            not plans[word].mergeable(),
            counts[word].within(codes, tier),
            -len(word),
        ),
    )


class _Bucket(NamedTuple):
    """One rank class of hits: a tier and whether NAME attains every word's best strength."""

    tier: int
    not_name: int

    def codes(self, words: _Words, *, single: bool) -> list[int]:
        """The fields whose rows may hold this bucket's hits.

        Its NAME bucket, NAME only. Its other bucket, any field for a query of several words
        (the driver word may be on NAME, another word not), else the fields but NAME: a
        one-word hit on NAME ranked in the NAME bucket.
        """
        if not self.not_name:
            return [code for code in words.codes if code == schema.NAME]
        if single:
            return [code for code in words.codes if code != schema.NAME]
        return list(words.codes)

    def strengths(self, plan: _Plan, cap: int, *, single: bool) -> list[_Strength]:
        """A word's strengths that reach this tier (capped), or, for one word, equal it."""
        found = [s for s in plan.strengths if s.listed != []]  # [] holds no word: no rows
        if single:
            return [s for s in found if min(s.strength, cap) == self.tier]
        return [s for s in found if s.strength >= self.tier]


def _buckets(words: _Words, plans: Sequence[_Plan], cap: int) -> list[_Bucket]:
    """The buckets in rank order: by tier (at most the cap), NAME before the others.

    A hit's tier is its weakest word's strength, so every strength of any word is a tier.
    Strengths above the cap share its bucket: no hit ranks above it.
    """
    tiers = {min(s.strength, cap) for plan in plans for s in plan.strengths}
    has_name = schema.NAME in words.codes
    has_others = any(code != schema.NAME for code in words.codes)
    return [
        _Bucket(tier, not_name)
        for tier in sorted(tiers, reverse=True)
        for not_name, present in ((0, has_name), (1, has_others))
        if present
    ]


class _Candidates:
    """A bucket's candidates: the driver's rows in ``(name_length, customer_id)`` order.

    A page at a time, continued by keyset; with each row, whether the customer holds a match
    for every other indexed word that reaches the bucket (and then its stored texts).
    """

    def __init__(self, search: _Search, bucket: _Bucket) -> None:
        self.search = search
        self.bucket = bucket
        single = search.judge is None
        self.codes = bucket.codes(search.words, single=single)
        driver = search.driver(self.codes, bucket.tier)
        self.others = [plan for plan in search.plans.values() if plan.word != driver.word]
        self.strengths = bucket.strengths(driver, search.cap, single=single)
        self.after: tuple[int, str] | None = None  # keyset: the last row read
        self.upto: int | None = None  # the longest name length still wanted, when known
        self.done = not self.codes or not self.strengths or search.empty(self.codes, bucket.tier)

    def page(self, size: int) -> list[Any]:
        """The held rows of the next ``size``, and the page's last row, where it goes on.

        Each row: customer id, name length, field code, strength, rows read, texts (None
        unless held). Rows of customers not holding the other words stay in the database.
        """
        statement = self._statement(size)
        sql = statement.text if self.search.words.sqlite else statement.text.replace("?", "%s")
        connection = self.search.words.connection
        rows = list(connection.exec_driver_sql(sql, statement.parameters).all())
        rows.sort(key=lambda row: (row[1], row[0], row[2]))  # the statement's order
        if rows:
            self.after = (rows[-1][1], rows[-1][0])
        self.done = not rows or rows[0].read < size
        return rows

    def _statement(self, size: int) -> _Sql:
        """The page (a merge of index ranges), each row held or not, its texts if held.

        Only held rows look their customer up (a NULL key skips the seek); of the others
        only the page's last row is returned, for the keyset.
        """
        page = self._page(size)
        held = self._held(size)
        texts = ", ".join(f"customers.{name}" for name in self.search.texts)
        looked_up = f"customers.id = CASE WHEN {held.text} THEN page.customer_id END"
        if self.search.words.sqlite:
            joined = f"LEFT JOIN customers ON {looked_up}"
        else:
            columns = ", ".join(f"customers.{name}" for name in dict.fromkeys(self.search.texts))
            # A lookup per page row, whatever the page's size: joining 5,120 rows, the planner
            # would rather hash the whole customers table (1M rows, 400 ms) than seek them. The
            # LIMIT keeps the subquery from being flattened back into that join.
            joined = (
                f"LEFT JOIN LATERAL (SELECT customers.id, {columns} FROM customers "  # noqa: S608
                f"WHERE {looked_up} LIMIT 1) AS customers ON true"
            )
        return _Sql(
            f"WITH page AS ({page.text}) "  # noqa: S608 - see _Sql
            "SELECT page.customer_id, page.name_length, page.field, page.strength, "
            f"(SELECT count(*) FROM page) AS read, {texts} "
            f"FROM page {joined} "
            "WHERE customers.id IS NOT NULL OR (page.name_length, page.customer_id) IN "
            "(SELECT name_length, customer_id FROM page "
            "ORDER BY name_length DESC, customer_id DESC LIMIT 1)",
            (*page.parameters, *held.parameters),
        )

    def _page(self, size: int) -> _Sql:
        """One index range per field and word (or condition), merged in rank order."""
        arms, parameters = [], []
        keyset = "" if self.after is None else " AND (name_length, customer_id) > (?, ?)"
        bounds = list(self.after or ())
        if self.upto is not None:
            keyset += " AND name_length <= ?"
            bounds.append(self.upto)
        for fields, strength, condition in self._ranges():
            arms.append(
                "SELECT customer_id, name_length, field, "  # noqa: S608 - see _Sql
                f"{strength} AS strength FROM customer_words "
                f"WHERE location_id = ? AND field IN ({fields}) AND {condition.text}{keyset}"
            )
            parameters += [self.search.words.location_id, *condition.parameters, *bounds]
        merged = " UNION ALL ".join(arms)
        order = " ORDER BY name_length, customer_id, field LIMIT ?"
        return _Sql(merged + order, (*parameters, size))

    def _ranges(self) -> list[tuple[str, int, _Sql]]:
        """(fields, strength, condition) of each arm of the page's merge.

        One index range per field and listed word; for words not listed, one condition over
        all the fields: its rows are sorted anyway, and PostgreSQL's trigram look-up then
        runs once, not once per field.
        """
        found = []
        for strength in self.strengths:
            if strength.listed is None:
                codes = ", ".join(str(code) for code in self.codes)
                found.append((codes, strength.strength, strength.condition))
                continue
            for code in self.codes:
                found += [(str(code), strength.strength, c) for c in strength.conditions()]
        return found

    def _held(self, size: int) -> _Sql:
        """Whether a page row's customer holds every other word, at the bucket's strength."""
        found = [_Sql("1 = 1")]
        for plan in self.others:
            strengths = self.bucket.strengths(plan, self.search.cap, single=False)
            if not strengths:
                return _Sql("1 = 0")  # the word never reaches this tier
            if not all(self._checkable(strength) for strength in strengths):
                continue  # left to Python in this bucket
            found.append(self._probed(strengths, size) or self._windowed(strengths))
        return _Sql(
            " AND ".join(part.text for part in found),
            tuple(value for part in found for value in part.parameters),
        )

    def _checkable(self, strength: _Strength) -> bool:
        """Whether another word's rows of this strength can be checked in the database.

        Not a short word starting too many words: the judge checks those in Python.
        """
        return strength.checkable

    def _mine(self, alias: str = "") -> _Sql:
        codes = ", ".join(str(code) for code in self.codes)
        return _Sql(
            f"{alias}location_id = ? AND {alias}field IN ({codes})",
            (self.search.words.location_id,),
        )

    def _probed(self, strengths: Sequence[_Strength], size: int) -> _Sql | None:
        """A probe per page row on the full key of each listed word and field, when few.

        A few seeks per candidate beat reading a common word's rows in the page's window (a
        "c" in most customer numbers). None when the words are many or not listed.
        """
        listed: list[str] = []
        for strength in strengths:
            if strength.listed is None:
                return None
            listed += strength.listed
        probes = len(listed) * len(self.codes)
        budget = PAGE_PROBES if self.search.words.sqlite else PG_PAGE_PROBES
        if probes > MAX_PROBES or probes * size > budget:
            return None
        mine, words = self._mine("w."), _is_in(listed)
        return _Sql(
            f"EXISTS (SELECT 1 FROM customer_words w WHERE {mine.text} AND w.{words.text} "  # noqa: S608
            "AND w.name_length = page.name_length AND w.customer_id = page.customer_id)",
            (*mine.parameters, *words.parameters),
        )

    def _windowed(self, strengths: Sequence[_Strength]) -> _Sql:
        """The word's rows within the page's name lengths, read once for the whole page.

        One select per strength: under an OR, SQLite would not seek on the name length.
        """
        window = (
            "name_length BETWEEN (SELECT min(name_length) FROM page) "
            "AND (SELECT max(name_length) FROM page)"
        )
        mine = self._mine()
        selects, parameters = [], []
        for strength in strengths:
            condition = strength.seekable()
            selects.append(
                f"SELECT customer_id FROM customer_words WHERE {mine.text} AND "  # noqa: S608
                f"{condition.text} AND {window}"
            )
            parameters += [*mine.parameters, *condition.parameters]
        return _Sql(f"page.customer_id IN ({' UNION ALL '.join(selects)})", tuple(parameters))


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


class _Page:
    """The best hits so far, in rank key order, and whether more could still make them."""

    def __init__(self, location_id: str, limit: int) -> None:
        self.location_id = location_id
        self.limit = limit
        self.hits: list[tuple[RankKey, RankedMatch]] = []
        self.seen: set[str] = set()  # every customer judged, hit or not

    def closed_before(self, bound: tuple[int, int, int] | tuple[int, int]) -> bool:
        """Whether the page is full with hits ranking before anyone bounded by ``bound``."""
        if len(self.hits) < self.limit:
            return False
        return self.hits[self.limit - 1][0][: len(bound)] < bound

    def add(self, customer_id: str, name: str, tier: int, field: SearchField) -> None:
        document = SearchDocument(id=customer_id, location_id=self.location_id, name=name)
        match = RankedMatch(customer_id=customer_id, score=score(tier, field), field=field)
        bisect.insort(self.hits, (rank_key(tier, field, document), match), key=lambda h: h[0])

    def result(self) -> list[RankedMatch]:
        return [match for _, match in self.hits[: self.limit]]


class _Search:
    """What every bucket of one search reads: the words, which may drive, how to judge."""

    def __init__(
        self,
        words: _Words,
        plans: dict[str, _Plan],
        drivers: dict[str, _Plan],
        counts: dict[str, _Counts],
        *,
        cap: int,
        judge: _Judge | None,
    ) -> None:
        self.words = words
        self.plans = plans
        self.drivers = drivers
        self.counts = counts
        self.cap = cap
        self.judge = judge
        fields = [] if judge is None else [SEARCH_FIELDS[f][1] for f in words.query.fields]
        #: The customers' columns a hit needs: its name, and the judge's fields.
        self.texts = ["company_name", *fields]

    def empty(self, codes: Sequence[int], tier: int) -> bool:
        """Whether a counted word has no entry on these fields at ``tier`` or better.

        Then no customer holds it there: the bucket is empty, no statement needed ("c 56718":
        no name holds the number). Counts are exact below their cap, and count exact and
        prefix entries: so only for the exact and prefix tiers.
        """
        if tier < PREFIX:
            return False
        return any(counts.within(codes, tier) == 0 for counts in self.counts.values())

    def driver(self, codes: Sequence[int], tier: int) -> _Plan:
        """The plan of the word driving a bucket of these fields and tier."""
        return self.drivers[_driver(self.drivers, self.counts, codes, tier)]


def configure_postgres_session(dbapi_connection: Any, _record: Any) -> None:
    """Apply PG_SESSION_SETTINGS to a new connection (the engine's ``connect`` event).

    Committed: the pool rolls a connection back when it is returned, which would undo them.
    """
    with dbapi_connection.cursor() as cursor:
        for statement in PG_SESSION_SETTINGS:
            cursor.execute(statement)
    dbapi_connection.commit()


def search(
    connection: Connection, location_id: str, query: SearchQuery, *, limit: int
) -> list[RankedMatch]:
    """The live customers of a location matching ``query``, ranked as ``oracle_search`` does."""
    if not query.words:
        return []
    words = _Words(connection, location_id, query)
    words.look_up()
    indexed, cap, counts = _indexed_words(words, query)
    plans = {word: words.plan(word) for word in dict.fromkeys(indexed)}
    drivers = dict(plans)
    for word in query.words:
        if word not in plans:
            plans[word] = words.common_plan(word)
    # One word, uncapped: a hit's bucket and row are its tier and field; its name breaks ties.
    judge = None
    if len(plans) > 1 or len(set(query.words)) > 1 or cap < EXACT:
        judge = _Judge(query, first=[word for word in query.words if word not in indexed])
    context = _Search(words, plans, drivers, counts, cap=cap, judge=judge)
    page = _Page(location_id, limit)
    for bucket in _buckets(words, list(plans.values()), cap):
        if page.closed_before((-bucket.tier, bucket.not_name)):
            break  # this bucket and every later one rank after the page
        if _read_bucket(_Candidates(context, bucket), page):
            break
    return page.result()


def _next_size(size: int) -> int:
    return min(size * 4, MAX_PAGE)


def _read_bucket(candidates: _Candidates, page: _Page) -> bool:
    """Judge a bucket's candidates into the page; True once nobody further can make it."""
    bucket = candidates.bucket
    judge = candidates.search.judge
    size = FIRST_PAGE * page.limit
    while not candidates.done:
        for customer_id, length, code, strength, _, name, *fields in candidates.page(size):
            if page.closed_before((-bucket.tier, bucket.not_name, length)):
                return True
            if name is None or customer_id in page.seen:
                continue  # lacks another word here (maybe not in a later bucket), or judged
            page.seen.add(customer_id)
            if judge is None:
                field = SearchField.NAME if code == schema.NAME else _FIELD_OF_CODE[code]
                page.add(customer_id, name, strength, field)
                continue
            matched = judge.match(fields)
            if matched is not None:
                page.add(customer_id, name, *matched)
        size = _next_size(size)
        if candidates.upto is None and candidates.after is not None:
            longest = candidates.after[0]
            if page.closed_before((-bucket.tier, bucket.not_name, longest + 1)):
                # Only the rest of the last name length's tie can still make the page: read
                # just that (163 rows tie for "tires", where a next page would read 320).
                candidates.upto, size = longest, MAX_PAGE
    return False
