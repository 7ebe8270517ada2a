"""Inserts of many rows straight through the driver's ``executemany``.

SQLAlchemy Core processes every parameter of every row in Python, which doubles the cost of a
bulk load (measured: 824k word rows in 15 s through Core, 7 s through the driver). These
inserts hand the driver plain tuples or dicts instead, converting the only non-native values,
aware datetimes, the way SQLAlchemy itself stores them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from customerkit.backends.sqlalchemy.schema import UtcDateTime
from sqlalchemy import Connection, Table


def _sqlite_datetime(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage format, naive UTC (see schema.UtcDateTime).
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _postgres_datetime(value: datetime) -> datetime:
    return value.astimezone(UTC)


class BulkInsert:
    """``INSERT INTO table`` of the given columns (all by default), compiled once per dialect."""

    def __init__(
        self, table: Table, *, columns: Iterable[str] | None = None, prefix: str | None = None
    ) -> None:
        self.table = table
        self.columns = tuple(columns or (column.name for column in table.columns))
        self.prefix = prefix
        self.datetimes = frozenset(
            name for name in self.columns if isinstance(table.c[name].type, UtcDateTime)
        )
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    def _statement(self, connection: Connection) -> tuple[str, tuple[str, ...] | None]:
        name = connection.dialect.name
        if name not in self._compiled:
            statement = self.table.insert()
            if self.prefix:
                statement = statement.prefix_with(self.prefix)
            compiled = statement.compile(dialect=connection.dialect, column_keys=list(self.columns))
            order = tuple(compiled.positiontup) if compiled.positional else None  # type: ignore[arg-type]
            self._compiled[name] = (str(compiled), order)
        return self._compiled[name]

    def run(self, connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert ``rows``: dicts keyed by column name, holding at least the insert's columns."""
        sql, order = self._statement(connection)
        to_db = _sqlite_datetime if connection.dialect.name == "sqlite" else _postgres_datetime
        prepared: list[Any] = []
        for row in rows:
            if self.datetimes:
                row = {  # noqa: PLW2901 - a converted copy
                    **row,
                    **{name: to_db(row[name]) for name in self.datetimes if row[name] is not None},
                }
            prepared.append(row if order is None else tuple(row[key] for key in order))
        if prepared:
            connection.exec_driver_sql(sql, prepared)
