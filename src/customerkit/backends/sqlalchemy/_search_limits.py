"""How much a database search reads at a time: its page sizes, list lengths and probe budgets.

Tuning only: every value gives the same results, only other statements. The modules of the
search read them from here at run time (``_search_limits.MAX_PAGE``), so that the tests can
force them down and run every path on small data.
"""

from __future__ import annotations

#: Index entries a short query word may match and still be indexed (see ``indexed_words``).
COUNT_CAP = 5000
#: Index entries per field and strength a word's count is taken up to again when the word
#: picked to drive a bucket reached its share of COUNT_CAP there, and another could drive: a
#: capped count is a floor, and cannot tell which word is rarer ("moore mar" on NAME: 9,687
#: against 39,687 entries, both counted as 625 or more, and the common word drove, 50 ms).
#: Counting 16,384 entries costs about 1 ms from a warm index.
RECOUNT_CAP = 16384
#: Distinct indexed words read one index range each; more are read as one condition, whose
#: rows the database sorts.
MAX_LISTED = 32
#: PostgreSQL: index ranges (listed words times fields) a page merges as arms of its own, at
#: most, when the words are numbers; more are read word by word in one arm (see
#: ``Candidates._word_by_word``).
MAX_NUMBER_ARMS = 8
#: Index seeks per candidate (listed words times fields) to check another word by probing.
MAX_PROBES = 8
#: Index seeks per page, at most, to check another word by probing; past them a page reads the
#: word's rows in its name lengths once instead. A seek costs some 10 us on PostgreSQL (a whole
#: descent, buffer pins), 1-2 us on SQLite, against 0.2 us per row read into a hash. Measured
#: on SQLite at 10^6 customers: 40,960 (a full page probed) made a sparse two-word search
#: ("haulin tuc") read 25,000 rows at 4 us each; 2,048 gave the two-word queries p95 24 ms
#: against 57, number fragments unchanged.
PAGE_PROBES = 2048
PG_PAGE_PROBES = 1024
#: What a seek on a candidate's own words (the forward index) costs, in rows of another word
#: read into a page's window: about 4 us against 1 us on SQLite at 10^6 customers (SQLite only).
FORWARD_ROWS = 4
#: PostgreSQL: the largest page whose candidates are checked for a 1-2 character word not
#: listed through the forward index (a quarter of it for a longer word), not by the word's
#: vocabulary array; measured at 10^6 customers (see ``Candidates._window_costs_more``).
PG_FORWARD_PAGE = 320
#: Rows of a range scanned (and left: outside the page's name lengths) per row read into the
#: window, on SQLite: 0.05 us against 1 us.
RANGE_ROWS_PER_ROW = 20
#: Distinct words a short common word may start, at most, to be checked in the database.
MAX_CHECKED = 1024
#: Candidates of a class's first page, as a multiple of the limit; each next page is 4x larger,
#: up to MAX_PAGE.
FIRST_PAGE = 4
MAX_PAGE = 5120
