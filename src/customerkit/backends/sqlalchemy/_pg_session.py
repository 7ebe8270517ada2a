"""The settings every PostgreSQL connection of a store carries for search."""

from __future__ import annotations

from typing import Any

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
