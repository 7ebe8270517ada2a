"""The SQL unit of work: one connection, one transaction, and a buffer of pending inserts.

New customers (with their search words) and history records are buffered and written with
``executemany`` in batches: ``create_many`` adds a million customers one ``add`` at a time,
and a statement per row would take minutes. The buffer is flushed before any read or other
write, so the repositories always see their own writes.

Uniqueness clashes of buffered customers surface at the flush, later than the memory backend
raises them (at ``add``). To give callers the same error anyway, a unit of work left by an
exception while customers are still buffered checks them first: the clash the memory backend
would have raised at ``add`` wins over whatever came later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from functools import cached_property
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from customerkit.backends.sqlalchemy import _match_keys, _rows, _words, schema
from customerkit.backends.sqlalchemy._bulk import BulkInsert, as_tuple
from customerkit.backends.sqlalchemy._customers import CustomerRepository, find_conflict
from customerkit.backends.sqlalchemy._errors import library_error, refused_write
from customerkit.backends.sqlalchemy._load import BulkLoader
from customerkit.backends.sqlalchemy._repositories import (
    ContactRepository,
    DismissalRepository,
    HistoryRepository,
    MergeRepository,
    ReferenceRepository,
    SettingsRepository,
    UserRepository,
)
from customerkit.errors import CustomerKitError
from customerkit.model import Customer
from customerkit.ports import READ_ONLY_REFUSAL, NewCustomers

_log = logging.getLogger(__name__)

_CUSTOMERS = BulkInsert(schema.customers)
#: A bulk load's page cache per SQLite connection, in KiB (allocated only as pages are used).
BULK_CACHE_KIB = 262_144
#: Threads SQLite's sorts may use in a bulk load (capped by SQLite's build; 0 by default).
BULK_SORT_THREADS = min(4, os.cpu_count() or 1)
#: A bulk load's batches grow up to this many times the store's batch size.
BULK_BATCH_FACTOR = 8
_SQLITE_DEFAULT_CACHE = -2000  # KiB, SQLite's own default page cache
_BULK_AFTER = 3  # full batches in one unit of work before it counts as a bulk load
#: Rows of each index SQLite's ANALYZE reads after a bulk load (approximate statistics).
ANALYZE_LIMIT = 2000
#: A unit of work adding at least this many customers, and at least this share of the rows the
#: table had when last analysed, analyses before it commits even if it was no bulk load.
ANALYZE_MIN_ROWS = 500
ANALYZE_GROWTH = 0.2
#: The tables a bulk load grows, analysed on PostgreSQL before it commits.
_ANALYZED = ("customers", "customer_words", "search_vocab", "history")
#: How long the VACUUM after a PostgreSQL bulk load waits for its lock before giving up.
VACUUM_LOCK_TIMEOUT = "5s"
_HISTORY = BulkInsert(schema.history)


class PendingWrites:
    """Inserts waiting for the next flush, in the order they were asked for."""

    def __init__(self) -> None:
        self.customers: list[Customer] = []
        self.customer_rows: list[tuple[Any, ...]] = []
        self.history_rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.customer_rows) + len(self.history_rows)

    def clear(self) -> None:
        """Forget everything pending."""
        self.customers.clear()
        self.customer_rows.clear()
        self.history_rows.clear()

    def flush(self, connection: Connection, words: _words.WordWriter) -> None:
        """Write everything pending; a uniqueness clash raises the library's error."""
        if not self:
            return
        savepoint = connection.begin_nested()
        try:
            _CUSTOMERS.run(connection, self.customer_rows)
            words.insert(connection, self.customers)
            _HISTORY.run(connection, self.history_rows)
        except IntegrityError:
            savepoint.rollback()
            words.forget()
            conflict = find_conflict(connection, self.customers)
            if conflict is None:
                raise
            raise conflict from None  # the driver's text quotes the clashing value
        savepoint.commit()
        self.clear()


