"""Reading a bucket's candidates: one statement per page, in rank order, continued by keyset.

Each page is a merge of one index range per field and listed word of the driving word (a
UNION ALL that SQLite runs as a MERGE and PostgreSQL as a Merge Append), in
``(name_length, customer_id)`` order; the same statement checks the other words (by probe, by
reading their rows in the page's name lengths, or, for a short word starting too many words
for either, on the candidate's own words through the forward index) and returns the texts of
the customers that hold them all. Written as text: see ``Sql``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from customerkit.backends.sqlalchemy import _search_limits as limits
from customerkit.backends.sqlalchemy._rows import SEARCH_FIELDS
from customerkit.backends.sqlalchemy._search_lookup import WordLookup
from customerkit.backends.sqlalchemy._search_plan import (
    Bucket,
    Counts,
    Plan,
    Sql,
    Strength,
    execute,
    is_in,
    joined,
    pick_driver,
)
from customerkit.backends.sqlalchemy._search_rank import Judge
from customerkit.backends.sqlalchemy.anchors import successor
from customerkit.search.rules import EXACT, FUZZY, INFIX, PREFIX


@attrs.frozen(kw_only=True)
class SearchContext:
    """What every bucket of one search reads: the words, which may drive, how to judge."""

    words: WordLookup
    plans: dict[str, Plan]
    drivers: dict[str, Plan]
    counts: dict[str, Counts]
    cap: int
    judge: Judge | None
    #: (word, field code, strength) counted again up to RECOUNT_CAP (see ``driver``).
    recounted: set[tuple[str, int, int]] = attrs.field(factory=set)

    @property
    def texts(self) -> list[str]:
        """The customers' columns a hit needs: its name, and the judge's fields."""
        if self.judge is None:
            return ["company_name"]
        return ["company_name", *(SEARCH_FIELDS[f][1] for f in self.words.query.fields)]

    def empty(self, codes: Sequence[int], tier: int) -> bool:
        """Whether a counted word has no entry on these fields at ``tier`` or better.

        Then no customer holds it there: the bucket is empty, no statement needed ("c 56718":
        no name holds the number). Counts are exact below their cap, and count exact and
        prefix entries: so only for the exact and prefix tiers.
        """
        if tier < PREFIX:
            return False
        return any(counts.within(codes, tier) == 0 for counts in self.counts.values())

    def driver(self, codes: Sequence[int], tier: int) -> Plan:
        """The plan of the word driving a bucket of these fields and tier.

        When the word picked reached its count's cap here, its count is only a floor, and may
        hide a word commoner than another that could drive as well: the capped counts of both
        are taken again, up to RECOUNT_CAP, and the pick made again on them. Not against a word
        the picked one starts with ("catt cat"), which has at least as many entries.
        """
        word = pick_driver(self.drivers, self.counts, codes, tier)
        mergeable = self.drivers[word].mergeable()
        rivals = [
            rival
            for rival in self.drivers
            if rival != word
            and self.drivers[rival].mergeable() == mergeable
            # A word starting with the rival has no more entries up to the prefix tier.
            and (tier > PREFIX or not word.startswith(rival))
        ]
        if rivals and self._capped(word, codes, tier):
            wanted = [(w, *key) for w in (word, *rivals) for key in self._capped(w, codes, tier)]
            for (w, code, strength), found in zip(wanted, self.words.recount(wanted), strict=True):
                self.counts[w].found[(code, strength)] = found
            self.recounted.update(wanted)
            word = pick_driver(self.drivers, self.counts, codes, tier)
        return self.drivers[word]

    def _capped(self, word: str, codes: Sequence[int], tier: int) -> list[tuple[int, int]]:
        """The keys of a word's counts at their cap here and not counted again yet."""
        counts = self.counts.get(word)
        if counts is None:
            return []
        return [key for key in counts.capped(codes, tier) if (word, *key) not in self.recounted]


