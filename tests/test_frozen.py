"""Records read from a book are frozen all the way down (rule C5: every change is versioned and in
the history, so nothing read may change the stored record behind the book's back).

The property: whatever a caller does to any value the API returned (set or delete a key, clear,
update, append; set an attribute), the book reads exactly as before. The memory book hands out
the very objects it stores, so it is where a mutable mapping would leak; the SQL books are run
too. Deliberate bypasses (``object.__setattr__``, ``dict.__setitem__`` on a private attribute)
are out of scope.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import customerkit as ck
from customerkit.convert import to_dict
from customerkit.testing import FakeClock

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")

keys = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
extras = st.dictionaries(keys, st.text(alphabet="abc ", min_size=1, max_size=5), max_size=4)


def reachable(value: Any, seen: set[int] | None = None) -> Iterator[Any]:
    """Every object reachable from ``value`` through attributes, keys, values and items."""
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, str | bytes | int | float | type(None)):
        return
    seen.add(id(value))
    yield value
    if attrs.has(type(value)):
        children: list[Any] = [getattr(value, f.name) for f in attrs.fields(type(value))]
    elif isinstance(value, Mapping):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = list(value)
    else:
        children = []
    for child in children:
        yield from reachable(child, seen)


def attack(value: Any) -> None:
    """Try every ordinary way of changing ``value`` in place; refusals are what we want."""
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            with contextlib.suppress(AttributeError):
                setattr(value, field.name, "changed")
    key = next(iter(value), "key") if isinstance(value, Mapping | list) else "key"
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("__setitem__", (key, "changed")),
        ("__setitem__", ("new-key", "changed")),
        ("__delitem__", (key,)),
        ("update", ({"new-key": "changed"},)),
        ("setdefault", ("new-key", "changed")),
        ("pop", (key,)),
        ("popitem", ()),
        ("clear", ()),
        ("append", ("changed",)),
        ("__ior__", ({"new-key": "changed"},)),
    ]
    for name, args in calls:
        method = getattr(value, name, None)
        if method is not None:
            with contextlib.suppress(TypeError, AttributeError, KeyError, IndexError):
                method(*args)


def fill(
    book: ck.Book, clock: FakeClock, extra: dict[str, str], more: dict[str, str]
) -> tuple[str, list[Any]]:
    """A customer with ``extra`` updated to ``more``, contacts, a merge and its history; with
    what the writes returned."""
    created = book.customers.create(
        ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1", extra=extra),
        actor=ADMIN,
    )
    clock.advance(minutes=1)
    updated = book.customers.update(created.id, {"extra": more}, actor=ADMIN)
    add = book.contacts.add
    ann = add(created.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=ADMIN)
    twin = add(
        created.id,
        ck.NewContact(first_name="Ann", last_name="Lee", phone="3035550142"),
        actor=ADMIN,
    )
    merged = book.contacts.merge(ann.id, [twin.id], actor=ADMIN)
    return created.id, [created, updated, ann, twin, merged]


def everything_read(book: ck.Book, customer_id: str) -> list[Any]:
    """What the read calls return for the customer: records, hits, history, contacts."""
    return [
        book.customers.get(customer_id, actor=ADMIN),
        book.customers.search("johnson", actor=ADMIN),
        book.customers.recent(actor=ADMIN),
        book.history.for_customer(customer_id, actor=ADMIN),
        book.contacts.list(customer_id, actor=ADMIN),
        book.contacts.unused(customer_id, actor=ADMIN),
    ]


def plain(values: list[Any]) -> list[Any]:
    """A deep, independent copy of what was read, as plain data."""
    return copy.deepcopy([to_dict(v) if attrs.has(type(v)) else v for v in values])


@pytest.mark.parametrize("make_book", ["memory", "sqlite"], indirect=True)
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=extras, more=extras)
def test_c5_nothing_read_from_the_book_can_change_it(
    make_book: Callable[[FakeClock], ck.Book], extra: dict[str, str], more: dict[str, str]
) -> None:
    """Values returned by reads, creates, updates and merges are frozen all the way down."""
    clock = FakeClock()
    book = make_book(clock)
    customer_id, written = fill(book, clock, extra, more)
    before = plain(everything_read(book, customer_id))
    for value in [*written, *everything_read(book, customer_id)]:
        for part in list(reachable(value)):
            attack(part)
    assert plain(everything_read(book, customer_id)) == before
    book.close()
