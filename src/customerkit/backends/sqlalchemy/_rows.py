"""Rows to model and back: the one place that knows both the schema and the domain classes.

Free-form values (``extra``, history ``changes``, merge records) are stored as JSON text with
a small tagged encoding, so what comes back equals what went in: tuples stay tuples and
datetimes stay aware datetimes, as they do in the memory backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any

import attrs

from customerkit.backends.sqlalchemy import schema
from customerkit.backends.sqlalchemy.schema import as_utc
from customerkit.identity import email_key, username_key
from customerkit.model import (
    Category,
    ChangeRecord,
    Contact,
    Customer,
    CustomerKind,
    Dismissal,
    ManagedBy,
    RecordStatus,
    Role,
    SearchField,
    SourceLink,
    User,
)
from customerkit.text import fold, number_key, words

_TUPLE, _DATETIME, _DICT = "$tuple", "$datetime", "$dict"

#: A row read by SQLAlchemy (``RowMapping``), keyed by column name.
Row = Mapping[Any, Any]

#: Word-table code and customer attribute of each searchable field (S1), as in
#: ``customerkit.search.query.search_document``.
SEARCH_FIELDS: dict[SearchField, tuple[int, str]] = {
    SearchField.NAME: (schema.NAME, "company_name"),
    SearchField.CITY: (schema.CITY, "city"),
    SearchField.STATE: (schema.STATE, "state"),
    SearchField.NUMBER: (schema.NUMBER, "customer_number"),
}


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            msg = "stored datetimes must be timezone-aware"
            raise TypeError(msg)
        return {_DATETIME: value.astimezone(UTC).isoformat()}
    if isinstance(value, Mapping):
        encoded = {str(key): _encode(item) for key, item in value.items()}
        # A plain mapping whose keys look like tags is wrapped so it cannot be misread.
        return {_DICT: encoded} if any(key.startswith("$") for key in encoded) else encoded
    msg = f"cannot store a {type(value).__name__} in a JSON column; use plain data"
    raise TypeError(msg)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == _TUPLE:
            return tuple(_decode(item) for item in inner)
        if tag == _DATETIME:
            return datetime.fromisoformat(inner)
        if tag == _DICT:
            return {key: _decode(item) for key, item in inner.items()}
    return {key: _decode(item) for key, item in value.items()}


_SCALARS = frozenset({str, int, float, bool, type(None)})


def dumps(value: Any) -> str:
    """JSON text for a value of plain data (tuples and aware datetimes included)."""
    return json.dumps(_encode(value), ensure_ascii=False, separators=(",", ":"))


def dumps_changes(changes: Mapping[str, tuple[Any, Any]]) -> str:
    """JSON text for history ``changes``: each ``(old, new)`` pair as a 2-list."""
    encoded = {
        # The fast path (bulk loads write a million of these): scalar pairs need no tagging.
        name: [old, new]
        if type(old) in _SCALARS and type(new) in _SCALARS
        else [_encode(old), _encode(new)]
        for name, (old, new) in changes.items()
    }
    return json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))


def loads(text: str) -> Any:
    """The value ``dumps`` wrote."""
    # Most customers have no alternates, staff or extra fields: skip the parser for those.
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return _decode(json.loads(text))


class _Copied:
    """The fields of a model class a table stores as they are, in columns of the same names.

    Read from the class (its attrs fields less those the table converts), so a field added to
    a model and its table needs no line here. ``row`` and ``fields`` copy them in C
    (``attrgetter``, ``itemgetter``): a microsecond or two per row more than hand-written
    literals, which does not show beside the statement that reads or writes the row.
    """

    def __init__(self, cls: type, converted: str, *, columns: Sequence[str] = ()) -> None:
        """``converted``: the fields the table converts, space-separated (as in ``namedtuple``).

        ``columns``: the table's columns in order, when its rows are read by position.
        """
        skip = converted.split()
        self.names = tuple(f.name for f in attrs.fields(cls) if f.name not in skip)
        if len(self.names) < 2:  # the getters of one name give a value, not a tuple
            msg = f"{cls.__name__} copies fewer than two fields; write its row by hand"
            raise ValueError(msg)
        self._of_record = attrgetter(*self.names)
        self._of_row = itemgetter(
            *(columns.index(n) for n in self.names) if columns else self.names
        )

    def row(self, record: object) -> dict[str, Any]:
        """The copied columns of a record."""
        return dict(zip(self.names, self._of_record(record), strict=False))

    def fields(self, row: Row | Sequence[Any]) -> dict[str, Any]:
        """The copied fields a row holds (by position when the columns were given)."""
        return dict(zip(self.names, self._of_row(row), strict=False))


# -- customers ---------------------------------------------------------------------------------


def _list(values: tuple[str, ...]) -> str:
    return dumps(list(values)) if values else "[]"


#: A ``customers`` row's columns in table order, as ``customer_from_values`` reads them.
CUSTOMER_COLUMNS = tuple(column.name for column in schema.customers.columns)
_CUSTOMER_AT = {name: i for i, name in enumerate(CUSTOMER_COLUMNS)}
_CUSTOMER_VALUES = itemgetter(*CUSTOMER_COLUMNS)
_CUSTOMER = _Copied(
    Customer,
    "kind alternate_emails alternate_phones assigned_staff source extra status "
    "created_at updated_at",
    columns=CUSTOMER_COLUMNS,
)


def customer_row(customer: Customer) -> dict[str, Any]:
    """The ``customers`` row of a customer, canonical keys included."""
    row = _CUSTOMER.row(customer)
    source = customer.source
    row.update(
        kind=customer.kind.value,
        number_key=number_key(customer.customer_number),
        alternate_emails=_list(customer.alternate_emails),
        alternate_phones=_list(customer.alternate_phones),
        username_key=None if customer.username is None else username_key(customer.username),
        assigned_staff=_list(customer.assigned_staff),
        source_name=None if source is None else source.source,
        source_external_id=None if source is None else source.external_id,
        source_last_synced_at=None if source is None else source.last_synced_at,
        source_fields=None if source is None else dumps(list(source.fields)),
        extra=dumps(dict(customer.extra)) if customer.extra else "{}",
        status=customer.status.value,
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )
    return row


def customer_from_row(row: Row) -> Customer:
    """The customer a ``customers`` row holds."""
    return customer_from_values(_CUSTOMER_VALUES(row))


def customer_from_values(values: Sequence[Any]) -> Customer:
    """The customer a ``customers`` row holds, its values in ``CUSTOMER_COLUMNS`` order.

    The values may be the driver's own (``exec_driver_sql``): timestamps are read as
    ``schema.UtcDateTime`` reads them.
    """
    at = _CUSTOMER_AT
    source = None
    if values[at["source_name"]] is not None:
        source = SourceLink(
            source=values[at["source_name"]],
            external_id=values[at["source_external_id"]],
            last_synced_at=as_utc(values[at["source_last_synced_at"]]),
            fields=tuple(loads(values[at["source_fields"]] or "[]")),
        )
    created_at = as_utc(values[at["created_at"]])
    updated_at = values[at["updated_at"]]
    return Customer(
        **_CUSTOMER.fields(values),
        kind=CustomerKind(values[at["kind"]]),
        alternate_emails=loads(values[at["alternate_emails"]]),
        alternate_phones=loads(values[at["alternate_phones"]]),
        assigned_staff=tuple(loads(values[at["assigned_staff"]])),
        source=source,
        extra=loads(values[at["extra"]]),
        status=RecordStatus(values[at["status"]]),
        created_at=created_at,
        # Most customers were never changed: one timestamp read twice.
        updated_at=created_at if updated_at == values[at["created_at"]] else as_utc(updated_at),
    )


@lru_cache(maxsize=65536)
def words_of(text: str) -> tuple[str, ...]:
    """``customerkit.text.words``, cached: cities and states repeat across customers.

    Names and numbers do not repeat, and ``words`` splits ASCII text by regular expression,
    several times faster than the cache would save.
    """
    return words(text)


def search_words(customer: Customer) -> list[tuple[int, str]]:
    """``(field code, folded word)`` of a customer's searchable fields (S2); none if not live."""
    if not customer.is_live:
        return []
    return [
        (code, word)
        for code, attribute in SEARCH_FIELDS.values()
        for word in words_of(getattr(customer, attribute))
    ]


