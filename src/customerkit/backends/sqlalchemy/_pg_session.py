"""A store's PostgreSQL connections: the settings each carries, the check before one is used.

The check replaces SQLAlchemy's ``pool_pre_ping``, which costs every unit of work a round
trip (a fifth of a one-word search's): a pooled connection is pinged only when it sat idle
for ``PING_AFTER_IDLE_S`` or more, or when the server sent it something while it was idle,
which it does when it ends the session (a restart, ``pg_terminate_backend``, an idle
timeout: a goodbye, then the end of the stream). pgx's pool for Go checks the same way.
A connection that fails the ping is replaced before the call uses it.
"""

from __future__ import annotations

import select
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

#: Seconds a pooled connection may sit idle and still be handed out without a ping.
PING_AFTER_IDLE_S = 1.0
#: Key in a pooled connection's ``info``: when it went back to the pool (``time.monotonic``).
_CHECKED_IN = "customerkit_checked_in"

#: Set once per connection of the store's engine (``configure_postgres_session``), not per
#: search: a statement per search cost a round trip, a fifth of a warm one-word search. None
#: of them changes a statement's result, only its plan. A search reads a few pages of rows:
#: starting parallel workers costs it more (a few ms each statement, on a busy machine) than
#: they could save; customerkit's other statements read by key, in pages too. Its statements
#: repeat with other values: psycopg prepares a statement run five times, and PostgreSQL may
#: then plan it once for any values (a generic plan), blind to how many rows a word or a LIMIT
#: means. And a large page's estimated cost passes the JIT threshold: compiling took 33 ms of
#: a 120 ms page; no statement of ours runs long enough to win that back.
PG_SESSION_SETTINGS = (
    "SET max_parallel_workers_per_gather = 0",
    "SET plan_cache_mode = force_custom_plan",
    "SET jit = off",
)


def configure_postgres_session(dbapi_connection: Any, _record: Any) -> None:
    """Apply PG_SESSION_SETTINGS to a new connection (the engine's ``connect`` event).

    Committed: the pool rolls a connection back when it is returned, which would undo them.
    """
    with dbapi_connection.cursor() as cursor:
        for statement in PG_SESSION_SETTINGS:
            cursor.execute(statement)
    dbapi_connection.commit()


def check_pooled_connections(engine: Engine) -> None:
    """Check a PostgreSQL engine's pooled connections on checkout, as the module says."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_CHECKED_IN, None)
        if since is None:  # a new connection, made just now
            return
        if time.monotonic() - since < PING_AFTER_IDLE_S and not _has_input(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise DisconnectionError(str(error)) from error  # the pool reconnects
            raise


def _has_input(dbapi_connection: Any) -> bool:
    """Whether the server sent an idle connection anything (no round trip: a local poll)."""
    if dbapi_connection.closed:
        return True
    descriptor = dbapi_connection.fileno()
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(descriptor, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([descriptor], [], [], 0)  # pragma: no cover - Windows
    return bool(readable)