class Candidates:
    """A bucket's candidates: the driver's rows in ``(name_length, customer_id)`` order.

    A page at a time, continued by keyset; with each row, whether the customer holds a match
    for every other indexed word that reaches the bucket (and then its stored texts).
    """

    def __init__(self, search: SearchContext, bucket: Bucket) -> None:
        self.search = search
        self.bucket = bucket
        single = search.judge is None
        self.codes = bucket.codes(search.words.codes, single=single)
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
        rows = execute(self.search.words.connection, self._statement(size))
        rows.sort(key=lambda row: (row[1], row[0], row[2]))  # the statement's order
        if rows:
            self.after = (rows[-1][1], rows[-1][0])
        self.done = not rows or rows[0].read < size
        return rows

    def _statement(self, size: int) -> Sql:
        """The page (a merge of index ranges), each row held or not, its texts if held.

        Only held rows look their customer up (a NULL key skips the seek); of the others
        only the page's last row is returned, for the keyset.
        """
        page = self._page(size)
        held = self._held(size)
        texts = ", ".join(f"customers.{name}" for name in self.search.texts)
        looked_up = f"customers.id = CASE WHEN {held.text} THEN page.customer_id END"
        if self.search.words.sqlite:
            join = f"LEFT JOIN customers ON {looked_up}"
        else:
            columns = ", ".join(f"customers.{name}" for name in dict.fromkeys(self.search.texts))
            # A lookup per page row, whatever the page's size: joining 5,120 rows, the planner
            # would rather hash the whole customers table (1M rows, 400 ms) than seek them. The
            # LIMIT keeps the subquery from being flattened back into that join.
            join = (
                f"LEFT JOIN LATERAL (SELECT customers.id, {columns} FROM customers "  # noqa: S608
                f"WHERE {looked_up} LIMIT 1) AS customers ON true"
            )
        return Sql(
            f"WITH page AS ({page.text}) "  # noqa: S608 - see Sql
            "SELECT page.customer_id, page.name_length, page.field, page.strength, "
            f"(SELECT count(*) FROM page) AS read, {texts} "
            f"FROM page {join} "
            "WHERE customers.id IS NOT NULL OR (page.name_length, page.customer_id) IN "
            "(SELECT name_length, customer_id FROM page "
            "ORDER BY name_length DESC, customer_id DESC LIMIT 1)",
            (*page.parameters, *held.parameters),
        )

    def _page(self, size: int) -> Sql:
        """One index range per field and word (or condition), merged in rank order."""
        arms, parameters = [], []
        keyset = "" if self.after is None else " AND (name_length, customer_id) > (?, ?)"
        bounds = list(self.after or ())
        if self.upto is not None:
            keyset += " AND name_length <= ?"
            bounds.append(self.upto)
        for fields, strength, condition in self._ranges():
            arms.append(
                "SELECT customer_id, name_length, field, "  # noqa: S608 - see Sql
                f"{strength} AS strength FROM customer_words "
                f"WHERE location_id = ? AND field IN ({fields}) AND {condition.text}{keyset}"
            )
            parameters += [self.search.words.location_id, *condition.parameters, *bounds]
        merged = " UNION ALL ".join(arms)
        order = " ORDER BY name_length, customer_id, field LIMIT ?"
        return Sql(merged + order, (*parameters, size))

    def _ranges(self) -> list[tuple[str, int, Sql]]:
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

    def _held(self, size: int) -> Sql:
        """Whether a page row's customer holds every other word, at the bucket's strength."""
        found = [Sql("1 = 1")]
        for plan in self.others:
            strengths = self.bucket.strengths(plan, self.search.cap, single=False)
            if not strengths:
                return Sql("1 = 0")  # the word never reaches this tier
            if all(self._checkable(strength) for strength in strengths):
                found.append(self._probed(strengths, size) or self._windowed(strengths))
            else:
                found.append(self._forward(plan.word, strengths))
        return joined(found, " AND ")

    def _checkable(self, strength: Strength) -> bool:
        """Whether another word's rows of this strength can be read by probe or window.

        Not a short word starting too many words: those are checked through the forward index.
        """
        return strength.checkable

    def _mine(self, alias: str = "") -> Sql:
        codes = ", ".join(str(code) for code in self.codes)
        return Sql(
            f"{alias}location_id = ? AND {alias}field IN ({codes})",
            (self.search.words.location_id,),
        )

    def _probed(self, strengths: Sequence[Strength], size: int) -> Sql | None:
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
        budget = limits.PAGE_PROBES if self.search.words.sqlite else limits.PG_PAGE_PROBES
        if probes > limits.MAX_PROBES or probes * size > budget:
            return None
        mine, words = self._mine("w."), is_in(listed)
        return Sql(
            f"EXISTS (SELECT 1 FROM customer_words w WHERE {mine.text} AND w.{words.text} "  # noqa: S608
            "AND w.name_length = page.name_length AND w.customer_id = page.customer_id)",
            (*mine.parameters, *words.parameters),
        )

    def _forward(self, word: str, strengths: Sequence[Strength]) -> Sql:
        """The candidate holds ``word`` at one of ``strengths``: a seek on its own words.

        For a word whose matching words are too many to seek one by one ("c" starts tens of
        thousands), read where the candidate's words are: the forward index, one customer and
        field at a time. Without it each candidate went back to Python with its texts (a
        sparse "brow c" judged 6,800 of them, some 100 ms at 10^6 customers).
        """
        kinds = {strength.strength for strength in strengths}
        if INFIX in kinds:  # with PREFIX and EXACT: anywhere in the word
            inside = "instr(w.word, ?) > 0" if self.search.words.sqlite else "strpos(w.word, ?) > 0"
            conditions = [Sql(inside, (word,))]
        elif PREFIX in kinds:  # with EXACT: at its start
            conditions = [Sql("w.word >= ? AND w.word < ?", (word, successor(word)))]
        elif EXACT in kinds:
            conditions = [Sql("w.word = ?", (word,))]
        else:
            conditions = []
        conditions += [s.condition for s in strengths if s.strength == FUZZY]
        either = joined([Sql(f"({c.text})", c.parameters) for c in conditions], " OR ")
        mine = self._mine("w.")
        return Sql(
            f"EXISTS (SELECT 1 FROM customer_words w WHERE w.customer_id = page.customer_id "  # noqa: S608
            f"AND {mine.text} AND ({either.text}))",
            (*mine.parameters, *either.parameters),
        )

    def _windowed(self, strengths: Sequence[Strength]) -> Sql:
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
        return Sql(f"page.customer_id IN ({' UNION ALL '.join(selects)})", tuple(parameters))
