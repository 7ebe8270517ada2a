"""The SQL backend on SQLAlchemy 2 Core: an SQLite file by default, PostgreSQL in production.

Needs the ``sqlalchemy`` extra (``postgres`` adds psycopg 3)::

    from customerkit.backends.sqlalchemy import SqlStore

    store = SqlStore("sqlite:///dealer.db")  # or "postgresql+psycopg://user@host/db"

``customerkit.open_book(url)`` does this for you.
"""

from customerkit.backends.sqlalchemy.store import SqlStore, retry_transient

__all__ = ["SqlStore", "retry_transient"]
