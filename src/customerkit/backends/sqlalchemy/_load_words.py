"""A bulk load's search words: written per chunk, the vocabulary added once, at commit.

A customer has ~8 ``customer_words`` rows. On PostgreSQL each chunk's word rows go straight
into the word table through ``COPY`` (about a microsecond a row in the driver), and the server
takes them in while this process validates the next chunk. Measured at 2 x 10^5 customers, a
load into an empty book took 22 s this way against 30 s when the words were staged one row per
customer and spread into the table, sorted, after the last chunk (that sort had the client
waiting; the word table's key is built after the load either way), and a load into a book of
as many customers 27 s against 33 s (the server keeps the live indexes meanwhile).

On SQLite the database works inside this process, so there is no server to overlap with:
there a row bound from Python costs more than the database spreading a packed one (measured
at 10^5 customers: 11 µs a customer to bind each word row). A load stages one row per customer
instead, its words in one JSON array, each prefixed with its one-digit field code; at commit
SQLite spreads them (``json_each``) into the word table in key order.

Either way the load's distinct words, noted as they are written, join the vocabulary and its
trigram index in one sorted insert at commit. The staging table is temporary and lives in the
load's transaction: a rollback or a killed process takes it away with everything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text

from customerkit.backends.sqlalchemy import _rows
from customerkit.backends.sqlalchemy._bulk import BulkInsert
from customerkit.backends.sqlalchemy._words import WORDS, WordRow, add_words, word_masks
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
        Column("name_starts", Integer),
        Column("starts", Integer),
        Column("words", Text),
    )
)
_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (location_id TEXT, customer_id TEXT, "
    "name_length INTEGER, name_starts INTEGER, starts INTEGER, words TEXT)"
)
#: The staged words spread into the word table, in its key order: each staged word is
#: (field code, word), the code its first character. The location is one for the whole load,
#: so the sort leaves it out.
_SETTLE = (
    "INSERT INTO customer_words "
    "(location_id, field, word, customer_id, name_length, name_starts, starts) "
    "SELECT s.location_id, CAST(substr(w.value, 1, 1) AS INTEGER), substr(w.value, 2), "
    "s.customer_id, s.name_length, s.name_starts, s.starts "
    "FROM customer_words_loaded AS s, json_each(s.words) AS w "
    "ORDER BY 2, 3, 5, 4"
)
#: (field code, the code as the one leading digit of SQLite's staged words, value name) of
#: each searchable field.
_FIELDS = tuple((code, str(code), name) for code, name in _rows.SEARCH_FIELDS.values())
# The spreading reads one digit.
assert all(len(digit) == 1 for _, digit, _ in _FIELDS)  # noqa: S101


def _masks(found: list[tuple[int, str, tuple[str, ...]]]) -> tuple[int, int]:
    """A customer's ``name_starts`` and ``starts`` from its words, field by field."""
    return word_masks((code, word) for code, _, words in found for word in words)


def _json_array(words: list[str]) -> str:
    """``json.dumps(words, ensure_ascii=False)``, the encoder's own string quoting."""
    return "[" + ",".join(map(encode_basestring, words)) + "]"


class WordStage:
    """The search words of one unit of work's load."""

    def __init__(self) -> None:
        #: Whether words were written (or staged) that the vocabulary has not seen yet.
        self.pending = False
        #: Every word written: the vocabulary gets those it lacks at the end. Bounded by the
        #: vocabulary (words repeat across customers), not by the number of customers.
        self._distinct: set[str] = set()

    def add(self, connection: Connection, chunk: NewCustomers) -> None:
        """Write (PostgreSQL) or stage (SQLite) the words of the chunk's live customers."""
        self.pending = True
        if connection.dialect.name != "sqlite":
            WORDS.run(connection, self.word_rows(chunk), converted=True)
            return
        # Every time: a savepoint rolled back may have taken the table with it.
        connection.exec_driver_sql(_DDL)
        _STAGED.run(connection, self.staged_rows(chunk))

    def word_rows(self, chunk: NewCustomers) -> list[WordRow]:
        """The chunk's ``customer_words`` rows; their words are noted as seen."""
        location_id = chunk.location_id
        return [
            (location_id, code, word, customer_id, name_length, *masks)
            for customer_id, name_length, found in self._words(chunk)
            for masks in (_masks(found),)
            for code, _, words in found
            for word in words
        ]

    def staged_rows(self, chunk: NewCustomers) -> list[tuple[Any, ...]]:
        """SQLite: the chunk's staged rows, one per customer; their words are noted as seen."""
        location_id = chunk.location_id
        return [
            (
                location_id,
                customer_id,
                name_length,
                *_masks(found),
                _json_array([digit + word for _, digit, words in found for word in words]),
            )
            for customer_id, name_length, found in self._words(chunk)
        ]

    def _words(
        self, chunk: NewCustomers
    ) -> Iterator[tuple[str, int, list[tuple[int, str, tuple[str, ...]]]]]:
        """Per customer: its id, name length and (field code, its digit, words) per field."""
        words_of = _rows.words_of
        distinct = self._distinct
        for customer_id, values in zip(chunk.ids, chunk.values, strict=True):
            found = [(code, digit, words_of(values[name])) for code, digit, name in _FIELDS]
            for _, _, words in found:
                distinct.update(words)
            yield customer_id, len(fold(values["company_name"])), found

    def settle(self, connection: Connection) -> None:
        """Add the load's new words to the vocabulary (SQLite: spread the staged words first)."""
        if not self.pending:
            return
        self.pending = False
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(_DDL)
            connection.exec_driver_sql(_SETTLE)
            connection.exec_driver_sql(f"DROP TABLE {_STAGE}")
        add_words(connection, self._distinct)
        self._distinct = set()

    def reset(self) -> None:
        """Forget the load's words (their transaction ended and took them)."""
        self.pending = False
        self._distinct = set()
