"""Contacts, users, history, reference data, settings, merges and dismissals on one unit of work.

Each repository implements its protocol from ``customerkit.ports`` with the same results
and errors as the memory backend. Writes that can clash run inside a savepoint, so the
transaction stays usable after the database refuses one and the clash can be explained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import attrs
from sqlalchemy import Connection, RowMapping, Select, Table, delete, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from customerkit.backends.sqlalchemy import _rows, schema
from customerkit.backends.sqlalchemy._bulk import chunks
from customerkit.backends.sqlalchemy._match_keys import stored_match_index
from customerkit.backends.sqlalchemy._rows import Row
from customerkit.backends.sqlalchemy._session import Session
from customerkit.errors import ConcurrentModification, DuplicateExternalUser, ValidationError
from customerkit.matching import MatchConfig, MatchIndex
from customerkit.matching.table import Kind
from customerkit.model import Category, ChangeRecord, CompanyType, Contact, Dismissal, User

_K = schema.contacts.c
_HISTORY_COLUMNS = tuple(column.name for column in schema.history.columns)
#: Largest block of history sequence numbers PostgreSQL hands one unit of work at a time.
_MAX_SEQ_BLOCK = 1024


#: A record type a row converts to.
T = TypeVar("T")


def read_all(
    connection: Connection, statement: Select[Any], from_row: Callable[[Row], T]
) -> list[T]:
    """The records the rows of a query hold, in its order."""
    return [from_row(row) for row in connection.execute(statement).mappings()]


def read_one(
    connection: Connection, statement: Select[Any], from_row: Callable[[Row], T]
) -> T | None:
    """The record the first row of a query holds; ``None`` when there is none."""
    row = connection.execute(statement).mappings().first()
    return None if row is None else from_row(row)


def _insert_or(connection: Connection, statement: Any, error: Exception) -> None:
    """Run an insert; when the database refuses it as a duplicate, raise ``error`` instead.

    Without the driver's error as its context: its text quotes the clashing value.
    """
    try:
        with connection.begin_nested():
            connection.execute(statement)
    except IntegrityError:
        raise error from None


def rewrite_rows(
    connection: Connection,
    table: Table,
    ids: Sequence[str],
    column: str,
    *,
    from_id: str,
    to_id: str,
    at: datetime,
) -> list[RowMapping]:
    """``repoint`` and ``move`` of the protocols: one ``UPDATE`` per chunk, then a read back.

    Sets ``column`` from ``from_id`` to ``to_id`` on every row of ``ids``. A chain of merges
    re-points every earlier tombstone, and moves every contact gathered so far, at each new
    main: a statement per row made a chain of 300 merges take minutes. A row gone or pointing
    elsewhere raises ``ConcurrentModification`` naming the table's record ("contact").
    """
    wanted = sorted(set(ids))
    written = 0
    for part in chunks(wanted):
        statement = (
            update(table)
            .where(table.c.id.in_(part), table.c[column] == from_id)
            .values({column: to_id, "updated_at": at, "version": table.c.version + 1})
        )
        written += connection.execute(statement).rowcount
    if written != len(wanted):  # one is gone or points elsewhere: changed since it was read
        raise ConcurrentModification(table.name.removesuffix("s"))
    rows: list[RowMapping] = []
    for part in chunks(wanted):
        found = connection.execute(select(table).where(table.c.id.in_(part)).order_by(table.c.id))
        rows.extend(found.mappings().all())
    return rows


class StoredKeysIndex:
    """The customers' and contacts' ``match_index`` (``KeptMatchIndex``): keys kept in tables."""

    _kind: Kind
    _uow: Session

    def match_index(
        self, location_id: str, *, region: str, config: MatchConfig | None = None
    ) -> MatchIndex:
        connection = self._uow.reader()
        return stored_match_index(connection, self._kind, location_id, region, config=config)


class ContactRepository(StoredKeysIndex):
    """Contacts, tombstones included (the ``ContactRepository`` protocol)."""

    _kind = "contact"

    def __init__(self, uow: Session) -> None:
        self._uow = uow

    def get(self, contact_id: str) -> Contact | None:
        statement = select(schema.contacts).where(_K.id == contact_id)
        return read_one(self._uow.reader(), statement, _rows.contact_from_row)

    def _write(self, connection: Connection, contact: Contact, statement: Any) -> int:
        try:
            with connection.begin_nested():
                return int(connection.execute(statement).rowcount)
        except IntegrityError:
            key = _rows.external_key(contact)
            holder = None if key is None else self._external_user(connection, key)
            if holder is None or holder == contact.id:
                raise
            raise DuplicateExternalUser(holder) from None  # the driver quotes the email

    @staticmethod
    def _external_user(connection: Connection, email_key: str) -> str | None:
        """The id of the live external user holding this canonical email (K3), if any."""
        return connection.scalar(select(_K.id).where(_K.external_key == email_key))

    def add(self, contact: Contact) -> None:
        connection = self._uow.reader()  # the customer may still be buffered
        self._write(
            connection, contact, schema.contacts.insert().values(_rows.contact_row(contact))
        )
        self._uow.match_keys.changed("contact", contact.id, contact)

    def update(self, contact: Contact, *, expected_version: int) -> None:
        values = _rows.contact_row(contact)
        del values["id"]
        statement = (
            update(schema.contacts)
            .where(_K.id == contact.id, _K.version == expected_version)
            .values(values)
        )
        written = self._write(self._uow.reader(), contact, statement)
        if written != 1:
            raise ConcurrentModification("contact", contact.id)
        self._uow.match_keys.changed("contact", contact.id, contact)

    def remove(self, contact_id: str) -> None:
        connection = self._uow.reader()
        connection.execute(delete(schema.contacts).where(_K.id == contact_id))
        forget_dismissals(connection, "contact", contact_id)
        self._uow.match_keys.changed("contact", contact_id, None)

    def repoint(
        self, ids: Sequence[str], *, from_id: str, to_id: str, at: datetime
    ) -> list[Contact]:
        return self._rewrite(ids, "merged_into", from_id, to_id, at)

    def move(
        self, ids: Sequence[str], *, from_customer: str, to_customer: str, at: datetime
    ) -> list[Contact]:
        moved = self._rewrite(ids, "customer_id", from_customer, to_customer, at)
        for contact in moved:
            self._uow.match_keys.changed("contact", contact.id, contact)
        return moved

    def _rewrite(
        self, ids: Sequence[str], column: str, from_id: str, to_id: str, at: datetime
    ) -> list[Contact]:
        connection = self._uow.reader()
        rows = rewrite_rows(
            connection, schema.contacts, ids, column, from_id=from_id, to_id=to_id, at=at
        )
        return [_rows.contact_from_row(row) for row in rows]

    def merged_into(self, contact_id: str) -> list[Contact]:
        statement = select(schema.contacts).where(_K.merged_into == contact_id).order_by(_K.id)
        return read_all(self._uow.reader(), statement, _rows.contact_from_row)

    def for_customer(self, customer_id: str) -> list[Contact]:
        statement = (
            select(schema.contacts)
            .where(_K.customer_id == customer_id)
            .order_by(_K.created_at, _K.id)
        )
        return read_all(self._uow.reader(), statement, _rows.contact_from_row)


class UserRepository:
    """Dealer staff and fleet users (the ``UserRepository`` protocol)."""

    def __init__(self, uow: Session) -> None:
        self._uow = uow

    def get(self, user_id: str) -> User | None:
        statement = select(schema.users).where(schema.users.c.id == user_id)
        return read_one(self._uow.reader(), statement, _rows.user_from_row)

    def add(self, user: User) -> None:
        _insert_or(
            self._uow.reader(),
            schema.users.insert().values(_rows.user_row(user)),
            ValidationError({"id": "a user with this id exists; choose another id"}),
        )

    def _users(self, condition: Any) -> list[User]:
        statement = select(schema.users).where(condition).order_by(schema.users.c.id)
        return read_all(self._uow.reader(), statement, _rows.user_from_row)

    def for_location(self, location_id: str) -> list[User]:
        return self._users(schema.users.c.location_id == location_id)

    def for_fleet(self, fleet_customer_id: str) -> list[User]:
        return self._users(schema.users.c.fleet_customer_id == fleet_customer_id)


class HistoryRepository:
    """The append-only change history (the ``HistoryRepository`` protocol).

    Records are buffered like new customers, so ``append`` must know the sequence number up
    front. On SQLite the unit of work holds the write lock (``BEGIN IMMEDIATE``), so it counts
    on from the table's AUTOINCREMENT counter: numbers are gapless and never reused, as in the
    memory backend. On PostgreSQL it takes blocks of numbers from the table's sequence, which
    leaves gaps where a transaction rolled back but never makes writers wait for each other.
    """

    def __init__(self, uow: Session) -> None:
        self._uow = uow
        self._next: list[int] = []
        self._block = 1

    def reset_sequence(self) -> None:
        """Forget the numbers held: the next transaction allocates afresh."""
        self._next.clear()
        self._block = 1

    def _allocate(self) -> int:
        if not self._next:
            connection = self._uow.connection
            if connection.dialect.name == "sqlite":
                last = connection.scalar(
                    text("SELECT seq FROM sqlite_sequence WHERE name = 'history'")
                )
                # Count on locally from here: nobody else can write before we commit.
                self._next = [int(last or 0) + 1]
            else:
                numbers = connection.scalars(
                    text("SELECT nextval('history_seq_seq') FROM generate_series(1, :n)"),
                    {"n": self._block},
                ).all()
                self._next = sorted(numbers, reverse=True)
                self._block = min(self._block * 2, _MAX_SEQ_BLOCK)
        if self._uow.connection.dialect.name == "sqlite":
            seq = self._next[0]
            self._next[0] += 1
            return seq
        return self._next.pop()

    def allocate(self, count: int) -> list[int]:
        """Sequence numbers for ``count`` new records, in order (a bulk load's chunk)."""
        if self._uow.connection.dialect.name == "sqlite":
            return [self._allocate() for _ in range(count)]
        # One round trip for the chunk, not blocks of at most _MAX_SEQ_BLOCK.
        numbers = self._uow.connection.scalars(
            text("SELECT nextval('history_seq_seq') FROM generate_series(1, :n)"), {"n": count}
        ).all()
        return sorted(numbers)

    def append(self, record: ChangeRecord) -> ChangeRecord:
        stored = attrs.evolve(record, seq=self._allocate())
        row = _rows.history_row(stored)
        self._uow.buffer_history(tuple(row[name] for name in _HISTORY_COLUMNS))
        return stored

    def for_customer(self, customer_id: str) -> list[ChangeRecord]:
        statement = (
            select(schema.history)
            .where(schema.history.c.customer_id == customer_id)
            .order_by(schema.history.c.seq)
        )
        return read_all(self._uow.reader(), statement, _rows.history_from_row)

    def remove_for_customer(self, customer_id: str) -> int:
        statement = delete(schema.history).where(schema.history.c.customer_id == customer_id)
        return int(self._uow.reader().execute(statement).rowcount)


class ReferenceRepository:
    """Company types and categories (the ``ReferenceRepository`` protocol)."""

    def __init__(self, uow: Session) -> None:
        self._uow = uow

    def add_company_type(self, company_type: CompanyType) -> None:
        _insert_or(
            self._uow.reader(),
            schema.company_types.insert().values(name=company_type.name),
            ValidationError({"name": "this company type exists already"}),
        )

    def get_company_type(self, name: str) -> CompanyType | None:
        statement = select(schema.company_types.c.name).where(schema.company_types.c.name == name)
        found = self._uow.connection.scalar(statement)
        return None if found is None else CompanyType(name=found)

    def company_types(self) -> list[CompanyType]:
        names = self._uow.connection.scalars(select(schema.company_types.c.name)).all()
        return [CompanyType(name=name) for name in sorted(names)]

    def add_category(self, category: Category) -> None:
        _insert_or(
            self._uow.reader(),
            schema.categories.insert().values(
                name=category.name, required_fields=_rows.dumps(list(category.required_fields))
            ),
            ValidationError({"name": "this category exists already"}),
        )

    def get_category(self, name: str) -> Category | None:
        statement = select(schema.categories).where(schema.categories.c.name == name)
        return read_one(self._uow.connection, statement, _rows.category_from_row)

    def categories(self) -> list[Category]:
        rows = self._uow.connection.execute(select(schema.categories)).mappings()
        return sorted(map(_rows.category_from_row, rows), key=lambda category: category.name)


class SettingsRepository:
    """Per-location source switches (the ``SettingsRepository`` protocol)."""

    def __init__(self, uow: Session) -> None:
        self._uow = uow

    def source_enabled(self, source: str, location_id: str) -> bool:
        table = schema.settings
        statement = select(table.c.enabled).where(
            table.c.source == source, table.c.location_id == location_id
        )
        return bool(self._uow.connection.scalar(statement))

    def set_source_enabled(self, source: str, location_id: str, enabled: bool) -> None:
        table, connection = schema.settings, self._uow.reader()
        connection.execute(
            delete(table).where(table.c.source == source, table.c.location_id == location_id)
        )
        connection.execute(
            table.insert().values(source=source, location_id=location_id, enabled=enabled)
        )


class MergeRepository:
    """Merge records for idempotent repeats and unmerge (the ``MergeRepository`` protocol)."""

    def __init__(self, uow: Session) -> None:
        self._uow = uow

    def add(self, merge_id: str, record: Mapping[str, Any]) -> None:
        self.update(merge_id, record)

    def get(self, merge_id: str) -> Mapping[str, Any] | None:
        statement = select(schema.merges.c.record).where(schema.merges.c.merge_id == merge_id)
        found = self._uow.reader().scalar(statement)
        return None if found is None else dict(_rows.loads(found))

    def update(self, merge_id: str, record: Mapping[str, Any]) -> None:
        # Memory replaces the record whether or not it exists; so do we.
        table, connection = schema.merges, self._uow.reader()
        connection.execute(delete(table).where(table.c.merge_id == merge_id))
        connection.execute(table.insert().values(merge_id=merge_id, record=_rows.dumps(record)))

    def remove(self, merge_id: str) -> None:
        table = schema.merges
        self._uow.reader().execute(delete(table).where(table.c.merge_id == merge_id))


_D = schema.dismissals.c


def _dismissal_key(location_id: str, kind: str, left_id: str, right_id: str) -> tuple[Any, ...]:
    low, high = sorted((left_id, right_id))
    return (_D.location_id == location_id, _D.kind == kind, _D.low_id == low, _D.high_id == high)


def forget_dismissals(connection: Connection, kind: str, record_id: str) -> None:
    """Delete the dismissals naming a record that is removed for good."""
    named = or_(_D.low_id == record_id, _D.high_id == record_id)
    connection.execute(delete(schema.dismissals).where(_D.kind == kind, named))


class DismissalRepository:
    """Pairs decided not to be duplicates (the ``DismissalRepository`` protocol)."""

    def __init__(self, uow: Session) -> None:
        self._uow = uow

    def add(self, dismissal: Dismissal) -> Dismissal | None:
        connection = self._uow.reader()
        try:
            with connection.begin_nested():
                connection.execute(
                    schema.dismissals.insert().values(_rows.dismissal_row(dismissal))
                )
        except IntegrityError:
            # The pair is dismissed already: on PostgreSQL perhaps by a transaction that
            # committed while this insert waited for it; this statement sees that commit.
            key = (dismissal.location_id, dismissal.kind, dismissal.left_id, dismissal.right_id)
            statement = select(schema.dismissals).where(*_dismissal_key(*key))
            row = connection.execute(statement).mappings().first()
            if row is None:
                raise
            return _rows.dismissal_from_row(row)
        return None

    def remove(self, location_id: str, kind: str, left_id: str, right_id: str) -> bool:
        key = _dismissal_key(location_id, kind, left_id, right_id)
        removed = self._uow.reader().execute(delete(schema.dismissals).where(*key)).rowcount
        return bool(removed)

    def for_location(self, location_id: str, kind: str) -> list[Dismissal]:
        statement = (
            select(schema.dismissals)
            .where(_D.location_id == location_id, _D.kind == kind)
            .order_by(_D.low_id, _D.high_id)
        )
        return read_all(self._uow.reader(), statement, _rows.dismissal_from_row)
