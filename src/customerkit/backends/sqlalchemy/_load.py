"""A bulk load's writes (``SqlUnitOfWork.bulk_add``): column batches, indexes built last.

Each chunk of new customers becomes one ``executemany`` (``COPY`` on PostgreSQL) per table,
its rows built column by column from the chunk's values (``_load_rows``): the customers' rows,
their search words (a row per word on PostgreSQL; on SQLite one staged row per customer, spread
into the word table at commit: see ``_load_words``) and their history rows, without the unit
of work's per-row buffering. Nothing reads a load's words before it commits (the load commits
after its last chunk), so the vocabulary and its trigram index take the load's new words then,
when the load's indexes are built.

On an empty book (no customer row at all, tombstones included) the secondary indexes that no
rule needs during the load are dropped before the first chunk and created again at commit, in
the same transaction: building an index over sorted rows once costs less than keeping it up to
date row by row, and a rollback (or a killed process) brings the dropped indexes back with
everything else. On PostgreSQL the word table's primary key and the vocabulary's keys and
trigram index are built after the load too (the vocabulary is written once, at the end, and
skips the words it holds already). The customers' unique indexes stay: they are what refuses
a clashing number or username at the chunk that brings it. On a book with rows the indexes stay
as they are, since rebuilding them would cost time in proportion to the whole table rather
than to the load.

Every load ends with ANALYZE (see ``unit_of_work._BulkLoad.analyze``): the first search after
it is planned with the tables as they are now.
"""

from __future__ import annotations

from sqlalchemy import Connection, Index, select, text
from sqlalchemy.exc import IntegrityError

from customerkit.backends.sqlalchemy import _load_rows, schema
from customerkit.backends.sqlalchemy._bulk import BulkInsert
from customerkit.backends.sqlalchemy._customers import find_conflict
from customerkit.backends.sqlalchemy._load_words import WordStage
from customerkit.backends.sqlalchemy._repositories import HistoryRepository
from customerkit.backends.sqlalchemy._session import Session
from customerkit.ports import NewCustomers

_CUSTOMERS = BulkInsert(schema.customers)
_HISTORY = BulkInsert(schema.history)
#: Secondary indexes a load into an empty book builds after its rows: none of them decides a
#: rule (the unique indexes do, and stay).
DEFERRED_INDEXES = (
    "ix_customers_live_location",
    "ix_customers_live_created",
    "ix_customer_words_customer",
    "ix_history_customer",
)
#: PostgreSQL's too: the vocabulary's trigram index (GIN), which takes new words one by one
#: otherwise (measured at 10^5 customers: half the server's time of the whole load).
DEFERRED_POSTGRESQL_INDEXES = ("ix_search_vocab_trgm",)


def _deferred(dialect: str) -> list[Index]:
    names: tuple[str, ...] = DEFERRED_INDEXES
    if dialect == "postgresql":
        names += DEFERRED_POSTGRESQL_INDEXES
    found = [
        index
        for table in schema.metadata.sorted_tables
        for index in table.indexes
        if index.name in names
    ]
    return sorted(found, key=lambda index: str(index.name))


#: PostgreSQL's memory for a load's sorts (per sort; at 10^6 customers the words take ~8 million
#: rows of ~60 bytes).
SORT_MEMORY = "512MB"
#: PostgreSQL: tables whose primary and unique keys a load into an empty book adds after its
#: rows. The word table is its key on SQLite (``WITHOUT ROWID``); on PostgreSQL the key is an
#: index beside the rows, built after them faster than kept up to date word by word (measured
#: at 10^6 customers: built at the end in 21 s; kept, the chunks waited for the server and the
#: load took 140 s against 114). The vocabulary's two keys likewise: at 10^6 customers its
#: words went in in 13.9 s through both indexes, in 4.2 s without them, the keys then built in
#: 0.9 s.
DEFERRED_POSTGRESQL_KEYS = ("customer_words", "search_vocab")