def folded_name(customer: Customer) -> str:
    """The folded company name that ranks hits (S5)."""
    return fold(customer.company_name)


# -- contacts ----------------------------------------------------------------------------------


def external_key(contact: Contact) -> str | None:
    """The canonical email that must be unique among live external users (K3), if any."""
    if contact.external_user and contact.is_live and contact.email:
        return email_key(contact.email)
    return None


_CONTACT = _Copied(
    Contact, "alternate_emails alternate_phones managed_by added_by_fleet status external_user"
)


def contact_row(contact: Contact) -> dict[str, Any]:
    """The ``contacts`` row of a contact."""
    row = _CONTACT.row(contact)
    row.update(
        alternate_emails=_list(contact.alternate_emails),
        alternate_phones=_list(contact.alternate_phones),
        managed_by=contact.managed_by.value,
        added_by_fleet=contact.added_by_fleet,
        external_user=contact.external_user,
        external_key=external_key(contact),
        status=contact.status.value,
    )
    return row


def contact_from_row(row: Row) -> Contact:
    """The contact a ``contacts`` row holds."""
    return Contact(
        **_CONTACT.fields(row),
        alternate_emails=loads(row["alternate_emails"]),
        alternate_phones=loads(row["alternate_phones"]),
        managed_by=ManagedBy(row["managed_by"]),
        # SQLite gives booleans back as 0 and 1.
        added_by_fleet=bool(row["added_by_fleet"]),
        external_user=bool(row["external_user"]),
        status=RecordStatus(row["status"]),
    )


