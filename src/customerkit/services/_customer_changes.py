"""How a stored customer changes: which changes are allowed, the changed record, deletion.

``CustomerService.update`` and ``delete`` document the behaviour; they call these.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from customerkit.errors import ImmutableField, ReadOnlyCustomer
from customerkit.model import CUSTOMER_EDITABLE_FIELDS, Actor, Customer, CustomerKind, RecordStatus
from customerkit.policy import Action
from customerkit.ports import UnitOfWork
from customerkit.services import merge as merging
from customerkit.services._context import Context, customer_target, save_customer
from customerkit.text import number_key
from customerkit.validation import clean_customer_values, clean_text

log = logging.getLogger("customerkit.customers")


def check_changes_allowed(
    ctx: Context, current: Customer, changes: Mapping[str, Any], actor: Actor
) -> None:
    """Refuse changes to fields a source owns, to a set username, or a number change not allowed."""
    if current.source is not None:
        locked = sorted(set(changes) & set(current.source.fields))
        if locked:
            raise ReadOnlyCustomer(
                f"came from source {current.source.source!r}; change it there and call "
                "sources.refresh_customer()",
                field=locked[0],
            )
    new_username = changes.get("username", current.username)
    if current.username is not None and new_username != current.username:
        raise ImmutableField("a username can never change once set", field="username")
    if "customer_number" in changes:
        new_key = number_key(clean_text(changes["customer_number"], "customer_number"))
        if new_key != number_key(current.customer_number):
            _check_number_change(ctx, current, actor)


def _check_number_change(ctx: Context, current: Customer, actor: Actor) -> None:
    # Rule C3: a blank FLEET number may be set by any staff; otherwise SERVICE_MANAGER+.
    if current.kind is CustomerKind.FLEET and not current.customer_number:
        return
    ctx.authorize(actor, Action.CUSTOMER_NUMBER_CHANGE, customer_target(current))


def changed(
    ctx: Context,
    uow: UnitOfWork,
    current: Customer,
    changes: Mapping[str, Any],
    password_hash: str | None,
) -> Customer:
    """The customer with ``changes`` applied and checked, one version on (not stored)."""
    values: dict[str, Any] = {
        name: getattr(current, name) for name in CUSTOMER_EDITABLE_FIELDS if name != "password"
    }
    values.update(changes)
    if values.get("username") == current.username:
        values["username"] = current.username
    values.setdefault("password", None)
    if "password" not in changes:
        values["password"] = None
    cleaned = clean_customer_values(values, current.kind, uow, ctx.config.phone_region)
    password = cleaned.pop("password")
    if password is not None:
        cleaned["password_hash"] = password_hash
    return attrs.evolve(current, **cleaned, updated_at=ctx.now(), version=current.version + 1)


def purge(uow: UnitOfWork, current: Customer) -> None:
    """Remove a customer, the customers merged into it, and everything of theirs."""
    absorbed: list[Customer] = []
    waiting = [current.id]
    while waiting:  # merges re-point tombstones at the live main; follow chains anyway
        found = uow.customers.merged_into(waiting.pop())
        absorbed += found
        waiting += [customer.id for customer in found]
    for customer in (*absorbed, current):  # tombstones first: they point at the main
        contacts = uow.contacts.for_customer(customer.id)
        history = uow.history.for_customer(customer.id)
        for merge_id in merging.recorded_merges(uow, history):
            uow.merges.remove(merge_id)
        for contact in contacts:
            uow.contacts.remove(contact.id)
        uow.history.remove_for_customer(customer.id)
        uow.customers.remove(customer.id)
    log.info("purged customer %s, %d merged into it, and their history", current.id, len(absorbed))


def tombstone(
    ctx: Context, uow: UnitOfWork, current: Customer, contacts: list[Any], actor: Actor
) -> None:
    """Mark the customer and its live contacts deleted; the history and the record stay."""
    now = ctx.now()
    for contact in contacts:
        if contact.is_live:
            uow.contacts.update(
                attrs.evolve(
                    contact,
                    status=RecordStatus.DELETED,
                    updated_at=now,
                    version=contact.version + 1,
                ),
                expected_version=contact.version,
            )
    deleted = attrs.evolve(
        current, status=RecordStatus.DELETED, updated_at=now, version=current.version + 1
    )
    save_customer(
        ctx,
        uow,
        current,
        deleted,
        action="delete",
        actor=actor,
        changes={"status": (current.status, deleted.status)},
    )
