"""Keeping the search word table in step with the customers table.

Every live customer has one ``customer_words`` row per (field, folded word), written in the
same transaction as the customer, so search never sees a half-written change. Rows are
deleted by their full primary key, recomputed from the customer's previous values, and a change
that leaves the searchable fields alone (staff, phone, a password) touches no word at all.

Each new word also goes into ``search_vocab``, whose trigram index (FTS5 on SQLite, pg_trgm on
PostgreSQL) finds words by infix. It is append-only: a word nobody uses any more merely finds
no rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Column, Connection, MetaData, Table, func, select

from customerkit.backends.sqlalchemy import _rows, schema
from customerkit.backends.sqlalchemy._bulk import BulkInsert
from customerkit.backends.sqlalchemy._word_starts import start_bits
from customerkit.model import Customer

# Words known to be in search_vocab already; past this many the cache starts over, so a bulk
# load's memory stays flat (INSERT OR IGNORE makes a forgotten word merely cost a lookup).
_KNOWN_WORDS_CAP = 200_000
#: ``customer_words`` rows, ``WordRow`` tuples (``COPY`` on PostgreSQL).
WORDS = BulkInsert(schema.customer_words)
#: PostgreSQL: new words in one statement, an array parameter. Words the vocabulary holds are
#: skipped before they are inserted (a probe of its index; or one pass over it where a bulk
#: load into an empty book dropped its keys: see ``_load``); a word another transaction adds
#: meanwhile is skipped after waiting for it to commit or roll back.
_PG_NEW_WORDS = (
    "INSERT INTO search_vocab(word) SELECT w FROM unnest(CAST(%s AS text[])) AS w "
    "WHERE NOT EXISTS (SELECT 1 FROM search_vocab AS v WHERE v.word = w) ON CONFLICT DO NOTHING"
)
#: SQLite: new words in one statement, a JSON array parameter (at 10^6 customers' 1.2 million
#: words: 0.7 s, where an ``executemany`` of one row per word took 1.9-2.5 s).
_SQLITE_NEW_WORDS = "INSERT OR IGNORE INTO search_vocab(word) SELECT value FROM json_each(?)"
_DELETE = (
    "DELETE FROM customer_words WHERE location_id = ? AND field = ? AND word = ? "
    "AND customer_id = ? AND name_length = ?"
)
_C = schema.customers.c
_FTS_FILL = (
    "INSERT INTO search_vocab_fts(rowid, word) SELECT id, word FROM search_vocab WHERE id > ?"
)


#: A ``customer_words`` row, in the table's column order.
WordRow = tuple[str, int, str, str, int, int, int]


def word_rows(customer: Customer) -> list[WordRow]:
    """The ``customer_words`` rows of a customer (none unless it is live)."""
    found = _rows.search_words(customer)
    if not found:
        return []
    name_length = len(_rows.folded_name(customer))
    location_id, customer_id = customer.location_id, customer.id
    name_starts, starts = word_masks(found)
    return [
        (location_id, code, word, customer_id, name_length, name_starts, starts)
        for code, word in found
    ]


def word_masks(found: Iterable[tuple[int, str]]) -> tuple[int, int]:
    """A customer's ``name_starts`` and ``starts`` from its (field code, word) pairs."""
    name_starts = starts = 0
    for code, word in found:
        bits = start_bits(word)
        starts |= bits
        if code == schema.NAME:
            name_starts |= bits
    return name_starts, starts


def _key_order(row: WordRow) -> tuple[str, int, str, int, str]:
    """A row's primary key, (location_id, field, word, name_length, customer_id)."""
    location_id, code, word, customer_id, name_length = row[:5]
    return location_id, code, word, name_length, customer_id


#: A bulk load's word rows wait here, unindexed, until the load's reads or commit.
_STAGE = "customer_words_load"
_STAGED = BulkInsert(
    Table(_STAGE, MetaData(), *(Column(c.name, c.type) for c in schema.customer_words.columns))
)
_STAGE_DDL = {
    "sqlite": "CREATE TEMP TABLE IF NOT EXISTS customer_words_load AS "
    "SELECT * FROM customer_words WHERE 0",
    "postgresql": "CREATE TEMP TABLE IF NOT EXISTS customer_words_load "
    "(LIKE customer_words INCLUDING DEFAULTS) ON COMMIT DROP",
}
_SETTLE = (
    "INSERT INTO customer_words "
    "(location_id, field, word, customer_id, name_length, name_starts, starts) "
    "SELECT location_id, field, word, customer_id, name_length, name_starts, starts "
    "FROM customer_words_load "
    "ORDER BY location_id, field, word, name_length, customer_id"
)
_SETTLE_VOCABULARY = {
    "sqlite": "INSERT OR IGNORE INTO search_vocab(word) "
    "SELECT DISTINCT word FROM customer_words_load ORDER BY word",
    "postgresql": "INSERT INTO search_vocab(word) "
    "SELECT DISTINCT word FROM customer_words_load ORDER BY word ON CONFLICT DO NOTHING",
}