def _analysed_rows(connection: Connection) -> float | None:
    """The customers table's row count in the planner's statistics; None if never analysed."""
    if connection.dialect.name == "sqlite":
        has_stats = connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
        ).first()
        if has_stats is None:
            return None
        # Each index's row starts with its number of entries; the primary key's counts all.
        stats = connection.exec_driver_sql(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = 'customers'"
        ).scalars()
        counts = [int(str(stat).split()[0]) for stat in stats if stat]
        return float(max(counts)) if counts else None
    found = connection.exec_driver_sql(
        "SELECT reltuples FROM pg_class WHERE oid = 'customers'::regclass"
    ).scalar()
    return None if found is None or found < 0 else float(found)


class _BulkLoad:
    """Settings for a unit of work that writes batch after batch: a bulk load (create_many).

    From the third full batch on, batches double up to ``BULK_BATCH_FACTOR`` times the
    store's size (fewer, larger statements; rows sorted over a larger range land on fewer
    pages), and an SQLite connection gets a ``BULK_CACHE_KIB`` page cache (for its main
    and its temporary database) for the rest of the transaction, so the indexes' pages stay
    in memory instead of being spilled and read back (measured at a million customers:
    SQLite's CPU per customer 68 -> 62 µs, and much less time waiting on the disk). Its sorts
    (the settling of the words, the indexes built after a load) may use ``BULK_SORT_THREADS``
    threads: at a million customers the words settle in 18 s instead of 22.5 on two cores
    (a sort spread over the threads only once it outgrows the page cache).
    Durability is untouched (journal and synchronous stay as set); the settings are put back
    when the unit of work ends.
    """

    def __init__(self, largest_batch: int) -> None:
        #: The size batches grow up to.
        self.largest_batch = largest_batch
        self.batches = 0
        #: Customers this unit of work added (for ``grew``).
        self.added = 0
        #: A PostgreSQL bulk load to VACUUM once committed (see ``vacuum``).
        self.vacuum_due = False
        #: The SQLite settings changed for the load, as statements putting them back.
        self._restore: list[str] = []

    @property
    def active(self) -> bool:
        """Whether the unit of work has turned out to be a bulk load."""
        return self.batches >= _BULK_AFTER

    def batch_written(self, uow: SqlUnitOfWork) -> None:
        self.batches += 1
        if not self.active:
            return
        uow.words.staging = True
        uow.batch_size = min(uow.batch_size * 2, self.largest_batch)
        connection = uow.connection
        if not self._restore and connection.dialect.name == "sqlite":
            # The temporary database too: the staged words, and the sorts that settle them.
            for name in ("main", "temp"):
                pragma = f"PRAGMA {name}.cache_size"
                # 0 for a temporary database not opened yet: it then had SQLite's default.
                size = int(connection.exec_driver_sql(pragma).scalar_one())
                self._restore.append(f"{pragma} = {size or _SQLITE_DEFAULT_CACHE}")
                connection.exec_driver_sql(f"{pragma} = -{BULK_CACHE_KIB}")
            threads = int(connection.exec_driver_sql("PRAGMA threads").scalar_one())
            self._restore.append(f"PRAGMA threads = {threads}")
            connection.exec_driver_sql(f"PRAGMA threads = {BULK_SORT_THREADS}")

    def analyze(self, connection: Connection) -> None:
        """Fresh planner statistics before a bulk load commits.

        The first query after it is then planned with the tables as they are now, not as
        they were (empty, or a fraction of their size). SQLite samples at most
        ``ANALYZE_LIMIT`` rows of each index (``analysis_limit``), PostgreSQL samples as
        its ANALYZE always does: seconds, not a read of a million rows.
        """
        self.vacuum_due = False
        if not self.active and not self.grew(connection):
            return
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(f"PRAGMA analysis_limit = {ANALYZE_LIMIT}")
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql(f"ANALYZE {', '.join(_ANALYZED)}")
            self.vacuum_due = self.active

    def vacuum(self, connection: Connection) -> None:
        """VACUUM what a PostgreSQL bulk load wrote, once it has committed.

        A freshly written page is not marked all-visible until a VACUUM, so until autovacuum
        comes by every index-only scan of the search also reads each row from its table
        (p50 of the first searches at 10^6: 16 ms, 11 ms after a VACUUM of about a second).
        VACUUM cannot run in a transaction, so it runs in autocommit after the commit; the
        load is already permanent then, so a failure here is only logged. It waits at most
        ``VACUUM_LOCK_TIMEOUT`` for its lock: another session vacuuming, analysing or altering
        one of these tables would otherwise keep the committed load from returning.
        """
        self.vacuum_due = False
        driver: Any = connection.connection.driver_connection
        try:
            driver.autocommit = True
            try:
                driver.execute(f"SET lock_timeout = '{VACUUM_LOCK_TIMEOUT}'")
                driver.execute(f"VACUUM {', '.join(_ANALYZED)}")
            finally:
                driver.execute("RESET lock_timeout")
                driver.autocommit = False
        except Exception:  # the load stands; autovacuum will do this later
            _log.warning("VACUUM after a bulk load failed", exc_info=True)

    def grew(self, connection: Connection) -> bool:
        """Whether the customers added are a large share of the table's last statistics.

        A ``create_many`` too small to become a bulk load may still double a young book;
        the planner then works from statistics of a table a fraction of its size (or from
        none), and the first searches are the slow ones.
        """
        if self.added < ANALYZE_MIN_ROWS:
            return False
        known = _analysed_rows(connection)
        return known is None or self.added >= known * ANALYZE_GROWTH

    def finish(self, connection: Connection) -> None:
        """Put the connection's cache size back (after the transaction ended)."""
        self.batches = 0
        self.added = 0
        restore, self._restore = self._restore, []
        # On the driver connection: through SQLAlchemy the statement would begin a transaction.
        driver = connection.connection.driver_connection
        for statement in restore:
            with contextlib.suppress(sqlite3.Error, AttributeError):
                driver.execute(statement)  # type: ignore[union-attr]


