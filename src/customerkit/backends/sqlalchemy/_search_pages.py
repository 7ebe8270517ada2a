"""Reading a bucket's candidates: one statement per page, in rank order, continued by keyset.

Each page is a merge of one index range per field and listed word of the driving word (a
UNION ALL that SQLite runs as a MERGE and PostgreSQL as a Merge Append), in
``(name_length, customer_id)`` order; the same statement checks the other words (by probe, by
reading their rows in the page's name lengths, or, for a short word starting too many words
for either, on the candidate's own words through the forward index) and returns the texts of
the customers that hold them all. Written as text: see ``Sql``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

import attrs

from customerkit.backends.sqlalchemy import _search_limits as limits
from customerkit.backends.sqlalchemy import schema
from customerkit.backends.sqlalchemy._rows import SEARCH_FIELDS
from customerkit.backends.sqlalchemy._search_lookup import WordLookup, is_number_fragment
from customerkit.backends.sqlalchemy._search_plan import (
    Bucket,
    Counts,
    Plan,
    Sql,
    Strength,
    execute,
    is_in,
    joined,
    listed,
    pick_driver,
)
from customerkit.backends.sqlalchemy._search_rank import Judge
from customerkit.backends.sqlalchemy._word_starts import start_bits
from customerkit.backends.sqlalchemy.anchors import successor
from customerkit.search.rules import EXACT, FUZZY, INFIX, MIN_INFIX_LENGTH, PREFIX


@attrs.frozen(kw_only=True)
class SearchContext:
    """What every bucket of one search reads: the words, which may drive, how to judge."""

    words: WordLookup
    plans: dict[str, Plan]
    #: The words whose plans may drive any bucket (the others only where they are rare).
    drivers: frozenset[str]
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

    def look_up_infixes(self) -> None:
        """List the words each query word is inside of, for the first infix bucket (once)."""
        if self.words.infixes_found:
            return
        self.words.look_up_infixes()
        for word, plan in self.plans.items():
            self.plans[word] = self.words.with_infixes(plan)

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
        rare = self._rare_here(codes, tier)
        drivers = {w: plan for w, plan in self.plans.items() if w in self.drivers or w in rare}
        if tier <= INFIX and len(drivers) > 1:
            self._count_infixes(drivers, codes)
        word = pick_driver(drivers, self.counts, codes, tier)
        mergeable = drivers[word].mergeable(tier)
        rivals = [
            rival
            for rival in drivers
            if rival != word
            and drivers[rival].mergeable(tier) == mergeable
            # A word starting with the rival has no more entries up to the prefix tier.
            and (tier > PREFIX or not word.startswith(rival))
        ]
        if rivals and self._capped(word, codes, tier):
            self._recount(
                [(w, *key) for w in (word, *rivals) for key in self._capped(w, codes, tier)]
            )
            word = pick_driver(drivers, self.counts, codes, tier)
        return drivers[word]

    def _count_infixes(self, drivers: dict[str, Plan], codes: Sequence[int]) -> None:
        """Count the infix entries of the words that may drive an infix bucket, in one statement.

        The look-up counts exact and prefix entries only, which says nothing of the words a
        word is inside of: "jimenez eri" let "eri" drive its infix buckets, counted by its few
        "eric" and "erie" while "america" and "american" hold far more (171 ms). A word
        inside too many words to list counts as RECOUNT_CAP.
        """
        wanted = []
        for word, plan in drivers.items():
            counts = self.counts.get(word)
            inside = [s for s in plan.strengths if s.strength == INFIX]
            if counts is None or not inside:
                continue
            for code in codes:
                key = (code, INFIX)
                if key in counts.found:
                    continue
                if inside[0].listed is None:
                    counts.found[key] = limits.RECOUNT_CAP
                    self.recounted.add((word, *key))
                elif not inside[0].listed:
                    counts.found[key] = 0
                else:
                    wanted.append((word, *key))
        self._recount(wanted)

    def _rare_here(self, codes: Sequence[int], tier: int) -> set[str]:
        """Short words too common to drive the search, but few here: they may drive here.

        A 1-2 character word starts too many words to be read as a driver, yet the word
        itself may be rare: "inc lo" has 24 "lo" names against 59,000 "inc", whose exact
        buckets read every "inc" row to find them. Such a word drives a bucket where its
        count is exact (not capped) and its words reaching the tier are listed.
        """
        return {
            word
            for word, plan in self.plans.items()
            if word not in self.drivers
            and (counts := self.counts.get(word)) is not None
            and not counts.capped(codes, tier)
            and plan.mergeable(tier)
        }

    def rows_within(
        self, words: Sequence[str], codes: Sequence[int], tier: int
    ) -> list[int | None]:
        """Each word's entries on these fields at ``tier`` or better, None when too many.

        Capped counts are taken again up to RECOUNT_CAP first, in one statement; None when one
        is still there (or the word was not counted).
        """
        self._recount([(w, *key) for w in words for key in self._capped(w, codes, tier)])
        found: list[int | None] = []
        for word in words:
            counts = self.counts.get(word)
            rows = [] if counts is None else counts.within_each(codes, tier)
            capped = counts is None or any(n >= limits.RECOUNT_CAP for n in rows)
            found.append(None if capped else sum(rows))
        return found

    def _recount(self, wanted: list[tuple[str, int, int]]) -> None:
        """Count these (word, field code, strength) again, up to RECOUNT_CAP."""
        if not wanted:
            return
        for (w, code, strength), found in zip(wanted, self.words.recount(wanted), strict=True):
            self.counts[w].found[(code, strength)] = found
        self.recounted.update(wanted)

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
        driver = self.driver = search.driver(self.codes, bucket.tier)
        self.others = [plan for plan in search.plans.values() if plan.word != driver.word]
        self.strengths = bucket.strengths(driver, search.cap, single=single)
        self.after: tuple[int, str] | None = None  # keyset: the last row read
        self.upto: int | None = None  # the longest name length still wanted, when known
        #: A name length all of whose rows have been read (by a page read with its tie).
        self.through: int | None = None
        self.read = 0  # candidates read so far, held or not
        self.done = not self.codes or not self.strengths or search.empty(self.codes, bucket.tier)

    def page(self, size: int, *, tie: bool = False) -> Iterator[Any]:
        """The held rows of the next ``size``, and the page's last row, where it goes on.

        Each row: customer id, name length, field code, strength, rows read, texts (None
        unless held). Rows of customers not holding the other words stay in the database.
        ``tie``: also the rest of the rows tied with the ``size``-th on name length, up to
        MAX_PAGE of them.
        """
        last, read = None, 0
        for row in _in_page_order(self.search.words, self._statement(size, tie=tie)):
            last, read = row, row.read
            yield row
        self.read += read
        if last is not None:
            self.after = (last[1], last[0])
            if tie and read - size < limits.MAX_PAGE:
                self.through = last[1]
        self.done = last is None or read < size

    def _statement(self, size: int, *, tie: bool = False) -> Sql:
        """The page (a merge of index ranges), each row held or not, its texts if held.

        Only held rows look their customer up (a NULL key skips the seek); of the others
        only the page's last row is returned, for the keyset.
        """
        if tie:
            page = self._tied(size)
        else:
            merged = self._page(size)
            page = Sql(f"page AS ({merged.text})", merged.parameters)
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
            f"WITH {page.text} "  # noqa: S608 - see Sql
            "SELECT page.customer_id, page.name_length, page.field, page.strength, "
            f"(SELECT count(*) FROM page) AS read, {texts} "
            f"FROM page {join} "
            "WHERE customers.id IS NOT NULL OR (page.name_length, page.customer_id) IN "
            "(SELECT name_length, customer_id FROM page "
            "ORDER BY name_length DESC, customer_id DESC LIMIT 1)",
            (*page.parameters, *held.parameters),
        )

    def ties_in_one(self, size: int) -> bool:
        """Whether a first page of ``size`` rows is best read with its last row's tie.

        When it reads one listed word on one field (one index range: the rows of one name
        length are a seek away) and that word has ``size`` rows there, as counted. Not for a
        page of several ranges, planned again for a tie (a number's page has many), nor for a
        condition on words not listed, whose rows are read whole and sorted, again for a tie;
        nor for a word with fewer rows, which one page reads whole anyway: a number has a row
        or two (a one-word search counts no entries).
        """
        if len(self.ranges) != 1 or any(s.listed is None for s in self.strengths):
            return False
        if is_number_fragment(self.driver.word):
            return False
        counts = self.search.counts.get(self.driver.word)
        return counts is None or counts.within(self.codes, self.bucket.tier) >= size

    def _tied(self, size: int) -> Sql:
        """The first ``size`` rows and the rest of the last one's tie, as the CTE ``page``.

        A one-word search's candidates are its hits: those past the limit-th can only make the
        page by a name tied with it on length, which a next statement read (163 rows tie for
        "tires"). Read here, a search of one word takes one statement fewer.
        """
        head = self._page(size)
        tail = self._page(
            limits.MAX_PAGE,
            Sql(
                " AND name_length = (SELECT name_length FROM edge)"
                " AND customer_id > (SELECT customer_id FROM edge)"
            ),
        )
        return Sql(
            f"head AS ({head.text}), "  # noqa: S608 - see Sql
            "edge AS (SELECT name_length, customer_id FROM head "
            "ORDER BY name_length DESC, customer_id DESC LIMIT 1), "
            f"page AS (SELECT * FROM head UNION ALL SELECT * FROM ({tail.text}) AS tail)",
            (*head.parameters, *tail.parameters),
        )

    def _keyset(self) -> Sql:
        """Where the next page starts (after the last row read) and ends (``upto``)."""
        keyset = "" if self.after is None else " AND (name_length, customer_id) > (?, ?)"
        bounds = list(self.after or ())
        if self.upto is not None:
            keyset += " AND name_length <= ?"
            bounds.append(self.upto)
        return Sql(keyset, tuple(bounds))

    def _page(self, size: int, within: Sql | None = None) -> Sql:
        """One index range per field and word (or condition), merged in rank order.

        ``within``: the conditions on ``(name_length, customer_id)``; by default the keyset.
        """
        arms, parameters = [], []
        keyset, bounds = within or self._keyset()
        keyset = self.starts_condition + keyset
        order = " ORDER BY name_length, customer_id, field LIMIT ?"
        location_id = self.search.words.location_id
        ranges = self.ranges
        # PostgreSQL merges the arms' index ranges (Merge Append) only when each arm is
        # ordered and limited itself; else it read and sorted every row of every arm ("inc
        # lo": 79,000 rows of "inc" and "incorporated" for a page of 80, 29 ms against 0.3).
        limited = not self.search.words.sqlite and len(ranges) > 1
        for fields, strength, condition, vocabulary in ranges:
            if vocabulary is None:
                arm = (
                    "SELECT customer_id, name_length, field, "  # noqa: S608 - see Sql
                    f"{strength} AS strength FROM customer_words "
                    f"WHERE location_id = ? AND field IN ({fields}) AND {condition.text}{keyset}"
                )
                parameters += [location_id, *condition.parameters, *bounds]
            else:
                # A page's worth at most of each word's rows, each in rank order from its own
                # range; only those are sorted.
                arm = (
                    "SELECT page_words.customer_id, page_words.name_length, "  # noqa: S608
                    f"page_words.field, {strength} AS strength "
                    f"FROM ({vocabulary.text}) AS listed_words "
                    f"CROSS JOIN unnest(ARRAY[{fields}]) AS page_fields(code) "
                    "CROSS JOIN LATERAL (SELECT customer_id, name_length, field "
                    "FROM customer_words WHERE location_id = ? AND field = page_fields.code "
                    f"AND word = listed_words.word{keyset}{order}) AS page_words"
                )
                parameters += [*vocabulary.parameters, location_id, *bounds, size]
            if limited:
                arm = f"({arm}{order})"
                parameters.append(size)
            arms.append(arm)
        merged = " UNION ALL ".join(arms)
        return Sql(merged + order, (*parameters, size))

    @cached_property
    def ranges(self) -> list[tuple[str, int, Sql, Sql | None]]:
        """(fields, strength, condition, vocabulary) of each arm of the page's merge.

        One index range per field and listed word. For words not listed, one arm over all
        the fields, whose rows are sorted; on PostgreSQL some words are read in one arm word
        by word instead, each word and field its own range, at most a page from each (see
        ``_word_by_word``).
        """
        found = []
        for strength in self.strengths:
            vocabulary = self._word_by_word(strength)
            if strength.listed is None or vocabulary is not None:
                codes = ", ".join(str(code) for code in self.codes)
                found.append((codes, strength.strength, strength.condition, vocabulary))
                continue
            for code in self.codes:
                found += [(str(code), strength.strength, c, None) for c in strength.conditions()]
        return found

    def _word_by_word(self, strength: Strength) -> Sql | None:
        """PostgreSQL: the words to read one range each in one arm, or None to read as before.

        A prefix of text not listed: sorting its range reads all of it ("serv" at 10^7
        customers, 957,192 name rows of "services", "service" and 307 rarer words, 304 ms for
        a page of 80; 6 ms word by word). Words of text repeat, so the rows of a prefix sit in
        a few common words. Numbers do not: "0661" starts thousands of customer numbers of a
        row each, where a seek per word costs more than sorting their rows (at 10^7, number
        fragments went from 15.6 to 23.5 ms at p50 read word by word); nor do infixes, inside
        thousands of words.

        Listed numbers, more than MAX_NUMBER_ARMS ranges of them: each range merged is an arm
        PostgreSQL plans again on every page, and a fragment starting or inside 7 to 12
        numbers made 28 to 48 arms, 1.2-2 ms to plan against 0.5-1 ms to run (at 10^6). Each
        number has a row or two, so sorting them costs nothing; listed words of text keep
        their merge, which stops reading when the page is full.
        """
        number = is_number_fragment(self.driver.word)
        if strength.listed is None:
            wanted = strength.strength == PREFIX and not number
            return strength.vocabulary if wanted else None
        many = len(strength.listed) * len(self.codes) > limits.MAX_NUMBER_ARMS
        if self.search.words.sqlite or not number or not many:
            return None
        return listed(strength.listed)

    @cached_property
    def starts_condition(self) -> str:
        """The condition on a row's mask of word starts that the other words need, if any.

        Each masked other word (``masked``) needs its start's bits: rows without them are
        skipped inside the index scan, where checking them against the word's rows costs a
        seek or a read each ("sons e": one "sons" customer in 30 holds an "e" word). Only our
        own integers are spliced in (see ``Sql``).
        """
        mask = 0
        for word in self.masked:
            mask |= start_bits(word)
        if not mask:
            return ""
        column = "name_starts" if self.codes == [schema.NAME] else "starts"
        return f" AND ({column} & {mask}) = {mask}"

    @cached_property
    def masked(self) -> frozenset[str]:
        """The other words the page's mask rules out customers lacking, in this bucket.

        Those that can only match at a word's start here (not inside one, nor with a typo),
        and that the driver's own word does not start as ("moor mo": every "moor" customer has
        the bits of "mo", so they would rule nobody out).
        """
        driver = start_bits(self.driver.word)
        found = set()
        for plan in self.others:
            strengths = self.bucket.strengths(plan, self.search.cap, single=False)
            bits = start_bits(plan.word)
            if strengths and all(s.strength >= PREFIX for s in strengths) and driver & bits != bits:
                found.add(plan.word)
        return frozenset(found)

    def _held(self, size: int) -> Sql:
        """Whether a page row's customer holds every other word, at the bucket's strength.

        On SQLite a masked word (``masked``) is checked by probe or through the forward
        index: the page's rows are mostly customers holding it, so a seek each costs less
        than reading the word's rows in the page's window, where weighing the two would count
        the word's rows again (a statement of 1-3 ms). PostgreSQL weighs them without
        counting, and its window was as fast as the seeks at p50 (each way faster for some
        queries).
        """
        found = [Sql("1 = 1")]
        for plan in self.others:
            strengths = self.bucket.strengths(plan, self.search.cap, single=False)
            if not strengths:
                return Sql("1 = 0")  # the word never reaches this tier
            check = None
            if all(self._checkable(strength) for strength in strengths):
                check = self._probed(strengths, size)
                if (
                    check is None
                    and not (self.search.words.sqlite and plan.word in self.masked)
                    and not self._window_costs_more(plan.word, strengths, size)
                ):
                    check = self._windowed(strengths)
            found.append(check or self._forward(plan.word, strengths))
        return joined(found, " AND ")

    def _checkable(self, strength: Strength) -> bool:
        """Whether another word's rows of this strength can be read by probe or window.

        Not a short word starting too many words: those are checked through the forward index.
        """
        return strength.checkable

    def _window_costs_more(self, word: str, strengths: Sequence[Strength], size: int) -> bool:
        """Whether reading a word's rows in the page's window costs more than the forward index.

        The forward index costs a seek per candidate (and on SQLite stops with the page).
        On SQLite the window holds about the word's share of rows at the page's name lengths,
        the page's share of the driver's, each read into a list, and a range not listed is
        read at every name length to find them: a seek costs about FORWARD_ROWS such rows.
        Weighing needs both words counted (counting again costs 1-3 ms): for a range, or a
        page large enough. A word too common to count goes to the forward index when its
        range would be read whole ("comp s": 239,000 "s" words on NAME read for 320
        candidates, 14 ms) or the driver could be counted, the rarer ("hughes i": 69,000 "i"
        words on NAME against 8,750 "hughes", 44 ms against 5 ms); when neither can be
        counted, or infixes are wanted (not counted), the window, as before.
        """
        ranged = not all(s.listed is not None for s in strengths)
        if not self.search.words.sqlite:
            # A range is an array of the vocabulary's words there, a seek each: hundreds for a
            # 1-2 character word ("mo": 434), tens for a longer one, while a seek per
            # candidate costs about a third as much each ("comp s": 23 -> 8 ms with pages of
            # up to 320 checked that way).
            short = len(word) < MIN_INFIX_LENGTH
            return ranged and size <= limits.PG_FORWARD_PAGE // (1 if short else 4)
        small = size * limits.FORWARD_ROWS < limits.RECOUNT_CAP
        if self.bucket.tier < PREFIX or (small and not ranged):
            return False
        rows, driven = self.search.rows_within(
            [word, self.driver.word], self.codes, self.bucket.tier
        )
        if rows is None and (ranged or driven is not None):
            return True
        floor = limits.RECOUNT_CAP  # what an uncounted word has at least
        rows = floor if rows is None else rows
        window = rows * min(1.0, size / max(1, floor if driven is None else driven))
        if ranged:
            window += rows / limits.RANGE_ROWS_PER_ROW  # the range read for them
        return window > size * limits.FORWARD_ROWS

    def _mine(self, alias: str = "", *, field_seek: bool = True) -> Sql:
        codes = ", ".join(str(code) for code in self.codes)
        field = f"{alias}field" if field_seek else f"{alias}field + 0"
        return Sql(
            f"{alias}location_id = ? AND {field} IN ({codes})",
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
        # On PostgreSQL the field is no seek (``+ 0``): with it, the word table's key looked
        # cheaper to the planner, and read a word's whole range for every candidate ("inc
        # jack": 1.5 ms each, estimated one row).
        mine = self._mine("w.", field_seek=self.search.words.sqlite)
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


def _in_page_order(words: WordLookup, statement: Sql) -> Iterator[Any]:
    """The rows of a page statement, in the page's order, as the caller reads them.

    SQLite checks a row's other words only when it is fetched: a caller that stops once
    its page is full leaves the rest unchecked. Its outer select scans the materialised page
    in the order it was written (an ORDER BY there would sort, so check, every row first);
    the property tests, with pages of one or two rows, stop inside pages. PostgreSQL's rows
    are all computed before the first arrives, and sorted here.
    """
    if not words.sqlite:
        rows = execute(words.connection, statement)
        rows.sort(key=lambda row: (row[1], row[0], row[2]))  # the statement's order
        yield from rows
        return
    result = words.connection.exec_driver_sql(statement.text, statement.parameters)
    try:
        yield from result
    finally:
        result.close()
