"""Blocking keys in the database: ``find_similar`` (M6) reads only the blocks it needs.

A location's keys (``match_keys``) are computed the first time ``find_similar`` asks for them,
and ``match_ready`` records that, with the phone region they were computed in. From then on
every committed change of a customer or contact of that location rewrites the record's keys in
the same transaction. Until then writes cost nothing extra: a bulk load never pays for matching
nobody uses.

Matching a new record then costs a few range reads per blocking rule plus the candidates'
rows, whatever the location's size, and gives what a ``customerkit.matching.MatchIndex``
built from the location's live records would give: the same blocks, the same sorted
neighbourhoods in oversized blocks, the same name counts and scorer.

Concurrency: on SQLite every unit of work holds the write lock. On PostgreSQL the first build
locks the tables against writers (``SHARE ROW EXCLUSIVE``) so no commit slips between reading
the rows and marking the location ready, and a writer reads ``match_ready`` after its own
writes, so it sees a build that committed before them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Text,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql

from customerkit.backends.sqlalchemy import _rows, schema
from customerkit.backends.sqlalchemy._bulk import BulkInsert, chunks
from customerkit.matching import MatchConfig, MatchIndex
from customerkit.matching.blocking import name_block
from customerkit.matching.index import blocking_keys
from customerkit.matching.table import TIME_FIELDS, Kind, fields_of
from customerkit.model import Contact, Customer, RecordStatus

__all__ = ["MatchKeyWriter", "StoredBlocks", "ensure_keys", "stored_match_index"]

_M = schema.match_keys.c
_C = schema.customers.c
_K = schema.contacts.c
_KEYS = BulkInsert(schema.match_keys)
_BUILD_BATCH = 20_000
_ARRAY_CHUNK = 10_000
_LIVE = RecordStatus.ACTIVE.value

Record = Customer | Contact


def _live_contacts(*columns: Any) -> Any:
    """Contacts that take part in matching: live, of a live customer (all columns by default)."""
    return (
        select(*(columns or (schema.contacts,)))
        .join(schema.customers, _C.id == _K.customer_id)
        .where(_K.status == _LIVE, schema.LIVE_CUSTOMER)
    )


# Kept keys are tagged with the blocking rules' version: keys made by other rules are rebuilt
# on the location's next find_similar.
_RULES_VERSION = "2"


def _tag(region: str) -> str:
    return f"{region}/{_RULES_VERSION}"


def _region(tag: str) -> str:
    return tag.partition("/")[0]


def _key_rows(
    kind: Kind, location_id: str, records: Sequence[object], region: str
) -> list[tuple[str, str, str, str, str]]:
    keys = blocking_keys(records, kind=kind, region=region)
    return [
        (kind, location_id, block, sort_key, record_id)
        for record_id, found in keys.items()
        for block, sort_key in found
    ]


def ensure_keys(connection: Connection, kind: Kind, location_id: str, region: str) -> None:
    """Compute the location's blocking keys unless they are kept already (in ``region``)."""
    ready = select(schema.match_ready.c.region).where(
        schema.match_ready.c.kind == kind, schema.match_ready.c.location_id == location_id
    )
    if connection.scalar(ready) == _tag(region):
        return
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "LOCK TABLE customers, contacts, match_keys, match_ready IN SHARE ROW EXCLUSIVE MODE"
        )
        if connection.scalar(ready) == _tag(region):  # another session built them meanwhile
            return
    mine = (_M.kind == kind, _M.location_id == location_id)
    connection.execute(delete(schema.match_keys).where(*mine))
    # Only the columns the matcher reads, as plain dicts: no records to build.
    table = schema.customers if kind == "customer" else schema.contacts
    columns = [table.c[name] for name in ("id", *fields_of(kind)) if name in table.c]
    if kind == "customer":
        statement = select(*columns).where(_C.location_id == location_id, schema.LIVE_CUSTOMER)
    else:
        statement = _live_contacts(*columns).where(_C.location_id == location_id)
    result = connection.execute(statement.execution_options(yield_per=_BUILD_BATCH))
    names = list(result.keys())
    for part in result.partitions():
        rows = _dicts(names, part)
        _KEYS.run(connection, _key_rows(kind, location_id, rows, region))
    result.close()
    connection.execute(
        delete(schema.match_ready).where(
            schema.match_ready.c.kind == kind, schema.match_ready.c.location_id == location_id
        )
    )
    connection.execute(
        insert(schema.match_ready).values(kind=kind, location_id=location_id, region=_tag(region))
    )


