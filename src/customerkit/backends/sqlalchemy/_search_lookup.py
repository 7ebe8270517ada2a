"""The vocabulary a database search plans from: the words each query word matches, and counts.

One statement (``WordLookup.look_up``) asks for every query word at once: the distinct
indexed words it equals, starts and is inside of (a B-tree range of ``search_vocab``, its
trigram index: FTS5 on SQLite, pg_trgm on PostgreSQL), and how many index entries it has per
field. ``WordLookup.plan`` turns that into a ``Plan``; a typo's words take one more statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from customerkit.backends.sqlalchemy import _search_limits as limits
from customerkit.backends.sqlalchemy._rows import SEARCH_FIELDS
from customerkit.backends.sqlalchemy._search_plan import (
    Counts,
    Plan,
    Sql,
    Strength,
    execute,
    is_in,
    joined,
    with_ctes,
)
from customerkit.backends.sqlalchemy.anchors import Anchor, fuzzy_anchors, successor
from customerkit.search.query import SearchQuery
from customerkit.search.rules import (
    EXACT,
    FUZZY,
    INFIX,
    MIN_INFIX_LENGTH,
    PREFIX,
    max_typos,
    reachable_strengths,
    word_strength,
)

#: Kinds of row of the look-up statement (WordLookup.look_up).
_LISTED, _COUNTED, _STARTED = 0, 1, 2


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class WordLookup:
    """The word index of one location, as one search sees it."""

    def __init__(self, connection: Connection, location_id: str, query: SearchQuery) -> None:
        self.connection = connection
        self.location_id = location_id
        self.query = query
        self.sqlite = connection.dialect.name == "sqlite"
        self.codes = sorted(SEARCH_FIELDS[field][0] for field in query.fields)
        #: What look_up found, by query word: (kind, key) -> listed words or counts.
        self.found: dict[str, dict[tuple[int, int], list[Any]]] = {}
        #: The distinct query words, in the query's order (a look-up row names one by position).
        self._unique = list(dict.fromkeys(query.words))
        #: The query words whose infixes (the words each is inside of) were looked up.
        self.infixes_listed: set[str] = set()

    # -- the distinct words a query word matches ------------------------------------------

    def plan(self, word: str) -> Plan:
        """The strengths of ``word``: exact, prefix and infix words, then typos."""
        reachable = reachable_strengths(word, self.query)
        exact = Strength(EXACT, [word], Sql("word = ?", (word,)))
        strengths = [exact]
        if PREFIX in reachable:
            following = successor(word)
            held, listed, inside = self._listed(word)
            if not held:  # no row holds the word itself: its exact buckets need no statement
                strengths[0] = exact._replace(listed=[])
            prefix = Strength(PREFIX, listed, self._prefix_condition(word, following))
            if not self.sqlite:
                found = "SELECT word FROM search_vocab WHERE word > ? AND word < ?"
                prefix = prefix._replace(vocabulary=Sql(found, (word, following)))
            strengths.append(prefix)
            if INFIX in reachable:
                strengths.append(self._infix(word, following, inside))
        typos = self.typo_words(word)
        if typos:
            listed = typos if len(typos) <= limits.MAX_LISTED else None
            strengths.append(Strength(FUZZY, listed, is_in(typos)))
        return Plan(word, strengths)

    def common_plan(self, word: str) -> Plan:
        """The plan of a short word matching too much to drive: checked on the candidates.

        In the database, within each page's name lengths, as long as its words are few
        enough to seek one by one; a word with more is checked on each candidate's own words
        (the forward index) in the tiers it reaches by prefix.
        """
        plan = self.plan(word)
        if self._found(word, _STARTED, 0)[0] <= limits.MAX_CHECKED:
            return plan
        return Plan(word, [s._replace(checkable=s.strength == EXACT) for s in plan.strengths])

    def _prefix_condition(self, word: str, following: str) -> Sql:
        if self.sqlite:  # the vocabulary's words, each a seek, so that name lengths are too
            found = "SELECT word FROM search_vocab WHERE word > ? AND word < ?"
            return Sql(f"word IN ({found})", (word, following))
        return Sql("word > ? AND word < ?", (word, following))

    def _listed(self, word: str) -> tuple[bool, list[str] | None, list[str] | None]:
        """Whether ``word`` is indexed, the words it starts, and those it is inside of.

        The lists unless too many (see _listed_parts), as look_up found them; the words it is
        inside of None until look_up_infixes listed them.
        """
        prefixed, inside = (
            sorted(listed) if len(listed) <= limits.MAX_LISTED else None
            for listed in (self._found(word, _LISTED, s) for s in (PREFIX, INFIX))
        )
        if word not in self.infixes_listed:
            inside = None
        return bool(self._found(word, _LISTED, EXACT)), prefixed, inside

    def with_infixes(self, plan: Plan) -> Plan:
        """``plan`` with the words its query word is inside of, as look_up_infixes listed them."""
        word = plan.word
        inside = self._listed(word)[2]
        strengths = [
            self._infix(word, successor(word), inside) if s.strength == INFIX else s
            for s in plan.strengths
        ]
        return plan._replace(strengths=strengths)

    def _listed_parts(
        self, word: str, following: str, ctes: list[Sql], *, infix: bool = False
    ) -> list[tuple[int, Sql]]:
        """(strength, select of words): ``word`` if indexed, the words it starts and contains.

        Each list stops past MAX_LISTED. Infixes only for 3+ characters, and only once asked
        for (``infix``). The vocabulary holds every word ever indexed, in any location: a word
        missing from it has no rows, and a prefix or infix query ("rent", "ental") then skips
        its exact buckets instead of reading them empty, a statement each.
        """
        limit = f" LIMIT {limits.MAX_LISTED + 1:d}"
        if infix:
            if INFIX not in reachable_strengths(word, self.query):  # unordered: stops at limit
                return []
            inside = self._containing(word, ctes, skip=(word, following))
            return [(INFIX, Sql(inside.text + limit, inside.parameters))]
        found = [
            (EXACT, Sql("SELECT word FROM search_vocab WHERE word = ?", (word,))),
            (
                PREFIX,
                Sql(
                    "SELECT word FROM search_vocab WHERE word > ? AND word < ? ORDER BY word",
                    (word, following),
                ),
            ),
        ]
        return [(strength, Sql(sql.text + limit, sql.parameters)) for strength, sql in found]

    def _infix(self, word: str, following: str, listed: list[str] | None) -> Strength:
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
            return Strength(INFIX, listed, Sql(containing, (_fts_phrase(word), *outside)))
        found = (
            "SELECT v.word FROM search_vocab v WHERE v.word LIKE ? ESCAPE '\\' "
            "AND (v.word < ? OR v.word >= ?)"
        )
        parameters = (f"%{_escape_like(word)}%", *outside)
        return Strength(
            INFIX,
            listed,
            Sql(f"word IN ({found})", parameters),
            vocabulary=Sql(found, parameters),
        )

    def _containing(
        self, text: str, ctes: list[Sql], *, skip: tuple[str, str] | None = None
    ) -> Sql:
        """A select of the distinct words containing ``text``, by the vocabulary's trigram index.

        SQLite: an FTS5 trigram phrase query; PostgreSQL: ``LIKE`` on the pg_trgm index, in a
        common table expression added to ``ctes``. Leaves out the words in ``skip`` (a range)
        before any row of theirs is read.
        """
        if self.sqlite:
            found = Sql(
                "SELECT v.word AS word FROM search_vocab v WHERE v.id IN (SELECT rowid FROM "
                "search_vocab_fts WHERE search_vocab_fts.word MATCH ?)",
                (_fts_phrase(text),),
            )
            joined, column = " AND ", "v.word"
        else:
            # Materialized: under a LIMIT the planner would rather scan the whole vocabulary
            # in the hope of meeting matches early than use the trigram index.
            name = f"containing_{len(ctes)}"
            ctes.append(
                Sql(
                    f"{name} AS MATERIALIZED (SELECT word FROM search_vocab "  # noqa: S608
                    "WHERE word LIKE ? ESCAPE '\\')",
                    (f"%{_escape_like(text)}%",),
                )
            )
            found = Sql(f"SELECT word FROM {name}")  # noqa: S608 - see Sql
            joined, column = " WHERE ", "word"
        if skip is None:
            return found
        return Sql(
            f"{found.text}{joined}({column} < ? OR {column} >= ?)", (*found.parameters, *skip)
        )

    def typo_words(self, word: str) -> list[str]:
        """The indexed words that match ``word`` with a typo only (strength FUZZY)."""
        if FUZZY not in reachable_strengths(word, self.query):
            return []
        ctes: list[Sql] = []
        looked_up = [self._distinct_words(a, ctes) for a in fuzzy_anchors(word, max_typos(word))]
        rows = execute(self.connection, with_ctes(ctes, joined(looked_up, " UNION ")))
        return sorted({w for (w,) in rows if word_strength(word, w, fuzzy=True) == FUZZY})

    def _distinct_words(self, anchor: Anchor, ctes: list[Sql]) -> Sql:
        if anchor.kind == "contains":
            return self._containing(anchor.text, ctes)
        return Sql(
            "SELECT word FROM search_vocab WHERE word >= ? AND word < ?",
            (anchor.text, successor(anchor.text)),
        )

    # -- how many rows a query word matches ------------------------------------------------

    def _count_keys(self) -> list[tuple[int, int]]:
        """The (field code, strength) pairs a word is counted on, in order."""
        strengths = [EXACT] if self.query.exact_only else [EXACT, PREFIX]
        return [(code, strength) for code in self.codes for strength in strengths]

    def _count_parts(self, counted: Sequence[tuple[int, str]]) -> list[Sql]:
        """Look-up rows: the index entries of each (position, word) exactly and as a prefix.

        One count per _count_keys pair, each up to its share of COUNT_CAP, so that counting
        reads no more than COUNT_CAP rows. Infixes are left out: finding them costs more than
        counting (a number fragment is inside thousands of numbers), and short words have none.
        The counts of one strength are one select over a ``VALUES`` list of (position, key,
        field code, bounds), which PostgreSQL plans once: a count each, as before, took longer
        to plan than to run (two words' 16 counts: 0.69 ms of planning, 0.11 ms this way).
        """
        keys = self._count_keys()
        cap = max(1, limits.COUNT_CAP // len(keys))
        bounds: dict[int, list[tuple[int, int, int, tuple[str, ...]]]] = {EXACT: [], PREFIX: []}
        for position, word in counted:
            for key, (code, strength) in enumerate(keys):
                found = (word,) if strength == EXACT else (word, successor(word))
                bounds[strength].append((position, key, code, found))
        conditions = {EXACT: "word = k.column4", PREFIX: "word > k.column4 AND word < k.column5"}
        parts: list[Sql] = []
        for strength, rows in bounds.items():
            if not rows:
                continue
            values = ", ".join(
                f"({position:d}, {key:d}, {code:d}, {', '.join('?' * len(found))})"
                for position, key, code, found in rows
            )
            parts.append(
                Sql(
                    f"SELECT k.column1 AS position, {_COUNTED:d} AS kind, k.column2 AS key, "  # noqa: S608
                    "CAST((SELECT count(*) FROM (SELECT 1 FROM customer_words "
                    f"WHERE location_id = ? AND field = k.column3 AND {conditions[strength]} "
                    f"LIMIT {cap:d}) AS capped) AS VARCHAR) AS value FROM (VALUES {values}) AS k",
                    (self.location_id, *(word for *_, found in rows for word in found)),
                )
            )
        return parts

    def _counted(self, word: str, code: int, strength: int, cap: int) -> Sql:
        """The entries of ``word`` on one field at one strength, up to ``cap`` (a recount).

        EXACT or PREFIX; or INFIX, when the words it is inside of are listed.
        """
        if strength == EXACT:
            condition = Sql("word = ?", (word,))
        elif strength == PREFIX:
            condition = Sql("word > ? AND word < ?", (word, successor(word)))
        else:
            inside = self._listed(word)[2]
            if not inside:
                msg = f"the words {word!r} is inside of are not listed: they cannot be counted"
                raise ValueError(msg)
            condition = is_in(inside)
        return Sql(
            "(SELECT count(*) FROM (SELECT 1 FROM customer_words "  # noqa: S608
            f"WHERE location_id = ? AND field = {code:d} AND {condition.text} "
            f"LIMIT {cap:d}) AS capped)",
            (self.location_id, *condition.parameters),
        )

    def recount(self, keys: Sequence[tuple[str, int, int]]) -> list[int]:
        """The entries of each ``(word, field code, strength)``, up to RECOUNT_CAP, at once."""
        counted = joined([self._counted(*key, limits.RECOUNT_CAP) for key in keys], ", ")
        (row,) = execute(self.connection, Sql(f"SELECT {counted.text}", counted.parameters))
        return [int(value) for value in row]

    def count(self, word: str) -> Counts:
        """The index entries of ``word`` per searched field, as look_up counted them."""
        keys = self._count_keys()
        found = {key: int(self._found(word, _COUNTED, n)[0]) for n, key in enumerate(keys)}
        return Counts(found, max(1, limits.COUNT_CAP // len(keys)))

    def _found(self, word: str, kind: int, key: int) -> list[Any]:
        return self.found.get(word, {}).get((kind, key), [])

    def look_up(self) -> None:
        """What the plans need to know of every query word, in one statement (round trip).

        The lists of words each one matches, if it needs any; counts of its entries, for a
        query of several words (to pick a driver) or a short word (whether it matches too much
        to drive); and for a short word, how many words it starts (MAX_CHECKED + 1 at most).
        Each row: (query word's position, kind of row, key, word or count).
        """
        several = len(self._unique) > 1
        ctes: list[Sql] = []
        parts: list[Sql] = []
        counted: list[tuple[int, str]] = []
        for position, word in enumerate(self._unique):
            indexed = len(word) >= MIN_INFIX_LENGTH or self.query.exact_only
            if not self.query.exact_only:
                parts += _listed_rows(position, self._listed_parts(word, successor(word), ctes))
                if is_number_fragment(word):
                    infixes = self._listed_parts(word, successor(word), ctes, infix=True)
                    parts += _listed_rows(position, infixes)
            if several or not indexed:
                counted.append((position, word))
            if not indexed:
                started = (
                    "(SELECT count(*) FROM (SELECT 1 FROM search_vocab WHERE word > ? AND "  # noqa: S608
                    f"word < ? LIMIT {limits.MAX_CHECKED + 1:d}) AS started)"
                )
                started_words = Sql(f"CAST({started} AS VARCHAR)", (word, successor(word)))
                parts.append(_row(position, _STARTED, 0, started_words))
        self._run(ctes, parts + self._count_parts(counted))
        if not self.query.exact_only:
            self.infixes_listed.update(w for w in self._unique if is_number_fragment(w))

    @property
    def infixes_found(self) -> bool:
        """Whether every query word's infixes were looked up (none are, for an exact query)."""
        return self.query.exact_only or self.infixes_listed.issuperset(self._unique)

    def look_up_infixes(self) -> None:
        """The words each query word is inside of, in one statement, if not looked up yet.

        Left out of look_up for words of letters: a search that fills its page before the
        infix tier never needs them, and finding them was a third of the look-up's time on
        PostgreSQL, where a 3-letter word's trigram is in thousands of the vocabulary's words.
        """
        if self.infixes_found:
            return
        ctes: list[Sql] = []
        parts: list[Sql] = []
        for position, word in enumerate(self._unique):
            if word not in self.infixes_listed:
                infixes = self._listed_parts(word, successor(word), ctes, infix=True)
                parts += _listed_rows(position, infixes)
        self._run(ctes, parts)
        self.infixes_listed.update(self._unique)

    def _run(self, ctes: list[Sql], parts: list[Sql]) -> None:
        """Run the look-up rows ``parts`` as one statement and keep what they found."""
        if not parts:
            return
        rows = execute(self.connection, with_ctes(ctes, joined(parts, " UNION ALL ")))
        for position, kind, key, value in rows:
            found = self.found.setdefault(self._unique[position], {}).setdefault((kind, key), [])
            found.append(value if kind == _LISTED else int(value))


def is_number_fragment(word: str) -> bool:
    """Whether a query word is read as (part of) a customer number: it holds a digit.

    Numbers do not repeat and match inside one another as a rule: such a word gets its infix
    list in the first look-up (waiting would cost it a statement more); on PostgreSQL its
    words not listed are read as one range, and many listed ones word by word in one arm
    (``Candidates._word_by_word``).
    """
    return any(character.isdigit() for character in word)


def _row(position: int, kind: int, key: int, value: Sql, source: str = "") -> Sql:
    """One row of a look-up statement: (query word's position, kind of row, key, value)."""
    return Sql(
        f"SELECT {position:d} AS position, {kind:d} AS kind, {key:d} AS key, "
        f"{value.text} AS value{source}",
        value.parameters,
    )


def _listed_rows(position: int, listed: list[tuple[int, Sql]]) -> list[Sql]:
    """The look-up rows of a query word's lists of words (see WordLookup._listed_parts)."""
    return [
        _row(
            position,
            _LISTED,
            strength,
            Sql("word", sql.parameters),
            f" FROM ({sql.text}) AS listed",
        )
        for strength, sql in listed
    ]


def indexed_words(
    words: WordLookup, query: SearchQuery
) -> tuple[list[str], int, dict[str, Counts]]:
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
    counts: dict[str, Counts] = {}
    for word in dict.fromkeys(query.words):
        if word in indexed and not several:
            continue
        found = counts[word] = words.count(word)
        if found.exact() == 0:
            cap = PREFIX
        if word not in indexed and not found.many():
            indexed.append(word)
    return indexed or sorted(query.words, key=len, reverse=True)[:1], cap, counts
