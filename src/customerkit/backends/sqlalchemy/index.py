"""Keeping the search word table in step with the customers table.

Every live customer has one ``customer_words`` row per (field, folded word), written in the
same transaction as the customer, so search never sees a half-written change. Rows are
deleted by their full primary key, recomputed from the customer's previous values, and a change
that leaves the searchable fields alone (staff, phone, a password) touches no word at all.

On SQLite each new word also goes into ``search_vocab`` and its FTS5 trigram index, which finds
words by infix. Both are append-only: a word nobody uses any more merely finds no rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, func, select

from customerkit.backends.sqlalchemy import convert, schema
from customerkit.backends.sqlalchemy.bulk import BulkInsert
from customerkit.model import Customer

# Words known to be in search_vocab already; past this many the cache starts over, so a bulk
# load's memory stays flat (INSERT OR IGNORE makes a forgotten word merely cost a lookup).
_KNOWN_WORDS_CAP = 200_000
_WORDS = BulkInsert(schema.customer_words)
_VOCABULARY = BulkInsert(schema.search_vocab, columns=["word"], prefix="OR IGNORE")
_DELETE = (
    "DELETE FROM customer_words WHERE location_id = ? AND field = ? AND word = ? "
    "AND customer_id = ? AND name_length = ?"
)
_C = schema.customers.c
_FTS_FILL = (
    "INSERT INTO search_vocab_fts(rowid, word) SELECT id, word FROM search_vocab WHERE id > ?"
)


#: A ``customer_words`` row, in the table's column order.
WordRow = tuple[str, int, str, str, int]


def word_rows(customer: Customer) -> list[WordRow]:
    """The ``customer_words`` rows of a customer (none unless it is live)."""
    found = convert.search_words(customer)
    if not found:
        return []
    name_length = len(convert.folded_name(customer))
    location_id, customer_id = customer.location_id, customer.id
    return [(location_id, code, word, customer_id, name_length) for code, word in found]


def _key_order(row: WordRow) -> tuple[str, int, str, int, str]:
    """A row's primary key, (location_id, field, word, name_length, customer_id)."""
    location_id, code, word, customer_id, name_length = row
    return location_id, code, word, name_length, customer_id


class WordWriter:
    """Writes and deletes a unit of work's search words."""

    def __init__(self, dialect: str) -> None:
        self._sqlite = dialect == "sqlite"
        self._known: set[str] = set()

    def insert(self, connection: Connection, customers: Iterable[Customer]) -> None:
        """Index the words of new customers."""
        rows = [row for customer in customers for row in word_rows(customer)]
        self._insert_rows(connection, rows)

    def _insert_rows(self, connection: Connection, rows: list[WordRow]) -> None:
        if not rows:
            return
        # In key order, consecutive rows land on the same B-tree pages.
        rows.sort(key=_key_order)
        _WORDS.run(connection, rows)
        if self._sqlite:
            self._add_vocabulary(connection, {row[2] for row in rows})

    def _add_vocabulary(self, connection: Connection, found: set[str]) -> None:
        new = found - self._known
        if not new:
            return
        # Ids only grow (INTEGER PRIMARY KEY, never deleted) and we hold the write lock, so the
        # words added now are exactly those above the current largest id.
        before = connection.scalar(select(func.coalesce(func.max(schema.search_vocab.c.id), 0)))
        _VOCABULARY.run(connection, [(word,) for word in sorted(new)])
        connection.exec_driver_sql(_FTS_FILL, (before,))
        if len(self._known) + len(new) > _KNOWN_WORDS_CAP:
            self._known.clear()
        self._known |= new

    def forget(self) -> None:
        """Drop the cache of known words (after a rollback undid some of them)."""
        self._known.clear()

    def delete(self, connection: Connection, customer: Customer) -> None:
        """Remove the words a customer was indexed under."""
        self._delete_rows(connection, word_rows(customer))

    @staticmethod
    def _delete_rows(connection: Connection, rows: list[WordRow]) -> None:
        if not rows:
            return
        # The whole row is the key (name_length is part of it): a point delete each.
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(_DELETE, rows)
        else:
            connection.exec_driver_sql(_DELETE.replace("?", "%s"), rows)

    def replace(self, connection: Connection, old: Customer, new: Customer) -> None:
        """Re-index a changed customer: only when its words (or name length) changed."""
        before, after = word_rows(old), word_rows(new)
        if before == after:
            return
        self._delete_rows(connection, before)
        self._insert_rows(connection, after)
