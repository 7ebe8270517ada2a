"""The SQL store: engine set-up per database, schema bootstrap, and retrying transient failures.

SQLite (RELIABILITY decision 4): every connection gets ``foreign_keys=ON`` and a 5 s busy
timeout, files run in WAL mode, and every transaction starts with ``BEGIN IMMEDIATE``: a
deferred transaction that reads and then writes fails with "database is locked" under
concurrent writers instead of waiting its turn. A read-only unit of work starts a deferred
transaction instead: it never writes, so in WAL mode it reads a snapshot beside the writer
instead of queueing behind it. The pysqlite driver's own implicit BEGIN is
switched off so the engine's ``begin`` event can emit ours (the SQLAlchemy pysqlite recipe).

PostgreSQL (decision 5): serialization failures and deadlocks are retried a bounded number of
times around the pure database work, see ``retry_transient``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from customerkit.backends.sqlalchemy import schema
from customerkit.backends.sqlalchemy._errors import library_error
from customerkit.backends.sqlalchemy._pg_session import (
    check_pooled_connections,
    configure_postgres_session,
)
from customerkit.backends.sqlalchemy._retry import is_transient, transient_sqlstate
from customerkit.backends.sqlalchemy.unit_of_work import READ_ONLY, SqlUnitOfWork
from customerkit.errors import SchemaError, ValidationError

log = logging.getLogger("customerkit.sql")

T = TypeVar("T")

#: Most tries ``retry_transient`` makes (Odoo's number).
MAX_ATTEMPTS = 5
#: Milliseconds SQLite waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 5000
#: Page cache per SQLite connection, in KiB (SQLite's default is 2 MiB; allocated as used).
#: Bulk loads insert into several B-trees at random keys and run ~10% faster with 64 MiB.
SQLITE_CACHE_KIB = 65536
# Any constant works; it names the advisory lock that serialises schema creation on PostgreSQL.
_SCHEMA_LOCK_KEY = 0x636B_5343


def retry_transient(
    work: Callable[[], T], *, attempts: int = MAX_ATTEMPTS, base_delay: float = 0.02
) -> T:
    """Run ``work`` (one whole unit of work) again when the database reports a transient failure.

    Only serialization failures (40001) and deadlocks (40P01) are retried (also when a
    repository reported one as ``ConcurrentModification``), at most ``attempts`` tries in all,
    with jittered exponential backoff. ``work`` must open, run and commit its own
    unit of work and have no side effects outside the database: it may run more than once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Exception as error:
            if attempt == attempts or not is_transient(error):
                raise
            sqlstate = transient_sqlstate(error)
            log.warning("transient database error %s; retry %d of %d", sqlstate, attempt, attempts)
            time.sleep(base_delay * 2 ** (attempt - 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


#: Engine options for every database: a driver's error never quotes the statement's parameters
#: (the names, emails and hashes being written).
_DEFAULTS: dict[str, Any] = {"hide_parameters": True}


def _is_memory_sqlite(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


def _sqlite_engine(url: URL, options: Mapping[str, Any]) -> Engine:
    memory = _is_memory_sqlite(url)
    kwargs: dict[str, Any] = {}
    if memory:
        # One shared connection, or every connection would see its own empty database.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = create_engine(url, **{**_DEFAULTS, **kwargs, **options})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN: we emit BEGIN IMMEDIATE
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        if not memory:
            # Safe against application crashes; SQLite's advice for WAL mode (which the file
            # was switched to when its schema was created, see ensure_schema).
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: URL, options: Mapping[str, Any]) -> Engine:
    defaults: dict[str, Any] = {"pool_size": 10, "max_overflow": 20}
    engine = create_engine(url, **{**_DEFAULTS, **defaults, **options})
    event.listen(engine, "connect", configure_postgres_session)
    # A pooled connection the server dropped (a restart, an idle timeout) is noticed and
    # replaced before a call uses it, instead of failing that call; without pool_pre_ping's
    # round trip on every checkout.
    check_pooled_connections(engine)
    return engine


def _create_schema(connection: Connection, partitions: int = 0) -> None:
    if connection.dialect.name == "postgresql":
        try:
            with connection.begin_nested():
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except DBAPIError as error:
            raise SchemaError(
                "customerkit needs the pg_trgm extension for search: install the server's "
                "contrib package (e.g. apt-get install postgresql-contrib) and run "
                "CREATE EXTENSION pg_trgm as a database owner"
            ) from error
    if partitions:
        schema.partitioned_metadata().create_all(connection)
        for statement in schema.partition_ddl(partitions):
            connection.exec_driver_sql(statement)
    else:
        schema.metadata.create_all(connection)
    for statement in schema.USERNAME_GUARD_DDL[connection.dialect.name]:
        connection.exec_driver_sql(statement)
    if connection.dialect.name == "sqlite":
        for statement in schema.SQLITE_FTS_DDL:
            connection.exec_driver_sql(statement)
    connection.execute(schema.schema_version.insert().values(id=1, version=schema.SCHEMA_VERSION))
    log.info("created customerkit schema version %d", schema.SCHEMA_VERSION)


def ensure_schema(engine: Engine, *, share: bool = False, partitions: int = 0) -> int:
    """Create the schema in an empty database, or check the one found; return its version.

    An existing book is only read, in a read-only transaction: opening it takes no write
    lock, so a book opens (and reads) while another process writes. The schema is created,
    and a new SQLite file switched to WAL mode, only when the database holds no book yet.

    Args:
        engine: The book's engine.
        share: Accept an SQLite file that holds another application's tables.
        partitions: PostgreSQL: hash-partition the location-keyed tables into this many
            partitions when the schema is created (0: plain tables).

    Raises:
        SchemaError: the database holds a schema version this release does not know, tables
            that look like customerkit's without a recorded version, or (SQLite, without
            ``share``) another application's tables.
    """
    with engine.connect() as connection:
        connection.execution_options(**{READ_ONLY: True})  # SQLite: a deferred BEGIN
        version = _stored_version(connection, share=share)
    if version is None:
        version = _create_schema_once(engine, share=share, partitions=partitions)
    if version != schema.SCHEMA_VERSION:
        raise SchemaError(
            f"the database has customerkit schema version {version}, this release knows "
            f"version {schema.SCHEMA_VERSION}; upgrade customerkit, or migrate the database"
        )
    return int(version)


def _stored_version(connection: Connection, *, share: bool) -> int | None:
    """The book's schema version, or ``None`` when the database holds no book yet."""
    tables = set(inspect(connection).get_table_names())
    if schema.schema_version.name in tables:
        version = connection.scalar(
            select(schema.schema_version.c.version).where(schema.schema_version.c.id == 1)
        )
        return -1 if version is None else int(version)
    clashing = sorted(tables & set(schema.metadata.tables))
    if clashing:
        raise SchemaError(
            f"the database has tables named {', '.join(clashing)} but no customerkit "
            "schema version; use an empty database or one created by customerkit"
        )
    if tables and connection.dialect.name == "sqlite" and not share:
        raise SchemaError(
            f"the file holds {len(tables)} tables of another application and is not a "
            "customerkit book; open a new file, or pass share=True to add the book's tables "
            "beside them (the file is then switched to WAL mode)"
        )
    return None


def _create_schema_once(engine: Engine, *, share: bool, partitions: int) -> int:
    """Create the schema unless another process did since we looked; return the version."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite" and not _is_memory_sqlite(engine.url):
            # Outside any transaction (SQLite cannot switch inside one); kept by the file.
            driver = connection.connection.driver_connection
            driver.execute("PRAGMA journal_mode = WAL")  # type: ignore[union-attr]
        if connection.dialect.name == "postgresql":
            # Two processes opening a new database at once must not both create tables.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
            )
        version = _stored_version(connection, share=share)  # under the write lock now
        if version is not None:
            return version
        _create_schema(connection, partitions)
        connection.commit()
    return schema.SCHEMA_VERSION


class SqlStore:
    """A customer book in an SQL database (the ``Store`` protocol), through SQLAlchemy Core.

    ``SqlStore("sqlite:///dealer.db")`` or ``SqlStore("postgresql+psycopg://user@host/db")``
    (a plain ``postgresql://`` URL uses psycopg 3). The schema is created on first open.

    Args:
        url: An SQLAlchemy database URL.
        engine_options: Extra keyword arguments for ``sqlalchemy.create_engine``.
        batch_size: How many new customers a unit of work buffers before writing them with
            one ``executemany`` (bulk loads); reads always see buffered rows.
        share: SQLite only: accept a file holding another application's tables and add the
            book's tables beside them; without it such a file is refused, untouched.
        partitions: PostgreSQL only: when the book is created, split its location-keyed
            tables (the search words and the blocking keys, ``schema.PARTITIONED_TABLES``)
            into this many partitions by a hash of ``location_id``. 0 (the default) keeps
            plain tables. A book that exists is opened as it is.

    Raises:
        SchemaError: the database holds a schema this release does not know.
        ValidationError: the URL names a database other than SQLite or PostgreSQL.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        engine_options: Mapping[str, Any] | None = None,
        batch_size: int = 2000,
        share: bool = False,
        partitions: int = 0,
    ) -> None:
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        backend = parsed.get_backend_name()
        options = dict(engine_options or {})
        if partitions and backend != "postgresql":
            raise ValidationError({"partitions": "only PostgreSQL books are partitioned"})
        if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 0:
            raise ValidationError({"partitions": "give a whole number of partitions, 0 or more"})
        if backend == "sqlite":
            self.engine = _sqlite_engine(parsed, options)
        elif backend == "postgresql":
            self.engine = _postgres_engine(parsed, options)
        else:
            raise ValidationError(
                {"url": f"{backend!r} is not supported; use a sqlite:// or postgresql:// URL"}
            )
        # An in-memory SQLite database is one shared connection: one unit of work at a time.
        self.lock: threading.RLock | None = (
            threading.RLock() if backend == "sqlite" and _is_memory_sqlite(parsed) else None
        )
        self.batch_size = batch_size
        try:
            self.schema_version = ensure_schema(self.engine, share=share, partitions=partitions)
        except BaseException as error:
            self.engine.dispose()
            if isinstance(error, DBAPIError):
                raise library_error(error, connecting=True) from error
            raise

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def unit_of_work(self, *, read_only: bool = False) -> SqlUnitOfWork:
        """A new unit of work (one transaction); use it in a ``with`` block."""
        return SqlUnitOfWork(
            self.engine, batch_size=self.batch_size, lock=self.lock, read_only=read_only
        )

    def run(self, work: Callable[[], T], *, attempts: int = MAX_ATTEMPTS) -> T:
        """Run ``work`` with ``retry_transient`` (it must commit its own unit of work)."""
        return retry_transient(work, attempts=attempts)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
