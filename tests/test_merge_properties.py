"""T4: properties of customer merges over small generated books (memory and SQLite).

A book of 2-6 customers of one location, each with 0-3 contacts; a merge of some of them into
another. The contacts are a customer's links: a merge must move them, never lose them.

(a) live customers after = before - merged; (b) the main's contacts after = the union of the
merged customers' live contacts, each once; (c) every history entry written before the merge
is still there, in the same order; (d) repeating the merge returns the same result and writes
nothing; (e) merging {A, B} then C, or A then {B, C}, into one main gives the same contacts;
(f) self-merge, a cycle, and a customer merged elsewhere already are refused with
``MergeError`` and change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import customerkit as ck
from customerkit.testing import FakeClock

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
HASHER = ck.PasswordHasher.for_tests()
BACKENDS = [None, "sqlite://"]  # memory, an in-memory SQLite database per example

#: Contacts per customer, for 2-6 customers.
books = st.lists(st.integers(min_value=0, max_value=3), min_size=2, max_size=6)


@contextmanager
def opened(url: str | None, contacts_per_customer: list[int]) -> Iterator[Any]:
    """A book with the customers and contacts, and the customers in creation order."""
    book = ck.open_book(url, clock=FakeClock(), hasher=HASHER)
    try:
        customers = []
        for i, count in enumerate(contacts_per_customer):
            draft = ck.NewCustomer(company_name=f"Johnson {i}", customer_number=f"C-{i}")
            customer = book.customers.create(draft, actor=ADMIN)
            for k in range(count):
                contact = ck.NewContact(first_name=f"Ann{i}x{k}", last_name="Lee")
                book.contacts.add(customer.id, contact, actor=ADMIN)
            customers.append(customer)
        yield book, customers
    finally:
        book.close()


def live_contact_ids(book: ck.Book, customer_id: str) -> set[str]:
    return {c.id for c in book.contacts.list(customer_id, actor=ADMIN)}


def history(book: ck.Book, customer_ids: list[str]) -> dict[str, list[ck.ChangeRecord]]:
    return {i: book.history.for_customer(i, actor=ADMIN) for i in customer_ids}


def readable(book: ck.Book, customer_ids: list[str]) -> Any:
    """What a reader sees of every customer: live ones, their contacts, every history."""
    live = {c.id for c in book.customers.recent(actor=ADMIN)}
    return live, {i: live_contact_ids(book, i) for i in live}, history(book, customer_ids)


@pytest.mark.parametrize("url", BACKENDS, ids=["memory", "sqlite"])
@given(shape=books, data=st.data())
def test_t4_a_to_d_merge_moves_every_contact_once_and_repeats(
    url: str | None, shape: list[int], data: st.DataObject
) -> None:
    with opened(url, shape) as (book, customers):
        ids = [c.id for c in customers]
        main = data.draw(st.sampled_from(ids), label="main")
        others = data.draw(
            st.lists(st.sampled_from([i for i in ids if i != main]), min_size=1, unique=True),
            label="others",
        )
        expected = set().union(*(live_contact_ids(book, i) for i in (main, *others)))
        history_before = history(book, ids)

        result = book.customers.merge(main, others, actor=ADMIN)

        live = {c.id for c in book.customers.recent(actor=ADMIN)}
        assert live == set(ids) - set(others)  # (a)
        assert live_contact_ids(book, main) == expected  # (b)
        with book.store.unit_of_work() as uow:  # no live contact stays on a tombstone
            for other in others:
                assert [c.id for c in uow.contacts.for_customer(other) if c.is_live] == []
        history_after = history(book, ids)
        for customer_id, before in history_before.items():  # (c)
            assert history_after[customer_id][: len(before)] == before
        repeated = book.customers.merge(main, others, actor=ADMIN)  # (d)
        assert repeated == result
        assert history(book, ids) == history_after


@pytest.mark.parametrize("url", BACKENDS, ids=["memory", "sqlite"])
@given(shape=books.filter(lambda s: len(s) >= 4))
def test_t4_e_merge_order_does_not_change_the_contacts(url: str | None, shape: list[int]) -> None:
    finals = []
    for steps in ([(1, 2), (3,)], [(1,), (2, 3)]):
        with opened(url, shape) as (book, customers):
            main = customers[0].id
            for step in steps:
                book.customers.merge(main, [customers[i].id for i in step], actor=ADMIN)
            # Two books: their ids differ, so compare the contacts by name (names are unique).
            finals.append({c.first_name for c in book.contacts.list(main, actor=ADMIN)})
    assert finals[0] == finals[1] == {f"Ann{i}x{k}" for i in range(4) for k in range(shape[i])}


@pytest.mark.parametrize("url", BACKENDS, ids=["memory", "sqlite"])
@given(shape=books.filter(lambda s: len(s) >= 3))
def test_t4_f_refused_merges_change_nothing(url: str | None, shape: list[int]) -> None:
    with opened(url, shape) as (book, customers):
        a, b, c = (customer.id for customer in customers[:3])
        ids = [customer.id for customer in customers]
        book.customers.merge(a, [b], actor=ADMIN)
        before = readable(book, ids)
        for main, others in (
            (c, [c]),  # self-merge
            (b, [a]),  # a cycle: b is merged into a
            (c, [b]),  # b is merged into a already
        ):
            with pytest.raises(ck.MergeError):
                book.customers.merge(main, others, actor=ADMIN)
            assert readable(book, ids) == before