class MatchKeyWriter:
    """Collects a unit of work's changed customers and contacts; rewrites their keys at commit."""

    def __init__(self) -> None:
        self._changed: dict[tuple[Kind, str], Record | None] = {}

    def changed(self, kind: Kind, record_id: str, record: Record | None) -> None:
        """Note a record's new state (None: removed)."""
        self._changed[kind, record_id] = record

    def forget(self) -> None:
        """Drop what was noted (the transaction rolled back)."""
        self._changed.clear()

    def apply(self, connection: Connection) -> None:
        """Rewrite the keys of the noted records of locations whose keys are kept.

        Call after the records themselves are written: on PostgreSQL that is what makes this
        read of ``match_ready`` wait for, and see, a build running concurrently.
        """
        changed, self._changed = self._changed, {}
        if not changed:
            return
        ready = {
            (row.kind, row.location_id): row.region
            for row in connection.execute(select(schema.match_ready))
        }
        if not ready:
            return
        places = self._places(connection, changed)
        # Customers never change location; a contact's old location is not known here (its
        # customer may be gone), so its keys go whenever any location keeps contact keys.
        kept_kinds = {kind for kind, _ in ready}
        stale = [
            rid
            for (kind, rid), record in changed.items()
            if (kind, places.get(rid)) in ready
            or record is None
            or (kind == "contact" and kind in kept_kinds)
        ]
        for part in chunks(sorted(set(stale))):
            connection.execute(delete(schema.match_keys).where(_M.record_id.in_(part)))
        groups: dict[tuple[Kind, str], list[Record]] = {}
        for (kind, record_id), record in changed.items():
            place = (kind, places.get(record_id))
            if record is not None and record.is_live and place in ready:
                groups.setdefault((kind, place[1]), []).append(record)  # type: ignore[arg-type]
        for (kind, location_id), records in sorted(groups.items()):
            rows = _key_rows(kind, location_id, records, _region(ready[kind, location_id]))
            _KEYS.run(connection, rows)

    @staticmethod
    def _places(
        connection: Connection, changed: Mapping[tuple[Kind, str], Record | None]
    ) -> dict[str, str | None]:
        """Record id -> the location it matches in (None: a contact of no live customer)."""
        places: dict[str, str | None] = {}
        owners: dict[str, list[str]] = {}
        for (_, record_id), record in changed.items():
            if isinstance(record, Customer):
                places[record_id] = record.location_id
            elif isinstance(record, Contact):
                owners.setdefault(record.customer_id, []).append(record_id)
        live: dict[str, str] = {}
        for part in chunks(sorted(owners)):
            statement = select(_C.id, _C.location_id).where(_C.id.in_(part), schema.LIVE_CUSTOMER)
            live.update({row.id: row.location_id for row in connection.execute(statement)})
        for customer_id, contact_ids in owners.items():
            for contact_id in contact_ids:
                places[contact_id] = live.get(customer_id)
        return places


def stored_match_index(
    connection: Connection,
    kind: Kind,
    location_id: str,
    region: str,
    *,
    config: MatchConfig | None = None,
) -> MatchIndex:
    """A ``MatchIndex`` whose blocks live in ``match_keys``; it loads only candidates.

    Computes the location's keys first unless they are kept already (``ensure_keys``). Valid
    inside the unit of work that made it (it reads through that connection).
    """
    ensure_keys(connection, kind, location_id, region)
    blocks = StoredBlocks(connection, kind, location_id)
    return MatchIndex(kind, config=config, region=region, blocks=blocks)


