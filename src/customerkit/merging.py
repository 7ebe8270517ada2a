"""The rules of a merge, as pure functions.

What a merge of contacts or customers does to the records, decided without reading or writing
anything: which requests are refused, which value of each field survives, which addresses and
numbers are kept as alternates, and where a chain of merged ids ends. The orchestration (reading
the records, locking, writing the tombstones, the merge record and history) lives in
``customerkit.services.merge``; this module imports no storage and no service.

One mechanism serves both kinds; a ``MergeKind`` says what differs (which fields fill blanks,
what must be shared, what moves along, what refuses a merge).
"""

# Rules M3, M4.

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

from customerkit.errors import CustomerKitError, MergeError, NotFound, ValidationError
from customerkit.identity import email_key, phone_key
from customerkit.model import (
    CUSTOMER_FILL_FIELDS,
    Contact,
    Customer,
    RecordStatus,
    Survivorship,
)

__all__ = [
    "CONTACT_MERGE",
    "CUSTOMER_MERGE",
    "MergeKind",
    "as_stored",
    "check_request",
    "follow_merges",
    "live_other",
    "merge_record_id",
    "plan",
]

#: A record a merge takes: a contact or a customer.
R = TypeVar("R", bound=Contact | Customer)


def _no_changes(main: Any) -> dict[str, Any]:
    return {}


def _default_alternates() -> dict[str, str]:
    return {"email": "alternate_emails", "phone": "alternate_phones"}


@attrs.frozen(kw_only=True)
class MergeKind(Generic[R]):
    """What a merge of one kind of record needs to know."""

    name: str
    fill_fields: tuple[str, ...]
    customer_of: Callable[[R], str]
    same_group: Callable[[R], str]
    refuse: Callable[[R, Sequence[R]], str | None]
    #: Changes an unmerged record takes from the main (contacts follow it to its customer).
    follow_main: Callable[[R], dict[str, Any]] = _no_changes
    #: Fields whose values that do not survive are kept, with the field keeping them.
    alternates: Mapping[str, str] = attrs.field(factory=_default_alternates)


