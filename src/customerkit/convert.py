"""Plain-data conversion of the model for JSON, message queues and notebooks (cattrs).

One converter holds the rules, so the model never knows about JSON: enums travel as their
values, datetimes as ISO 8601 strings with their UTC offset, tuples as lists, and a customer's
password hash is never written out.

>>> import customerkit as ck
>>> from customerkit.convert import to_dict, from_dict
>>> user = ck.User(id="u7", name="Ann", email="ann@example.com", role=ck.Role.STAFF,
...                location_id="loc-1")
>>> from_dict(to_dict(user), ck.User) == user
True
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from customerkit.model import Customer

T = TypeVar("T")

converter = cattrs.Converter()
converter.register_unstructure_hook(datetime, datetime.isoformat)
converter.register_structure_hook(datetime, lambda value, _: datetime.fromisoformat(value))
converter.register_unstructure_hook(enum.Enum, lambda member: member.value)
converter.register_unstructure_hook(
    Customer,
    make_dict_unstructure_fn(Customer, converter, password_hash=override(omit=True)),
)


def to_dict(record: Any) -> dict[str, Any]:
    """A model record as plain data (JSON-ready); a customer's password hash is left out."""
    data: dict[str, Any] = converter.unstructure(record)
    return data


def from_dict(data: Mapping[str, Any], cls: type[T]) -> T:
    """A model record from plain data made by [`to_dict()`][customerkit.convert.to_dict]."""
    return converter.structure(dict(data), cls)
