"""Customer logins: free usernames, password checks, and hashes made outside transactions.

``CustomerService.suggest_username`` and ``verify_password`` document the behaviour.
"""

from __future__ import annotations

from typing import Any

import attrs

from customerkit import identity
from customerkit.errors import ValidationError
from customerkit.model import Customer
from customerkit.services._context import Context


def prehash(ctx: Context, password: Any) -> str | None:
    """The hash of a password about to be stored, made before the write begins.

    Hashing takes a tenth of a second on purpose; inside the write it would hold SQLite's
    write lock that long. ``None`` when there is no password, or one validation refuses
    (it reports that with the other fields).
    """
    if not isinstance(password, str):
        return None
    try:
        return ctx.hasher.hash(password)
    except ValidationError:
        return None


def suggest_username(ctx: Context, first: str, last: str, phone: str) -> str:
    """The username ``CustomerService.suggest_username`` suggests."""
    with ctx.store.unit_of_work(read_only=True) as uow:

        def is_taken(candidate: str) -> bool:
            key = identity.username_key(candidate)
            return uow.customers.find_by_username(key) is not None

        return identity.suggest_username(first, last, phone, is_taken)


def verify_password(ctx: Context, username: str, password: str) -> Customer | None:
    """The customer ``CustomerService.verify_password`` answers."""
    for name, value in (("username", username), ("password", password)):
        if not isinstance(value, str):
            raise ValidationError({name: "must be text"})
    hasher = ctx.hasher
    customer = None
    try:
        key = identity.username_key(username)
    except ValidationError:
        key = None  # no customer can have it; still spend a verify on it below
    if key is not None:
        with ctx.store.unit_of_work(read_only=True) as uow:
            customer = uow.customers.find_by_username(key)
    if customer is None or not customer.is_live or customer.password_hash is None:
        hasher.verify(hasher.dummy_hash(), password)
        return None
    stored = customer.password_hash
    if not hasher.verify(stored, password):
        return None
    if not hasher.needs_rehash(stored):
        return customer
    return _rehash(ctx, customer, hasher.hash(password))


def _rehash(ctx: Context, customer: Customer, password_hash: str) -> Customer:
    """Store a new hash of the password just verified, unless it changed meanwhile."""
    with ctx.store.unit_of_work() as uow:
        current = uow.customers.get(customer.id)
        if current is None or current.password_hash != customer.password_hash:
            return customer
        rehashed = attrs.evolve(current, password_hash=password_hash, version=current.version + 1)
        uow.customers.update(rehashed, expected_version=current.version)
        uow.commit()
    return rehashed