def _drop_keys(connection: Connection, table: str) -> list[str]:
    """PostgreSQL: drop the table's primary and unique keys; the statements adding them back.

    Each key comes back as it was, under its name, from its own definition.
    """
    found = connection.exec_driver_sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(%s AS regclass) AND contype IN ('p', 'u') ORDER BY contype",
        (table,),
    ).all()
    for name, _ in found:
        connection.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    return [f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {rule}' for name, rule in found]


def _keeps_match_keys(connection: Connection, location_id: str) -> bool:
    """Whether the location's matching keys are kept (then each new customer needs its own).

    Read after the chunk's rows are written, as ``MatchKeyWriter.apply`` reads it: on
    PostgreSQL that waits for, and sees, a build of the keys running concurrently.
    """
    ready = schema.match_ready.c
    found = connection.execute(
        select(ready.kind).where(ready.kind == "customer", ready.location_id == location_id)
    ).first()
    return found is not None


def _is_empty(connection: Connection) -> bool:
    return connection.execute(text("SELECT 1 FROM customers LIMIT 1")).first() is None


class BulkLoader:
    """The bulk load of one unit of work: its chunks, and the indexes it dropped."""

    def __init__(self) -> None:
        self.started = False
        self._dropped: list[Index] = []
        #: Statements adding back the keys the load dropped (PostgreSQL).
        self._keys: list[str] = []
        self._words = WordStage()

    def add(self, uow: Session, history: HistoryRepository, chunk: NewCustomers) -> None:
        """Write one chunk: customers, their words, their history, their match keys."""
        uow.flush()  # whatever the unit of work buffered before comes first
        connection = uow.connection
        if not self.started:
            self._start(uow, connection)
        customer_rows = _load_rows.customer_rows(connection, chunk, _CUSTOMERS.columns)
        history_rows = _load_rows.history_rows(connection, chunk, history.allocate(len(chunk)))
        savepoint = connection.begin_nested()
        try:
            _CUSTOMERS.run(connection, customer_rows, converted=True)
            self._words.add(connection, chunk)
            _HISTORY.run(connection, history_rows, converted=True)
        except IntegrityError:
            savepoint.rollback()
            conflict = find_conflict(connection, chunk.customers())
            if conflict is None:
                raise
            raise conflict from None  # the driver's text quotes the clashing value
        savepoint.commit()
        if _keeps_match_keys(connection, chunk.location_id):
            for customer in chunk.customers():
                uow.match_keys.changed("customer", customer.id, customer)
            uow.match_keys.apply(connection)  # per chunk: the noted records are not kept

    def _start(self, uow: Session, connection: Connection) -> None:
        self.started = True
        uow.start_bulk()
        if _is_empty(connection):
            self._dropped = _deferred(connection.dialect.name)
            for index in self._dropped:
                index.drop(connection)
            if connection.dialect.name == "postgresql":
                for table in DEFERRED_POSTGRESQL_KEYS:
                    self._keys += _drop_keys(connection, table)
        if connection.dialect.name == "postgresql":
            # For this transaction only: the sorts that settle the words and build the indexes
            # run in memory (the defaults, 4 MiB and 64 MiB, spill them to disk).
            connection.exec_driver_sql(f"SET LOCAL work_mem = '{SORT_MEMORY}'")
            connection.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{SORT_MEMORY}'")

    def finish(self, connection: Connection) -> None:
        """Settle the staged words, then build the indexes dropped at the start.

        Before the commit, in its transaction.
        """
        self._words.settle(connection)
        keys, self._keys = self._keys, []
        for statement in keys:
            connection.exec_driver_sql(statement)
        dropped, self._dropped = self._dropped, []
        for index in dropped:
            index.create(connection)
        self.started = False

    def reset(self) -> None:
        """Forget the load (its transaction rolled back, taking the dropped indexes' drop)."""
        self._dropped = []
        self._keys = []
        self._words.reset()
        self.started = False