#: Execution option marking a read-only unit of work's connection (SQLite begins it deferred).
READ_ONLY = "customerkit_read_only"


def _read_only_options(dialect: str) -> dict[str, Any]:
    """Every read of a read-only unit of work sees one snapshot (an export's pages agree).

    SQLite's deferred transaction reads one WAL snapshot. PostgreSQL needs REPEATABLE READ for
    that (READ COMMITTED takes a new snapshot per statement); read-only, it never fails to
    serialize.
    """
    if dialect == "postgresql":
        return {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    return {READ_ONLY: True}


class SqlUnitOfWork:
    """One transaction over every repository (the ``UnitOfWork`` protocol).

    Leaving the ``with`` block without ``commit`` rolls back. The transaction begins at the
    first statement (``BEGIN IMMEDIATE`` on SQLite), so a unit of work that does nothing
    takes no lock.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int,
        lock: threading.RLock | None = None,
        read_only: bool = False,
    ) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        #: Held for the whole unit of work when the store has one connection to share.
        self._lock = lock
        self.read_only = read_only
        self._connection: Connection | None = None
        self.pending = PendingWrites()
        self.batch_size = batch_size
        self._bulk = _BulkLoad(batch_size * BULK_BATCH_FACTOR)

    # The repositories and writers are built on first use: a read-only unit of work that reads
    # one customer builds the customers repository only, not eight repositories and writers.

    def _built(self, name: str) -> bool:
        """Whether a part built on first use exists (one never built has nothing to undo)."""
        return name in self.__dict__

    # Each repository takes the unit of work as its one argument (the ``Session`` it needs).
    customers = cached_property(CustomerRepository)
    contacts = cached_property(ContactRepository)
    users = cached_property(UserRepository)
    history = cached_property(HistoryRepository)
    reference = cached_property(ReferenceRepository)
    settings = cached_property(SettingsRepository)
    merges = cached_property(MergeRepository)
    dismissals = cached_property(DismissalRepository)

    @cached_property
    def words(self) -> _words.WordWriter:
        """The new and changed customers' search words, written or settled before reads."""
        return _words.WordWriter(self._dialect)

    @cached_property
    def match_keys(self) -> _match_keys.MatchKeyWriter:
        """The records whose matching keys are rewritten at commit."""
        return _match_keys.MatchKeyWriter()

    @cached_property
    def _loader(self) -> BulkLoader:
        return BulkLoader()

    def __enter__(self) -> Self:
        if self._lock is not None:
            self._lock.acquire()
        try:
            self._connection = self._engine.connect()
            if self.read_only:
                self._connection.execution_options(**_read_only_options(self._dialect))
        except BaseException as error:
            if self._lock is not None:
                self._lock.release()
            if isinstance(error, DBAPIError):
                raise library_error(error, connecting=True) from error
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conflict = None
        try:
            if isinstance(exc, Exception) and self.pending.customers:
                conflict = self._pending_conflict()
        finally:
            self._close()
        if conflict is not None:
            raise conflict from None  # the driver's text quotes the clashing value
        if isinstance(exc, DBAPIError):
            refused = refused_write(exc)
            if refused is not None:
                raise refused from exc
            raise library_error(exc) from exc

    def _pending_conflict(self) -> CustomerKitError | None:
        try:
            return find_conflict(self.connection, self.pending.customers)
        except SQLAlchemyError:
            return None  # the connection is unusable: let the original error through

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.pending.clear()
        if self._built("words"):
            self.words.reset()
        if self._built("match_keys"):
            self.match_keys.forget()
        if self._built("history"):
            self.history.reset_sequence()
        if self._built("_loader"):
            self._loader.reset()
        try:
            if connection is not None:
                connection.rollback()
                self._bulk.finish(connection)
                connection.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    @property
    def locks_reads(self) -> bool:
        """Whether reads of customers lock them: in a PostgreSQL unit of work that may write.

        SQLite needs no row locks: ``BEGIN IMMEDIATE`` lets one writer in at a time.
        """
        return not self.read_only and self._dialect == "postgresql"

    @property
    def connection(self) -> Connection:
        """The unit of work's connection, as is (pending inserts not flushed)."""
        if self._connection is None:
            msg = "use the unit of work in a with block"
            raise RuntimeError(msg)
        return self._connection

    def reader(self) -> Connection:
        """The connection, after writing everything pending: for reads and unbuffered writes."""
        self.flush()
        if self._built("words"):
            self.words.settle(self.connection)
        return self.connection

    def flush(self) -> None:
        """Write the pending inserts now."""
        connection = self.connection
        if self.pending:  # then the words writer exists: buffering a customer used it
            self.pending.flush(connection, self.words)

    def flush_if_full(self) -> None:
        """Write the pending inserts when a batch is full."""
        if len(self.pending) >= self.batch_size:
            self.flush()
            self._bulk.batch_written(self)

    def buffer_customer(self, customer: Customer) -> None:
        """Queue a new customer and its search words for the next flush."""
        self.match_keys.changed("customer", customer.id, customer)
        self._bulk.added += 1
        self.pending.customers.append(customer)
        row = _rows.customer_row(customer)
        self.pending.customer_rows.append(as_tuple(row, _CUSTOMERS.columns))
        self.flush_if_full()

    def buffer_history(self, row: tuple[Any, ...]) -> None:
        """Queue a history row (columns in table order) for the next flush."""
        self.pending.history_rows.append(row)
        self.flush_if_full()

    def bulk_add(self, chunk: NewCustomers) -> None:
        """Add a chunk of a bulk load in column batches (see ``_load.BulkLoader``)."""
        if self.read_only:
            raise RuntimeError(READ_ONLY_REFUSAL)
        self._loader.add(self, self.history, chunk)

    def start_bulk(self) -> None:
        """Treat this unit of work as a bulk load from now on.

        Its words are staged, an SQLite connection gets a large page cache, and ANALYZE runs
        before it commits.
        """
        if not self._bulk.active:
            self._bulk.batches = _BULK_AFTER - 1
            self._bulk.batch_written(self)

    def commit(self) -> None:
        """Write what is pending and commit: every change becomes permanent and visible."""
        if self.read_only:
            raise RuntimeError(READ_ONLY_REFUSAL)
        self.flush()
        if self._built("words"):
            self.words.settle(self.connection)
        if self._built("match_keys"):
            self.match_keys.apply(self.connection)
        if self._built("_loader"):
            self._loader.finish(self.connection)
        self._bulk.analyze(self.connection)
        self.connection.commit()
        if self._bulk.vacuum_due:
            self._bulk.vacuum(self.connection)
        self._bulk.batches = self._bulk.added = 0
        # The next statement starts a new transaction, where another writer may have been first.
        if self._built("history"):
            self.history.reset_sequence()