class StoredBlocks:
    """A location's blocks in ``match_keys``: the ``BlockSource`` of a stored match index."""

    def __init__(self, connection: Connection, kind: Kind, location_id: str) -> None:
        self.kind: Kind = kind
        self._connection = connection
        self._location_id = location_id

    def _mine(self) -> tuple[Any, ...]:
        return (_M.kind == self.kind, _M.location_id == self._location_id)

    def neighbours(
        self, block: str, sort_key: str, record_id: str | None, *, cap: int, window: int
    ) -> Sequence[tuple[str, str]]:
        """The members of ``block`` compared with a record there (see ``BlockSource``)."""
        where = [*self._mine(), _M.block == block]
        if record_id is not None:
            where.append(_M.record_id != record_id)
        members = select(_M.sort_key, _M.record_id).where(*where)
        size = self._connection.scalar(
            select(func.count()).select_from(members.limit(cap).subquery())
        )
        if (size or 0) + 1 <= cap:
            rows = self._connection.execute(members.order_by(_M.sort_key, _M.record_id))
            return [(row.sort_key, row.record_id) for row in rows]
        # The window on both sides of where (sort_key, record_id) sorts, as in blocking.neighbours.
        entry = (sort_key, record_id or "")
        before = or_(_M.sort_key < entry[0], and_(_M.sort_key == entry[0], _M.record_id < entry[1]))
        lower = members.where(before).order_by(_M.sort_key.desc(), _M.record_id.desc())
        upper = members.where(not_(before)).order_by(_M.sort_key, _M.record_id)
        below = self._connection.execute(lower.limit(window - 1)).all()
        above = self._connection.execute(upper.limit(window - 1)).all()
        return [(row.sort_key, row.record_id) for row in (*reversed(below), *above)]

    def _matched(self, *where: Any) -> Any:
        """The live records' columns the matcher reads, as plain rows (no records built)."""
        table = schema.customers if self.kind == "customer" else schema.contacts
        wanted = ("id", *fields_of(self.kind), *TIME_FIELDS)
        columns = [table.c[name] for name in wanted if name in table.c]
        if self.kind == "customer":
            return select(*columns).where(*where, schema.LIVE_CUSTOMER), table
        return _live_contacts(*columns).where(*where), table

    def records(self, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """Every live record of the location (contacts: of a live customer), in id order.

        As mappings of the columns the matcher reads (what ``load_rows`` gives), in keyset
        pages of ``batch_size``: each starts after the last id of the one before.
        """
        mine, table = self._matched(_C.location_id == self._location_id)
        after: str | None = None
        while True:
            page = mine.order_by(table.c.id).limit(batch_size)
            if after is not None:
                page = page.where(table.c.id > after)
            rows = _all_dicts(self._connection.execute(page))
            if rows:
                yield rows
            if len(rows) < batch_size:
                return
            after = rows[-1]["id"]

    def load_rows(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The matcher's columns of the live records with these ids, in any order."""
        found: list[dict[str, Any]] = []
        table = schema.customers if self.kind == "customer" else schema.contacts
        if self._connection.dialect.name == "postgresql":
            # One array parameter per many ids: an IN list of hundreds costs its parsing and a
            # round trip per few hundred ids, and a chunk of pairs reads thousands.
            wanted = bindparam("ids", type_=postgresql.ARRAY(Text))
            statement, _ = self._matched(table.c.id == any_(wanted))
            for part in chunks(sorted(ids), _ARRAY_CHUNK):
                found.extend(_all_dicts(self._connection.execute(statement, {"ids": list(part)})))
            return found
        for part in chunks(sorted(ids)):
            statement, _ = self._matched(table.c.id.in_(part))
            found.extend(_all_dicts(self._connection.execute(statement)))
        return found

    def rows(self, batch_size: int) -> Iterator[list[tuple[str, str, str]]]:
        """Every kept key of the location as ``(block, sort key, id)``, in that order, in pages."""
        key = (_M.block, _M.sort_key, _M.record_id)
        after: tuple[str, str, str] | None = None
        while True:
            page = select(*key).where(*self._mine()).order_by(*key).limit(batch_size)
            if after is not None:
                page = page.where(tuple_(*key) > tuple_(*(literal(v) for v in after)))
            found = [(row[0], row[1], row[2]) for row in self._connection.execute(page)]
            if found:
                yield found
            if len(found) < batch_size:
                return
            after = found[-1]

    def load(self, ids: Sequence[str]) -> list[Record]:
        """The live records (contacts: of a live customer) with these ids."""
        found: list[Record] = []
        for part in chunks(sorted(ids)):
            if self.kind == "customer":
                statement = select(schema.customers).where(_C.id.in_(part), schema.LIVE_CUSTOMER)
                rows = self._connection.execute(statement).mappings()
                found.extend(_rows.customer_from_row(row) for row in rows)
            else:
                statement = _live_contacts().where(_K.id.in_(part))
                rows = self._connection.execute(statement).mappings()
                found.extend(_rows.contact_from_row(row) for row in rows)
        return found

    def count_names(self, names: Sequence[str]) -> Mapping[str, int]:
        """How many of the location's records have each of these name keys."""
        counts = dict.fromkeys(names, 0)
        wanted = sorted({name for name in names if name})
        if not wanted:
            return counts
        blocks = {name_block(self.kind, name): name for name in wanted}
        # In parts: a location's duplicates ask for a whole chunk of records' names at once.
        for part in chunks(sorted(blocks)):
            statement = (
                select(_M.block, func.count())
                .where(*self._mine(), _M.block.in_(part))
                .group_by(_M.block)
            )
            for block, count in self._connection.execute(statement):
                counts[blocks[block]] = count
        return counts

    def count_named(self) -> int:
        """How many of the location's records have a name."""
        # Every name block's key starts with the rule's prefix: a range of the primary key.
        prefix = name_block(self.kind, "")
        statement = select(func.count()).where(
            *self._mine(), _M.block >= prefix, _M.block < prefix[:-1] + chr(ord(prefix[-1]) + 1)
        )
        return int(self._connection.scalar(statement) or 0)

    def name_of(self, record_id: str) -> str | None:
        """The name key ``record_id`` is kept under here, or None (see ``BlockSource``)."""
        prefix = name_block(self.kind, "")
        statement = select(_M.block).where(
            *self._mine(),
            _M.record_id == record_id,
            _M.block >= prefix,
            _M.block < prefix[:-1] + chr(ord(prefix[-1]) + 1),
        )
        block = self._connection.scalar(statement.limit(1))
        return None if block is None else str(block)[len(prefix) :]


def _dicts(names: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as dicts by column name.

    Zipping the names with each plain row costs two thirds of what ``.mappings()`` does, and
    the chunked matcher loads every record several times.
    """
    return [dict(zip(names, row, strict=True)) for row in rows]


def _all_dicts(result: Any) -> list[dict[str, Any]]:
    """Every row of a result as a dict by column name."""
    return _dicts(list(result.keys()), result)
