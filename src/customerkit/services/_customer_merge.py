"""What a customer merge does beyond the generic merge: who may, and the contacts that move.

``CustomerService.merge`` and ``unmerge`` pass these to ``services.merge``.
"""

from __future__ import annotations

from collections.abc import Callable

from customerkit.model import Actor, Customer
from customerkit.policy import Action
from customerkit.ports import UnitOfWork
from customerkit.services import accelerators
from customerkit.services._context import Context, customer_target


def merge_authorizer(ctx: Context, actor: Actor) -> Callable[[UnitOfWork, Customer], None]:
    """The check that ``actor`` may merge into (or unmerge from) a main customer."""

    def authorize(uow: UnitOfWork, main: Customer) -> None:
        ctx.authorize(actor, Action.CUSTOMER_MERGE, customer_target(main))

    return authorize


def move_contacts(ctx: Context, uow: UnitOfWork, other: Customer, main: Customer) -> list[str]:
    """Move the live contacts of a merged customer to the main; their ids."""
    moved = sorted(c.id for c in uow.contacts.for_customer(other.id) if c.is_live)
    if moved:  # one write for all: a chain of merges gathers many contacts
        now = ctx.now()
        accelerators.move(uow.contacts, moved, from_customer=other.id, to_customer=main.id, at=now)
    return moved


def move_back(
    ctx: Context, uow: UnitOfWork, main: Customer, other: Customer, contact_ids: list[str]
) -> None:
    """Move the contacts a merge moved, and still on the main, back to the unmerged customer."""
    recorded = set(contact_ids)  # those still on the main go back; others moved on since
    back = sorted(c.id for c in uow.contacts.for_customer(main.id) if c.id in recorded)
    if back:
        now = ctx.now()
        accelerators.move(uow.contacts, back, from_customer=main.id, to_customer=other.id, at=now)
