"""What a new customer is made of: its record and the history of its creation.

``create``, ``create_many`` and the bulk load (``services/loading.py``) all build new customers
here, so a loaded customer is exactly the customer ``create`` would have made.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from customerkit.model import (
    Actor,
    ChangeRecord,
    Customer,
    CustomerKind,
    NewCustomer,
    RecordStatus,
)
from customerkit.validation import CUSTOMER_TEXT_FIELDS

__all__ = [
    "HISTORY_FIELDS",
    "PASSWORD_MARKER",
    "created_changes",
    "created_customer",
    "new_changes",
]

#: Fields written to history (the password hash never is; a password change shows as a marker).
HISTORY_FIELDS = (
    *CUSTOMER_TEXT_FIELDS,
    "email",
    "phone",
    "fax",
    "company_type",
    "category",
    "username",
    "assigned_staff",
    "extra",
    "status",
)
PASSWORD_MARKER = "(changed)"  # noqa: S105 - a history marker, not a password
_CREATED_FIELDS = ("kind", *HISTORY_FIELDS)


#: Values a new customer's history leaves out (as ``changes_between`` does for a creation).
_UNSET: tuple[Any, ...] = ("", (), {}, None, False)


def created_changes(customer: Customer) -> dict[str, tuple[Any, Any]]:
    """The history changes of a new customer: ``changes_between(None, customer, ...)``, plain.

    Every set field as ``(None, value)``; enums by their value, as ``record_history`` stores them.
    """
    changes: dict[str, tuple[Any, Any]] = {}
    for name in _CREATED_FIELDS:
        value = getattr(customer, name)
        if type(value) is str:  # most fields: skip the generic checks below
            if value:
                changes[name] = (None, value)
            continue
        if isinstance(value, Mapping):
            value = dict(value)
        if value not in _UNSET:
            changes[name] = (None, value.value if isinstance(value, enum.Enum) else value)
    return changes


#: The fields of a new customer's history that validation's values hold, in history order
#: (``assigned_staff`` is always empty and ``status`` always live for a new customer).
_VALUE_FIELDS = tuple(name for name in HISTORY_FIELDS if name not in ("assigned_staff", "status"))
_LIVE = (None, RecordStatus.ACTIVE.value)


def new_changes(
    kind: CustomerKind, values: Mapping[str, Any], *, password: bool
) -> dict[str, tuple[Any, Any]]:
    """``created_changes`` of the customer ``created_customer`` makes, from its values alone.

    A bulk load builds no ``Customer`` per row; validation's values are plain strings (or
    ``None``) and the ``extra`` dict, so "set" is their truth value.
    """
    changes: dict[str, tuple[Any, Any]] = {"kind": (None, kind.value)}
    for name in _VALUE_FIELDS:
        value = values[name]
        if value:
            changes[name] = (None, dict(value) if name == "extra" else value)
    changes["status"] = _LIVE
    if password:
        changes["password"] = ("", PASSWORD_MARKER)
    return changes


def created_customer(
    draft: NewCustomer,
    values: dict[str, Any],
    *,
    customer_id: str,
    password_hash: str | None,
    actor: Actor,
    source: Any,
    now: datetime,
) -> tuple[Customer, ChangeRecord]:
    """A validated draft as a new customer, with the history record of its creation."""
    password = values.pop("password")
    customer = Customer(
        id=customer_id,
        location_id=actor.location_id,
        kind=draft.kind,
        password_hash=None if password is None else password_hash,
        source=source,
        created_at=now,
        updated_at=now,
        **values,
    )
    changes = created_changes(customer)
    if password is not None:
        changes["password"] = ("", PASSWORD_MARKER)
    # What record_history writes, without its generic conversions (a million times).
    record = ChangeRecord(
        entity="customer",
        entity_id=customer.id,
        customer_id=customer.id,
        action="import" if source is not None else "create",
        actor_id=actor.user_id,
        at=now,
        changes=changes,
    )
    return customer, record