def as_stored(value: Any) -> Any:
    """A value as the merge record stores it (JSON-friendly, equal after a round trip)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return list(value) if isinstance(value, tuple) else value


def merge_record_id(kind: str, main_id: str, other_ids: Sequence[str], attempt: int) -> str:
    """The id of a merge: the same records give the same id, so a repeat finds the first."""
    digest = hashlib.sha256(f"{kind}:{main_id}:{','.join(sorted(other_ids))}".encode())
    return f"m-{digest.hexdigest()[:24]}-{attempt}"


def check_request(main_id: str, other_ids: Sequence[str], limit: int) -> list[str]:
    """The distinct ids to merge into the main, or the error saying what is wrong with them."""
    if isinstance(other_ids, str) or not isinstance(other_ids, Sequence):
        raise ValidationError({"other_ids": "pass a list of the ids to merge into the main"})
    others = list(dict.fromkeys(other_ids))
    if not others:
        raise MergeError("name at least one record to merge into the main", field="other_ids")
    if main_id in others:
        raise MergeError("a record cannot be merged into itself", field="other_ids")
    if len(others) + 1 > limit:
        raise MergeError(f"a merge takes at most {limit} records; split it", field="other_ids")
    return others


def live_other(found: Mapping[str, R | None], kind: MergeKind[R], main: R, other_id: str) -> R:
    """The record ``other_id`` names, if it may be merged into ``main``.

    ``NotFound`` when it does not exist (or is deleted); ``MergeError`` when it belongs to
    another group (before anything else is said about it) or was merged already.
    """
    other = found.get(other_id) if isinstance(other_id, str) else None
    if other is None or other.status is RecordStatus.DELETED:
        raise NotFound(kind.name, str(other_id))
    if kind.same_group(other) != kind.same_group(main):  # before naming anything about it
        raise MergeError(
            f"{kind.name} {other.id} belongs to another "
            f"{'customer' if kind.name == 'contact' else 'location'}; merge only within one",
            field="other_ids",
        )
    if other.status is RecordStatus.MERGED:
        raise MergeError(
            f"{kind.name} {other.id} was merged into {other.merged_into} already",
            field="other_ids",
        )
    return other


def follow_merges(record: R | None, get: Callable[[str], R | None]) -> R | None:
    """Where a record's chain of merges ends: the record itself unless it is a tombstone.

    ``get`` reads a record by id. A chain that loops or points at nothing stops where it
    breaks, so a damaged store gives an answer (the caller decides whether it is live).
    """
    seen: set[str] = set()
    while (
        record is not None
        and record.status is RecordStatus.MERGED
        and record.merged_into
        and record.id not in seen
    ):
        seen.add(record.id)
        record = get(record.merged_into)
    return record


def _survivor(rule: Survivorship, name: str, records: Sequence[R]) -> R | None:
    """The record whose value of ``name`` survives; ``records`` starts with the main."""
    candidates = [r for r in records if getattr(r, name)]
    if not candidates:
        return None
    if rule is Survivorship.MOST_RECENT:  # max keeps the first of equals: the main wins ties
        return max(candidates, key=lambda r: r.updated_at)
    if rule is Survivorship.LONGEST:
        return max(candidates, key=lambda r: len(str(getattr(r, name))))
    return candidates[0]


def _same_key(field: str, region: str) -> Callable[[str], str]:
    """What makes two values of ``field`` the same address or number."""

    def key(value: str) -> str:
        try:
            if field == "email":
                return email_key(value)
            return str(phone_key(value, region=region))
        except (CustomerKitError, ValueError):  # stored before a rule tightened: keep as typed
            return value.strip().casefold()

    return key


def _alternates(field: str, kept: str, records: Sequence[R], region: str) -> tuple[str, ...]:
    """The values of ``field`` (and alternates of it) other than ``kept``, each once."""
    key = _same_key(field, region)
    seen = {key(kept)} if kept else set()
    out = []
    for record in records:
        alternates = getattr(record, f"alternate_{field}s")
        for value in (getattr(record, field), *alternates):
            if value and key(value) not in seen:
                seen.add(key(value))
                out.append(value)
    return tuple(out)


def _values(record: R, field: str) -> set[str]:
    return {getattr(record, field), *getattr(record, f"alternate_{field}s")}


def plan(
    kind: MergeKind[R],
    main: R,
    others: Sequence[R],
    now: datetime,
    rules: Mapping[str, Survivorship] | None = None,
    *,
    region: str = "US",
) -> tuple[R, dict[str, str]]:
    """The merged main and where every field's value comes from, without writing anything."""
    changes: dict[str, Any] = {}
    provenance = dict.fromkeys(kind.fill_fields, main.id)
    source = getattr(main, "source", None)
    locked = set(source.fields) if source is not None else set()  # the DMS wins (rule D4)
    for name in kind.fill_fields:
        if name in locked:
            continue
        rule = (rules or {}).get(name, Survivorship.MAIN)
        if isinstance(main, Contact) and name == "email":
            rule = Survivorship.MAIN
        survivor = _survivor(rule, name, (main, *others))
        if survivor is not None and survivor is not main:
            changes[name] = getattr(survivor, name)
            provenance[name] = survivor.id
    for name, alternate_field in kind.alternates.items():
        kept = changes.get(name, getattr(main, name))
        alternates = _alternates(name, kept, (main, *others), region)
        if alternates != getattr(main, alternate_field):
            changes[alternate_field] = alternates
            provenance[alternate_field] = ",".join(
                dict.fromkeys(r.id for r in (main, *others) if set(alternates) & _values(r, name))
            )
    if isinstance(main, Contact):
        contacts = [c for c in (main, *others) if isinstance(c, Contact)]
        latest = max(
            (c for c in contacts if c.last_communicated_at is not None),
            key=lambda c: c.last_communicated_at or now,
            default=None,
        )
        if latest is not None:
            changes["last_communicated_at"] = latest.last_communicated_at
            provenance["last_communicated_at"] = latest.id
    merged = attrs.evolve(main, **changes, updated_at=now, version=main.version + 1)
    return merged, provenance


def _refuse_contacts(main: Contact, others: Sequence[Contact]) -> str | None:
    if any(o.external_user for o in others) and main.external_user:
        emails = {o.email.casefold() for o in (main, *others) if o.external_user}
        if len(emails) > 1:
            return "two external users with different emails cannot be merged"
    return None


def _refuse_customers(main: Customer, others: Sequence[Customer]) -> str | None:
    if any(o.username for o in others):
        return "a merged customer's username would be lost; usernames never move"
    if any(o.source is not None for o in others):
        return "a customer imported from a source can only be the main of a merge (the DMS wins)"
    return None


def _contact_customer(contact: Contact) -> str:
    return contact.customer_id


def _follow_customer(main: Contact) -> dict[str, Any]:
    return {"customer_id": main.customer_id}


def _customer_id(customer: Customer) -> str:
    return customer.id


def _customer_location(customer: Customer) -> str:
    return customer.location_id


CONTACT_MERGE: MergeKind[Contact] = MergeKind(
    name="contact",
    fill_fields=("first_name", "last_name", "email", "phone", "title"),
    customer_of=_contact_customer,
    same_group=_contact_customer,
    refuse=_refuse_contacts,
    follow_main=_follow_customer,
)


CUSTOMER_MERGE: MergeKind[Customer] = MergeKind(
    name="customer",
    fill_fields=CUSTOMER_FILL_FIELDS,
    customer_of=_customer_id,
    same_group=_customer_location,
    refuse=_refuse_customers,
)
