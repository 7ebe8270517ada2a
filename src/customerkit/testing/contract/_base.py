"""What every part of the contract shares: ``ContractBase`` and small helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import customerkit as ck
from customerkit.testing import FakeClock
from customerkit.testing.contract._actors import ADMIN, STAFF

MakeBook = Callable[[FakeClock], ck.Book]


class ContractBase:
    """What every part of the contract needs: an empty book on the store under test.

    Subclass a contract class (``BookContract`` for all of it) in a test module pytest
    collects and give it a ``make_book(clock)`` method returning an empty ``customerkit.Book``
    on your store; the ``book`` and ``clock`` fixtures come with the class, so no conftest is
    needed.
    """

    def make_book(self, clock: FakeClock) -> ck.Book:
        """An empty book on the store under test, telling the time with ``clock``."""
        msg = (
            f"{type(self).__name__} must define make_book(self, clock) returning an empty "
            "customerkit.Book on the store under test"
        )
        raise NotImplementedError(msg)

    @pytest.fixture
    def clock(self) -> FakeClock:
        """A clock the test moves by hand."""
        return FakeClock()

    @pytest.fixture
    def book(self, clock: FakeClock) -> Iterator[ck.Book]:
        """An empty book on the store under test, closed after the test."""
        book = self.make_book(clock)
        yield book
        book.close()


def customer(
    book: ck.Book, name: str = "Johnson Tires - Denver", number: str = "C-1", **kw: object
) -> ck.Customer:
    """Create a customer as the admin of loc-1."""
    actor = kw.pop("actor", ADMIN)
    assert isinstance(actor, ck.Actor)
    return book.customers.create(
        ck.NewCustomer(company_name=name, customer_number=number, **kw),  # type: ignore[arg-type]
        actor=actor,
    )


def add_contact(
    book: ck.Book, customer_id: str, *, actor: ck.Actor = STAFF, **fields: Any
) -> ck.Contact:
    """Add a contact with these fields to a customer, as staff of loc-1 unless ``actor``."""
    return book.contacts.add(customer_id, ck.NewContact(**fields), actor=actor)


def pair_ids(report: ck.DuplicateReport) -> list[set[str]]:
    """The pairs of a report as sets of ids, in report order."""
    return [{pair.left_id, pair.right_id} for pair in report.pairs]


def pointer(book: ck.Book, table: str, record_id: str) -> str | None:
    """Where a record's ``merged_into`` points, read from the store (tombstones included)."""
    with book.store.unit_of_work() as uow:
        record = getattr(uow, table).get(record_id)
    assert record is not None
    merged_into: str | None = record.merged_into
    return merged_into


def attrs_fields(contact: ck.Contact) -> tuple[object, ...]:
    """The fields a merge and unmerge must round-trip (not version or timestamps)."""
    return (
        contact.first_name,
        contact.last_name,
        contact.email,
        contact.phone,
        contact.title,
        contact.status,
        contact.merged_into,
        contact.customer_id,
    )
