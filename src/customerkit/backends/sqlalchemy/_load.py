"""A bulk load's writes (``SqlUnitOfWork.bulk_add``): column batches, indexes built last.

Each chunk of new customers becomes one ``executemany`` (``COPY`` on PostgreSQL) per table:
the customers' rows, their search words into the unindexed staging table (sorted into the word
table, the vocabulary and its trigram index once, at commit: see ``_words.WordWriter``) and
their history rows, without the unit of work's per-row buffering.

On an empty book (no customer row at all, tombstones included) the secondary indexes that no
rule needs during the load are dropped before the first chunk and created again at commit, in
the same transaction: building an index over sorted rows once costs less than keeping it up to
date row by row, and a rollback (or a killed process) brings the dropped indexes back with
everything else. The unique indexes stay: they are what refuses a clashing number or username
at the chunk that brings it. On a book with rows the indexes stay as they are, since rebuilding
them would cost time in proportion to the whole table rather than to the load.

Every load ends with ANALYZE (see ``unit_of_work._BulkLoad.analyze``): the first search after
it is planned with the tables as they are now.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Index, text
from sqlalchemy.exc import IntegrityError

from customerkit.backends.sqlalchemy import _rows, schema
from customerkit.backends.sqlalchemy._bulk import BulkInsert, as_tuple
from customerkit.backends.sqlalchemy._customers import find_conflict
from customerkit.backends.sqlalchemy._repositories import HistoryRepository
from customerkit.backends.sqlalchemy._session import Session
from customerkit.model import ChangeRecord, Customer

_CUSTOMERS = BulkInsert(schema.customers)
_HISTORY = BulkInsert(schema.history)
#: Secondary indexes a load into an empty book builds after its rows: none of them decides a
#: rule (the unique indexes do, and stay).
DEFERRED_INDEXES = (
    "ix_customers_live_location",
    "ix_customers_live_created",
    "ix_history_customer",
)


def _deferred() -> list[Index]:
    found = [
        index
        for table in (schema.customers, schema.history)
        for index in table.indexes
        if index.name in DEFERRED_INDEXES
    ]
    return sorted(found, key=lambda index: str(index.name))


def _is_empty(connection: Connection) -> bool:
    return connection.execute(text("SELECT 1 FROM customers LIMIT 1")).first() is None


class BulkLoader:
    """The bulk load of one unit of work: its chunks, and the indexes it dropped."""

    def __init__(self) -> None:
        self.started = False
        self._dropped: list[Index] = []

    def add(
        self,
        uow: Session,
        history: HistoryRepository,
        customers: Sequence[Customer],
        records: Sequence[ChangeRecord],
    ) -> None:
        """Write one chunk: customers, their words, their history, their match keys."""
        uow.flush()  # whatever the unit of work buffered before comes first
        connection = uow.connection
        if not self.started:
            self._start(uow, connection)
        customer_rows = [
            as_tuple(_rows.customer_row(customer), _CUSTOMERS.columns) for customer in customers
        ]
        seqs = history.allocate(len(records))
        history_rows = [
            (
                seq,
                record.entity,
                record.entity_id,
                record.customer_id,
                record.action,
                record.actor_id,
                record.at,
                _rows.dumps_changes(record.changes),
            )
            for seq, record in zip(seqs, records, strict=True)
        ]
        savepoint = connection.begin_nested()
        try:
            _CUSTOMERS.run(connection, customer_rows)
            uow.words.insert(connection, customers)
            _HISTORY.run(connection, history_rows)
        except IntegrityError:
            savepoint.rollback()
            uow.words.forget()
            conflict = find_conflict(connection, customers)
            if conflict is None:
                raise
            raise conflict from None  # the driver's text quotes the clashing value
        savepoint.commit()
        for customer in customers:
            uow.match_keys.changed("customer", customer.id, customer)
        uow.match_keys.apply(connection)  # per chunk: the noted records are not kept

    def _start(self, uow: Session, connection: Connection) -> None:
        self.started = True
        uow.start_bulk()
        if _is_empty(connection):
            self._dropped = _deferred()
            for index in self._dropped:
                index.drop(connection)

    def finish(self, connection: Connection) -> None:
        """Build the indexes dropped at the start (before the commit, in its transaction)."""
        dropped, self._dropped = self._dropped, []
        for index in dropped:
            index.create(connection)
        self.started = False

    def reset(self) -> None:
        """Forget the load (its transaction rolled back, taking the dropped indexes' drop)."""
        self._dropped = []
        self.started = False