class WordWriter:
    """Writes and deletes a unit of work's search words.

    In a bulk load (``staging``) new words go to a temporary table without any index
    first, and into the word table in one sorted pass when the load reads or commits: rows
    inserted in key order fill the word table's B-tree page after page, where batches of
    rows land all over it (measured at a million customers, ~8 rows each). On SQLite the
    vocabulary and its trigram index get the load's new words in that pass too.
    """

    def __init__(self, dialect: str) -> None:
        self._sqlite = dialect == "sqlite"
        self._known: set[str] = set()
        #: Whether new words are staged (set once a unit of work turns out to be a bulk load).
        self.staging = False
        self._staged = False

    def insert(self, connection: Connection, customers: Iterable[Customer]) -> None:
        """Index the words of new customers."""
        rows = [row for customer in customers for row in word_rows(customer)]
        if self.staging and rows:
            # Every time: a savepoint rolled back may have taken the table with it.
            connection.exec_driver_sql(_STAGE_DDL[connection.dialect.name])
            self._staged = True
            _STAGED.run(connection, rows)
            return
        self._insert_rows(connection, rows)

    def settle(self, connection: Connection) -> None:
        """Move the staged words into the word table (and the vocabulary), in key order."""
        if not self._staged:
            return
        connection.exec_driver_sql(_STAGE_DDL[connection.dialect.name])
        if self._sqlite:
            before = connection.scalar(select(func.coalesce(func.max(schema.search_vocab.c.id), 0)))
            connection.exec_driver_sql(_SETTLE_VOCABULARY["sqlite"])
            connection.exec_driver_sql(_FTS_FILL, (before,))
        else:
            connection.exec_driver_sql(_SETTLE_VOCABULARY["postgresql"])
        connection.exec_driver_sql(_SETTLE)
        connection.exec_driver_sql("DROP TABLE customer_words_load")
        self._staged = False

    def _insert_rows(self, connection: Connection, rows: list[WordRow]) -> None:
        if not rows:
            return
        # In key order, consecutive rows land on the same B-tree pages.
        rows.sort(key=_key_order)
        WORDS.run(connection, rows)
        self._add_vocabulary(connection, {row[2] for row in rows})

    def _add_vocabulary(self, connection: Connection, found: set[str]) -> None:
        new = found - self._known
        if new:
            add_words(connection, new)
            self._remember(new)

    def _remember(self, new: set[str]) -> None:
        if len(self._known) + len(new) > _KNOWN_WORDS_CAP:
            self._known.clear()
        self._known |= new

    def forget(self) -> None:
        """Drop the cache of known words (after a rollback undid some of them)."""
        self._known.clear()

    def reset(self) -> None:
        """Forget everything about the transaction that ended (its staged table went with it)."""
        self._known.clear()
        self.staging = self._staged = False

    def delete(self, connection: Connection, customer: Customer) -> None:
        """Remove the words a customer was indexed under."""
        self._delete_rows(connection, word_rows(customer))

    @staticmethod
    def _delete_rows(connection: Connection, rows: list[WordRow]) -> None:
        if not rows:
            return
        # The key is recomputed whole (name_length is part of it): a point delete each.
        keys = [row[:5] for row in rows]
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(_DELETE, keys)
        else:
            connection.exec_driver_sql(_DELETE.replace("?", "%s"), keys)

    def replace(self, connection: Connection, old: Customer, new: Customer) -> None:
        """Re-index a changed customer: only when its words (or name length) changed."""
        before, after = word_rows(old), word_rows(new)
        if before == after:
            return
        self._delete_rows(connection, before)
        self._insert_rows(connection, after)


def add_words(connection: Connection, found: Iterable[str]) -> None:
    """Add words to the vocabulary (and SQLite's trigram index), skipping those it holds.

    In the vocabulary's order (binary on both databases), so its B-tree fills in order.
    """
    words = sorted(found)
    if connection.dialect.name != "sqlite":
        connection.exec_driver_sql(_PG_NEW_WORDS, (words,))
        return
    # Ids only grow (INTEGER PRIMARY KEY, never deleted) and we hold the write lock, so the
    # words added now are exactly those above the current largest id.
    before = connection.scalar(select(func.coalesce(func.max(schema.search_vocab.c.id), 0)))
    connection.exec_driver_sql(_SQLITE_NEW_WORDS, (json.dumps(words),))
    connection.exec_driver_sql(_FTS_FILL, (before,))
