"""Rows to model and back: the one place that knows both the schema and the domain classes.

Free-form values (``extra``, history ``changes``, merge records) are stored as JSON text with
a small tagged encoding, so what comes back equals what went in: tuples stay tuples and
datetimes stay aware datetimes, as they do in the memory backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from customerkit.backends.sqlalchemy import schema
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


# -- customers ---------------------------------------------------------------------------------


def _list(values: tuple[str, ...]) -> str:
    return dumps(list(values)) if values else "[]"


def customer_row(customer: Customer) -> dict[str, Any]:
    """The ``customers`` row of a customer, canonical keys included."""
    source = customer.source
    return {
        "id": customer.id,
        "location_id": customer.location_id,
        "kind": customer.kind.value,
        "company_name": customer.company_name,
        "customer_number": customer.customer_number,
        "number_key": number_key(customer.customer_number),
        "address_line1": customer.address_line1,
        "address_line2": customer.address_line2,
        "city": customer.city,
        "state": customer.state,
        "postal_code": customer.postal_code,
        "country": customer.country,
        "email": customer.email,
        "phone": customer.phone,
        "phone_extension": customer.phone_extension,
        "fax": customer.fax,
        "alternate_emails": _list(customer.alternate_emails),
        "alternate_phones": _list(customer.alternate_phones),
        "company_type": customer.company_type,
        "category": customer.category,
        "username": customer.username,
        "username_key": None if customer.username is None else username_key(customer.username),
        "password_hash": customer.password_hash,
        "assigned_staff": dumps(list(customer.assigned_staff)) if customer.assigned_staff else "[]",
        "source_name": None if source is None else source.source,
        "source_external_id": None if source is None else source.external_id,
        "source_last_synced_at": None if source is None else source.last_synced_at,
        "source_fields": None if source is None else dumps(list(source.fields)),
        "extra": dumps(dict(customer.extra)) if customer.extra else "{}",
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
        "version": customer.version,
        "status": customer.status.value,
        "merged_into": customer.merged_into,
    }


def customer_from_row(row: Row) -> Customer:
    """The customer a ``customers`` row holds."""
    source = None
    if row["source_name"] is not None:
        source = SourceLink(
            source=row["source_name"],
            external_id=row["source_external_id"],
            last_synced_at=row["source_last_synced_at"],
            fields=tuple(loads(row["source_fields"] or "[]")),
        )
    return Customer(
        id=row["id"],
        location_id=row["location_id"],
        kind=CustomerKind(row["kind"]),
        company_name=row["company_name"],
        customer_number=row["customer_number"],
        address_line1=row["address_line1"],
        address_line2=row["address_line2"],
        city=row["city"],
        state=row["state"],
        postal_code=row["postal_code"],
        country=row["country"],
        email=row["email"],
        phone=row["phone"],
        phone_extension=row["phone_extension"],
        fax=row["fax"],
        alternate_emails=loads(row["alternate_emails"]),
        alternate_phones=loads(row["alternate_phones"]),
        company_type=row["company_type"],
        category=row["category"],
        username=row["username"],
        password_hash=row["password_hash"],
        assigned_staff=tuple(loads(row["assigned_staff"])),
        source=source,
        extra=loads(row["extra"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        status=RecordStatus(row["status"]),
        merged_into=row["merged_into"],
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


def contact_row(contact: Contact) -> dict[str, Any]:
    """The ``contacts`` row of a contact."""
    return {
        "id": contact.id,
        "customer_id": contact.customer_id,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "email": contact.email,
        "phone": contact.phone,
        "alternate_emails": _list(contact.alternate_emails),
        "alternate_phones": _list(contact.alternate_phones),
        "title": contact.title,
        "managed_by": contact.managed_by.value,
        "added_by_fleet": contact.added_by_fleet,
        "external_user": contact.external_user,
        "external_key": external_key(contact),
        "one_time_case_id": contact.one_time_case_id,
        "last_communicated_at": contact.last_communicated_at,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "version": contact.version,
        "status": contact.status.value,
        "merged_into": contact.merged_into,
    }


def contact_from_row(row: Row) -> Contact:
    """The contact a ``contacts`` row holds."""
    return Contact(
        id=row["id"],
        customer_id=row["customer_id"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        email=row["email"],
        phone=row["phone"],
        alternate_emails=loads(row["alternate_emails"]),
        alternate_phones=loads(row["alternate_phones"]),
        title=row["title"],
        managed_by=ManagedBy(row["managed_by"]),
        added_by_fleet=bool(row["added_by_fleet"]),
        external_user=bool(row["external_user"]),
        one_time_case_id=row["one_time_case_id"],
        last_communicated_at=row["last_communicated_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        status=RecordStatus(row["status"]),
        merged_into=row["merged_into"],
    )


# -- users, history, reference data ------------------------------------------------------------


def user_row(user: User) -> dict[str, Any]:
    """The ``users`` row of a user."""
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "role": int(user.role),
        "location_id": user.location_id,
        "has_login": user.has_login,
        "fleet_customer_id": user.fleet_customer_id,
    }


def user_from_row(row: Row) -> User:
    """The user a ``users`` row holds."""
    return User(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        role=Role(row["role"]),
        location_id=row["location_id"],
        has_login=bool(row["has_login"]),
        fleet_customer_id=row["fleet_customer_id"],
    )


def history_row(record: ChangeRecord) -> dict[str, Any]:
    """The ``history`` row of a change record (its ``seq`` already allocated)."""
    return {
        "seq": record.seq,
        "entity": record.entity,
        "entity_id": record.entity_id,
        "customer_id": record.customer_id,
        "action": record.action,
        "actor_id": record.actor_id,
        "at": record.at,
        # Each change is an (old, new) pair: stored as a 2-list, read back as a tuple.
        "changes": dumps_changes(record.changes),
    }


def dismissal_row(dismissal: Dismissal) -> dict[str, Any]:
    """The ``dismissals`` row of a dismissal (its ids in sorted order)."""
    low, high = sorted((dismissal.left_id, dismissal.right_id))
    return {
        "location_id": dismissal.location_id,
        "kind": dismissal.kind,
        "low_id": low,
        "high_id": high,
        "actor_id": dismissal.actor_id,
        "at": dismissal.at,
    }


def dismissal_from_row(row: Row) -> Dismissal:
    """The dismissal a ``dismissals`` row holds."""
    return Dismissal(
        kind=row["kind"],
        location_id=row["location_id"],
        left_id=row["low_id"],
        right_id=row["high_id"],
        actor_id=row["actor_id"],
        at=row["at"],
    )


def history_from_row(row: Row) -> ChangeRecord:
    """The change record a ``history`` row holds."""
    changes = loads(row["changes"])
    return ChangeRecord(
        entity=row["entity"],
        entity_id=row["entity_id"],
        customer_id=row["customer_id"],
        action=row["action"],
        actor_id=row["actor_id"],
        at=row["at"],
        changes={name: tuple(pair) for name, pair in changes.items()},
        seq=row["seq"],
    )


def category_from_row(row: Row) -> Category:
    """The category a ``categories`` row holds."""
    return Category(name=row["name"], required_fields=tuple(loads(row["required_fields"])))
