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
   One statement looks up every query word's lists, and the counts of its rows (below);
   the infix lists come from a second one, when the first infix bucket is reached.
2. *Buckets*, in rank order: by tier (exact, prefix, infix, fuzzy), then hits whose every
   word is best on NAME before the others. A hit ranks by its weakest word, so bucket
   ``(t, NAME)`` holds customers with every word matching at ``t`` or better on NAME, and
   ``(t, other)`` those with every word matching at ``t`` or better in any field; customers
   of an earlier bucket are skipped. When a word has no exact match in the index, no hit
   ranks above the prefix tier: the tiers are capped there.
3. The *driver*, the rarest word on the bucket's fields at its tier (that can drive: not a
   1-2 character word matching a large share of the index, unless its own entries there are
   few and listed; counted per field, capped, and counted again further when the word
   picked is capped and another could drive), gives each bucket its candidates: one
   statement per page reads its rows in ``(name_length, customer_id)`` order, a merge of one
   index range per field and listed word (SQLite's MERGE (UNION ALL), PostgreSQL's Merge
   Append), continued by keyset, each page 4x larger, or larger still when the bucket's
   yield so far says the hits still wanted take more. The same statement
   checks the other words, at the bucket's tier and fields: by an index probe on the
   candidate's full key when their listed words are few (and, on PostgreSQL, the page small:
   a seek costs more there), else by reading their rows within the page's name lengths once,
   a seek per vocabulary word, or, where that reads more (weighed on the words' counts on
   SQLite; a range on PostgreSQL's small pages), by a seek on each candidate's own words.
   Only the customers that hold every word come back, with their stored texts, looked up
   one by one; SQLite checks a row only when it is fetched, so a full page stops early.
4. A candidate of bucket ``(t, NAME ? 0 : 1)`` with name length ``L`` ranks at best
   ``(-t, 0 or 1, L)``; words the database could not check (a 1-2 character word starting
   too many words) can only make it worse. The candidates are judged with the oracle's rules
   (``word_strength``, ``reported_field``, ``rank_key``, ``score``) on their stored texts;
   for a one-word query the bucket and row *are* the tier and field, and only the folded name
   is needed, to break ties. Once the ``limit``-th best key found ranks before the next
   candidate's bound (or a whole bucket's), nobody further down can make the page: stop.
   Hits tied with the last one on (tier, field, name length) are all read: names decide.
   A one-word search reads its first ``limit`` candidates and the rest of the last one's tie
   in its first statement, when they are one index range.

Results equal ``oracle_search`` by construction; property tests check it on random data,
with the page sizes and list limits forced down so that every path runs.

The steps live in private modules, each importing only those below it: ``_search_lookup``
(the look-up statement and plans, 1), ``_search_plan`` (plans, buckets and drivers as plain
values, 2-3), ``_search_pages`` (the page statements, 3), ``_search_rank`` (the judge and
the best hits, 4), ``_search_limits`` (page sizes and budgets) and ``_pg_session`` (the
settings of every PostgreSQL connection).
"""

from __future__ import annotations

from sqlalchemy import Connection

from customerkit.backends.sqlalchemy import _search_limits as limits
from customerkit.backends.sqlalchemy import schema
from customerkit.backends.sqlalchemy._rows import SEARCH_FIELDS
from customerkit.backends.sqlalchemy._search_lookup import WordLookup, indexed_words
from customerkit.backends.sqlalchemy._search_pages import Candidates, SearchContext
from customerkit.backends.sqlalchemy._search_plan import buckets
from customerkit.backends.sqlalchemy._search_rank import BestHits, Judge
from customerkit.model import SearchField
from customerkit.search.query import ALL_FIELDS, RankedMatch, SearchQuery
from customerkit.search.rules import EXACT, INFIX
from customerkit.text import fold

_FIELD_OF_CODE = {SEARCH_FIELDS[field][0]: field for field in ALL_FIELDS}


def search(
    connection: Connection, location_id: str, query: SearchQuery, *, limit: int
) -> list[RankedMatch]:
    """The live customers of a location matching ``query``, ranked as ``oracle_search`` does."""
    if not query.words:
        return []
    words = WordLookup(connection, location_id, query)
    words.look_up()
    indexed, cap, counts = indexed_words(words, query)
    plans = {word: words.plan(word) for word in dict.fromkeys(indexed)}
    drivers = frozenset(plans)
    for word in query.words:
        if word not in plans:
            plans[word] = words.common_plan(word)
    # One word, uncapped: a hit's bucket and row are its tier and field; its name breaks ties.
    judge = None
    if len(plans) > 1 or len(set(query.words)) > 1 or cap < EXACT:
        judge = Judge(query)
    context = SearchContext(
        words=words, plans=plans, drivers=drivers, counts=counts, cap=cap, judge=judge
    )
    best = BestHits(location_id, limit)
    for bucket in buckets(words.codes, list(plans.values()), cap):
        if best.closed_before((-bucket.tier, bucket.not_name)):
            break  # this bucket and every later one rank after the page
        if bucket.tier <= INFIX:
            context.look_up_infixes()
        if _read_bucket(Candidates(context, bucket), best):
            break
    return best.result()


def _next_size(size: int, read: int, held: int, wanted: int) -> int:
    """The next page's size: 4x larger, or what the bucket's yield so far says it takes.

    ``read`` candidates of the bucket gave ``held`` new customers holding every word; the
    page still wants ``wanted`` hits. A sparse bucket ("sons e": a customer in 80 named
    "sons" holds an "e" word) then reads the candidates it needs in one page instead of
    several growing ones, each a statement to plan and run.
    """
    needed = wanted * read // max(held, 1)
    return min(max(size * 4, needed), limits.MAX_PAGE)


def _read_bucket(candidates: Candidates, best: BestHits) -> bool:
    """Judge a bucket's candidates into the best hits; True once nobody further can make them."""
    bucket = candidates.bucket
    judge = candidates.search.judge
    # One word: every candidate is a hit; the first page is the limit's and its tie's, when
    # the tie is a seek away.
    tie = judge is None and candidates.ties_in_one(best.limit)
    size = best.limit if tie else limits.FIRST_PAGE * best.limit
    held = 0
    while not candidates.done:
        for customer_id, length, code, strength, _, name, *fields in candidates.page(size, tie=tie):
            if best.closed_before((-bucket.tier, bucket.not_name, length)):
                return True
            if name is None or customer_id in best.seen:
                continue  # lacks another word here (maybe not in a later bucket), or judged
            held += 1
            best.seen.add(customer_id)
            if judge is None:
                field = SearchField.NAME if code == schema.NAME else _FIELD_OF_CODE[code]
                best.add(customer_id, name, strength, field)
                continue
            if best.closed_before((-bucket.tier, bucket.not_name, length, fold(name))):
                continue  # tied on length with the last hit, a later name: cannot make the page
            matched = judge.match(fields)
            if matched is not None:
                best.add(customer_id, name, *matched)
        size = _next_size(size, candidates.read, held, best.limit - len(best.hits))
        tie = False
        if candidates.upto is None and candidates.after is not None:
            longest = candidates.after[0]
            if best.closed_before((-bucket.tier, bucket.not_name, longest + 1)):
                if candidates.through == longest:
                    return False  # the page read the whole tie: the bucket has no better
                # Only the rest of the last name length's tie can still make the page: read
                # just that (163 rows tie for "tires", where a next page would read 320).
                candidates.upto, size = longest, limits.MAX_PAGE
    return False
