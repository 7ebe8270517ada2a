"""Which database errors are worth running a whole unit of work again for.

Its own module so that the store (which retries) and the repositories (which report such an
error as ``ConcurrentModification``) share one answer without naming each other.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

#: SQLSTATEs of a transaction the database gave up on so that a concurrent one could go on:
#: serialization failure, deadlock. Worth running the whole unit of work again for.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


def transient_sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of the serialization failure or deadlock behind ``error``, else ``None``.

    Looks through the ``ConcurrentModification`` a repository raises from one.
    """
    cause = error if isinstance(error, DBAPIError) else error.__cause__
    sqlstate = getattr(getattr(cause, "orig", None), "sqlstate", None)
    return sqlstate if isinstance(cause, DBAPIError) and sqlstate in TRANSIENT_SQLSTATES else None


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is (or came from) a serialization failure or deadlock worth retrying."""
    return transient_sqlstate(error) is not None
