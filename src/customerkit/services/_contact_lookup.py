"""Finding the contact an id stands for, and what the policy sees of a contact.

Every contact use-case starts here; merged ids resolve to their main contact.
"""

from __future__ import annotations

import calendar
from datetime import datetime

from customerkit.errors import ConcurrentModification, NotFound
from customerkit.merging import follow_merges
from customerkit.model import Contact, Customer
from customerkit.policy import Target
from customerkit.ports import UnitOfWork
from customerkit.services._context import live_customer


def months_before(moment: datetime, months: int) -> datetime:
    """The same time ``months`` calendar months earlier, clamped to the month's last day."""
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def contact_target(customer: Customer, contact: Contact | None = None) -> Target:
    """The policy's view of a contact (or of adding one, when ``contact`` is None)."""
    return Target(
        location_id=customer.location_id,
        customer_id=customer.id,
        customer_kind=customer.kind,
        contact_managed_by=None if contact is None else contact.managed_by,
    )


def resolve(uow: UnitOfWork, contact_id: str) -> Contact:  # rule M3
    """The live contact an id stands for: merged ids resolve to their main."""
    found = uow.contacts.get(contact_id) if isinstance(contact_id, str) else None
    contact = follow_merges(found, uow.contacts.get)
    if contact is None or not contact.is_live:
        raise NotFound("contact", str(contact_id))
    return contact


def resolve_for_write(uow: UnitOfWork, contact_id: str) -> tuple[Contact, Customer]:
    """The live contact an id stands for and its live customer, for a change of the contact.

    Reading the customer locks it (PostgreSQL) against a concurrent delete or merge of it; the
    contact is read again once the customer is held, since such a write may have moved or
    deleted it meanwhile (then the caller gets ``NotFound`` or ``ConcurrentModification``).
    """
    contact = resolve(uow, contact_id)
    customer = live_customer(uow, contact.customer_id)
    contact = resolve(uow, contact_id)
    if contact.customer_id != customer.id:  # merged into another customer meanwhile
        raise ConcurrentModification("contact", contact.id)
    return contact, customer
