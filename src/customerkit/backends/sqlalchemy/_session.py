"""What the repositories need of their unit of work: its connection and its write buffers.

The repositories are typed against this protocol, not against ``SqlUnitOfWork``: the unit of
work builds the repositories, so naming it back (even for annotations) would tie the two
modules into one. ``SqlUnitOfWork`` implements it.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Connection

from customerkit.backends.sqlalchemy._match_keys import MatchKeyWriter
from customerkit.backends.sqlalchemy._words import WordWriter
from customerkit.model import Customer


class Session(Protocol):
    """One transaction's connection, and the inserts buffered for its next flush."""

    @property
    def connection(self) -> Connection:
        """The connection as is: pending inserts not flushed."""
        ...

    @property
    def locks_reads(self) -> bool:
        """Whether reads of customers lock them (a PostgreSQL unit of work that may write)."""
        ...

    @property
    def words(self) -> WordWriter:
        """The customers' search words waiting to be written or settled."""
        ...

    @property
    def match_keys(self) -> MatchKeyWriter:
        """The records whose matching keys change at commit."""
        ...

    def reader(self) -> Connection:
        """The connection after writing everything pending: for reads and unbuffered writes."""
        ...

    def flush(self) -> None:
        """Write the pending inserts now."""
        ...

    def buffer_customer(self, customer: Customer) -> None:
        """Queue a new customer and its search words for the next flush."""
        ...

    def buffer_history(self, row: tuple[Any, ...]) -> None:
        """Queue a history row (columns in table order) for the next flush."""
        ...

    def start_bulk(self) -> None:
        """Treat the unit of work as a bulk load from now on."""
        ...
