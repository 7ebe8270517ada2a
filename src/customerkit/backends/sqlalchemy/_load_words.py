"""A bulk load's search words: one staged row per customer, spread into the word table at commit.

A customer has ~8 ``customer_words`` rows; written from Python, each costs the driver a row
of five parameters (measured at 10^5 customers on SQLite: 11 µs a customer to stage them).
A load stages one row per customer instead, its words in one value (a JSON array on SQLite;
on PostgreSQL separated by spaces, which no word holds, since psycopg dumps a Python list to
an array in Python), each word prefixed with its one-digit field code; at commit the database
spreads them (``json_each``, ``string_to_array``) into the word table in key order. The load's
distinct words, noted while staging, join the vocabulary and its trigram index in one
sorted insert.

The staging table is temporary and lives in the load's transaction: a rollback or a killed
process takes it away with everything else.
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text

from customerkit.backends.sqlalchemy import _rows
from customerkit.backends.sqlalchemy._bulk import BulkInsert
from customerkit.backends.sqlalchemy._words import add_words
from customerkit.ports import NewCustomers
from customerkit.text import fold

_STAGE = "customer_words_loaded"
_STAGED = BulkInsert(
    Table(
        _STAGE,
        MetaData(),
        Column("location_id", Text),
        Column("customer_id", Text),
        Column("name_length", Integer),
        Column("words", Text),
    )
)
_DDL = {
    "sqlite": f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
    "(location_id TEXT, customer_id TEXT, name_length INTEGER, words TEXT)",
    "postgresql": f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
    "(location_id text, customer_id text, name_length integer, words text) ON COMMIT DROP",
}
#: The staged words spread into the word table, in its key order: each staged word is
#: (field code, word), the code its first character. The location is one for the whole load,
#: so the sort leaves it out. PostgreSQL sorts by one text made of the other four parts, in
#: the same order (a word holds no control character; the name's length is zero-padded): its
#: abbreviated keys work on the first sort key only, and that key then decides nearly every
#: comparison (10^6 customers: the settling insert 42 -> 26-30 s).
_SETTLE = {
    "sqlite": "INSERT INTO customer_words (location_id, field, word, customer_id, name_length) "
    "SELECT s.location_id, CAST(substr(w.value, 1, 1) AS INTEGER), substr(w.value, 2), "
    "s.customer_id, s.name_length FROM customer_words_loaded AS s, json_each(s.words) AS w "
    "ORDER BY 2, 3, 5, 4",
    "postgresql": "INSERT INTO customer_words (location_id, field, word, customer_id, name_length) "
    "SELECT s.location_id, CAST(substr(w, 1, 1) AS smallint), substr(w, 2) "
    'COLLATE "C", s.customer_id COLLATE "C", s.name_length '
    "FROM customer_words_loaded AS s, unnest(string_to_array(s.words, ' ')) AS w "
    "ORDER BY (w || chr(1) || lpad(CAST(s.name_length AS text), 10, '0') || chr(1) "
    '|| s.customer_id) COLLATE "C"',
}
_CODES = tuple((str(code), name) for code, name in _rows.SEARCH_FIELDS.values())
assert all(len(code) == 1 for code, _ in _CODES)  # noqa: S101 - the spreading reads one digit


def _json_array(words: list[str]) -> str:
    """``json.dumps(words, ensure_ascii=False)``, the encoder's own string quoting."""
    return "[" + ",".join(map(encode_basestring, words)) + "]"


class WordStage:
    """The staged words of one unit of work's load."""

    def __init__(self) -> None:
        self.staged = False
        #: Every word staged: the vocabulary gets those it lacks at the end. Bounded by the
        #: vocabulary (words repeat across customers), not by the number of customers.
        self._distinct: set[str] = set()

    def add(self, connection: Connection, chunk: NewCustomers) -> None:
        """Stage the words of the chunk's customers (every new customer is live)."""
        rows = self.staged_rows(chunk, connection.dialect.name)
        # Every time: a savepoint rolled back may have taken the table with it.
        connection.exec_driver_sql(_DDL[connection.dialect.name])
        self.staged = True
        _STAGED.run(connection, rows)

    def staged_rows(self, chunk: NewCustomers, dialect: str) -> list[tuple[Any, ...]]:
        """The chunk's staged rows, one per customer; their words are noted as seen."""
        words_of = _rows.words_of
        pack: Any = _json_array if dialect == "sqlite" else " ".join
        location_id = chunk.location_id
        rows = []
        distinct = self._distinct
        for customer_id, values in zip(chunk.ids, chunk.values, strict=True):
            found = [(code, words_of(values[name])) for code, name in _CODES]
            for _, words in found:
                distinct.update(words)
            packed = pack([code + word for code, words in found for word in words])
            rows.append((location_id, customer_id, len(fold(values["company_name"])), packed))
        return rows

    def settle(self, connection: Connection) -> None:
        """Spread the staged words into the word table and the vocabulary, in key order."""
        if not self.staged:
            return
        self.staged = False
        dialect = connection.dialect.name
        connection.exec_driver_sql(_DDL[dialect])
        connection.exec_driver_sql(_SETTLE[dialect])
        add_words(connection, self._distinct)
        self._distinct = set()
        connection.exec_driver_sql("DROP TABLE customer_words_loaded")

    def reset(self) -> None:
        """Forget the staged words (their transaction ended and took the table)."""
        self.staged = False
        self._distinct = set()
