"""The library's errors for the driver's: what a failed statement or connection means to a caller.

Shared by the store (opening a book) and the unit of work (its statements and commit).
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError

from customerkit.backends.sqlalchemy._retry import is_transient
from customerkit.errors import (
    BookBusy,
    ConcurrentModification,
    CustomerKitError,
    StorageError,
    StorageUnavailable,
)
from customerkit.ports import READ_ONLY_REFUSAL

#: PostgreSQL SQLSTATE classes of a lost or refused connection: connection exceptions (08),
#: the server shutting down or restarting (57P01-57P03).
_UNAVAILABLE = ("08", "57P01", "57P02", "57P03")
#: SQLite result codes of a locked database: another connection holds the lock.
_SQLITE_LOCKED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
#: SQLite result codes of a file that is not (or no longer) a readable database.
_SQLITE_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def library_error(error: DBAPIError, *, connecting: bool = False) -> CustomerKitError:
    """The library's error for a driver's error, raised in its place with it as the cause.

    The driver's text may quote the rows it was writing (names, emails, hashes), so none of it
    reaches the message: only the kind of failure and the database's error code.
    """
    if is_transient(error):
        # A deadlock victim or serialization failure: the rule (C5); the cause keeps it
        # retryable for the store's run.
        return ConcurrentModification("a record this unit of work read or wrote")
    orig = error.orig
    if getattr(orig, "sqlite_errorcode", None) in _SQLITE_LOCKED:
        return BookBusy()  # another writer kept the lock past the busy timeout
    if getattr(orig, "sqlite_errorcode", None) in _SQLITE_DAMAGED:
        return StorageError(
            "the SQLite file is damaged or is not a database; nothing was written. Restore it "
            "from a backup, or open another file",
            code=getattr(orig, "sqlite_errorname", None),
        )
    sqlstate = getattr(orig, "sqlstate", None)
    code = sqlstate or getattr(orig, "sqlite_errorname", None)
    unavailable = error.connection_invalidated or str(sqlstate or "").startswith(_UNAVAILABLE)
    if unavailable or (connecting and isinstance(error, OperationalError)):
        return StorageUnavailable(code=code)
    return StorageError(code=code)


def refused_write(error: DBAPIError) -> RuntimeError | None:
    """PostgreSQL refusing a write in a read-only transaction, said as every backend says it."""
    if getattr(error.orig, "sqlstate", None) == "25006":  # read_only_sql_transaction
        return RuntimeError(READ_ONLY_REFUSAL)
    return None
