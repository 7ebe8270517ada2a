"""A bulk load's rows, column by column, from a chunk's validated values.

``_rows.customer_row`` and ``_rows.history_row`` say what the rows of a customer are, from a
``Customer``; a load of a million customers builds the same rows here straight from
``NewCustomers``, without a ``Customer`` or ``ChangeRecord`` per row: each column in one pass
over the chunk, and what the whole chunk shares (location, actor, the moment, the source)
converted once. ``tests/test_bulk_load.py`` compares both ways row for row.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import Connection

from customerkit.backends.sqlalchemy import _rows
from customerkit.backends.sqlalchemy._bulk import db_datetime
from customerkit.identity import username_key
from customerkit.model import RecordStatus
from customerkit.ports import NewCustomers
from customerkit.text import number_key

_LIVE = RecordStatus.ACTIVE.value
#: A new customer's version (the model's default; the row tests compare).
_FIRST_VERSION = 1


def customer_rows(
    connection: Connection, chunk: NewCustomers, columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    """The chunk's ``customers`` rows, ``columns`` in order, datetimes stored values already."""
    count = len(chunk)
    values = chunk.values

    def same(value: Any) -> Any:
        return itertools.repeat(value, count)

    def column(name: str) -> list[Any]:
        return [row[name] for row in values]

    at = db_datetime(connection, chunk.at)
    source = chunk.source
    numbers = column("customer_number")
    usernames = column("username")
    found: dict[str, Any] = {
        "id": chunk.ids,
        "location_id": same(chunk.location_id),
        "kind": [kind.value for kind in chunk.kinds],
        "customer_number": numbers,
        "number_key": [number_key(number) for number in numbers],
        "alternate_emails": same("[]"),
        "alternate_phones": same("[]"),
        "username": usernames,
        "username_key": [None if name is None else username_key(name) for name in usernames],
        "password_hash": chunk.password_hashes,
        "assigned_staff": same("[]"),
        "source_name": same(None if source is None else source.source),
        "source_external_id": same(None if source is None else source.external_id),
        "source_last_synced_at": same(
            None if source is None else db_datetime(connection, source.last_synced_at)
        ),
        "source_fields": same(None if source is None else _rows.dumps(list(source.fields))),
        "extra": [_rows.dumps(dict(extra)) if extra else "{}" for extra in column("extra")],
        "created_at": same(at),
        "updated_at": same(at),
        "version": same(_FIRST_VERSION),
        "status": same(_LIVE),
        "merged_into": same(None),
    }
    # The rest are validation's text values as they are (a column it lacks fails here). Not
    # strict: the shared values repeat without end.
    picked = (found[name] if name in found else column(name) for name in columns)
    return list(zip(*picked, strict=False))


def history_rows(
    connection: Connection, chunk: NewCustomers, seqs: Sequence[int]
) -> list[tuple[Any, ...]]:
    """The ``history`` rows of the chunk's creation records, in the table's column order."""
    at = db_datetime(connection, chunk.at)
    action, actor_id = chunk.action, chunk.actor_id
    return [
        (seq, "customer", customer_id, customer_id, action, actor_id, at, changes_text(changes))
        for seq, customer_id, changes in zip(seqs, chunk.ids, chunk.changes, strict=True)
    ]


#: ``"name":[null,`` of each field name, JSON-encoded once.
_NEW_VALUE_PREFIX: dict[str, str] = {}


def changes_text(changes: Mapping[str, tuple[Any, Any]]) -> str:
    """``_rows.dumps_changes(changes)``: a creation's pairs (nothing, text) written directly.

    json's own string encoder writes each value, as ``dumps_changes`` does through
    ``json.dumps`` (with ``ensure_ascii=False``); anything but ``(None, text)`` pairs (the
    ``extra`` mapping, the password marker) goes through ``dumps_changes`` itself.
    """
    parts = []
    for name, (old, new) in changes.items():
        if old is not None or type(new) is not str:
            return _rows.dumps_changes(changes)
        prefix = _NEW_VALUE_PREFIX.get(name)
        if prefix is None:
            prefix = _NEW_VALUE_PREFIX[name] = f"{encode_basestring(name)}:[null,"
        parts.append(prefix + encode_basestring(new) + "]")
    return "{" + ",".join(parts) + "}"