# -- users, history, reference data ------------------------------------------------------------

_USER = _Copied(User, "role has_login")


def user_row(user: User) -> dict[str, Any]:
    """The ``users`` row of a user."""
    return {**_USER.row(user), "role": int(user.role), "has_login": user.has_login}


def user_from_row(row: Row) -> User:
    """The user a ``users`` row holds."""
    return User(**_USER.fields(row), role=Role(row["role"]), has_login=bool(row["has_login"]))


_HISTORY = _Copied(ChangeRecord, "changes")


def history_row(record: ChangeRecord) -> dict[str, Any]:
    """The ``history`` row of a change record (its ``seq`` already allocated)."""
    # Each change is an (old, new) pair: stored as a 2-list, read back as a tuple.
    return {**_HISTORY.row(record), "changes": dumps_changes(record.changes)}


def history_from_row(row: Row) -> ChangeRecord:
    """The change record a ``history`` row holds."""
    changes = loads(row["changes"])
    return ChangeRecord(
        **_HISTORY.fields(row), changes={name: tuple(pair) for name, pair in changes.items()}
    )


_DISMISSAL = _Copied(Dismissal, "left_id right_id")


def dismissal_row(dismissal: Dismissal) -> dict[str, Any]:
    """The ``dismissals`` row of a dismissal (its ids in sorted order)."""
    low, high = sorted((dismissal.left_id, dismissal.right_id))
    return {**_DISMISSAL.row(dismissal), "low_id": low, "high_id": high}


def dismissal_from_row(row: Row) -> Dismissal:
    """The dismissal a ``dismissals`` row holds."""
    return Dismissal(**_DISMISSAL.fields(row), left_id=row["low_id"], right_id=row["high_id"])


def category_from_row(row: Row) -> Category:
    """The category a ``categories`` row holds."""
    return Category(name=row["name"], required_fields=tuple(loads(row["required_fields"])))
