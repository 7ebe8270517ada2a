"""Every backend keeps its matching index (rule M6) in step with every committed change.

After any sequence of creates, updates, deletes, merges, failed calls and contact changes,
``find_similar`` (the memory book's kept index, the SQL books' stored blocking keys) answers
exactly as an index built afresh from the location's live records would. One book per backend
serves all examples; each example works in a location of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

import customerkit as ck
from customerkit.matching import MatchIndex
from customerkit.testing import FakeClock

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
MakeBook = Callable[[FakeClock], ck.Book]
_locations = itertools.count()
NAMES = ("Johnson Tires", "Johnson Tire LLC", "Garcia Farms", "Garcia Farm Inc", "Lee Haulage")
PHONES = ("", "303 555 0142", "(303) 555-0142", "720 555 0199")
PEOPLE = (("Ann", "Lee"), ("Anne", "Lee"), ("Bob", "Miller"), ("Robert", "Miller"))

CUSTOMER_DRAFTS = (
    ck.NewCustomer(company_name="Johnson Tires", phone="303 555 0142"),
    ck.NewCustomer(company_name="Garcia Farms"),
    ck.NewCustomer(company_name="Other Name", phone="720-555-0199"),
)
CONTACT_DRAFTS = (
    ck.NewContact(first_name="Ann", last_name="Lee"),
    ck.NewContact(first_name="Robert", last_name="Miller"),
)

operations = st.lists(
    st.tuples(
        st.sampled_from(["create", "update", "delete", "merge", "clash", "contact", "drop"]),
        st.integers(0, 50),
        st.integers(0, 50),
    ),
    max_size=25,
)


def _expected_customers(
    book: ck.Book, location: str, draft: ck.NewCustomer
) -> list[tuple[str, float]]:
    with book.store.unit_of_work() as uow:
        live = list(uow.customers.iter_location(location))
    fresh = MatchIndex.build(live, kind="customer").find_similar(draft)
    return [(m.record.id, m.score) for m in fresh]


def _expected_contacts(
    book: ck.Book, location: str, draft: ck.NewContact
) -> list[tuple[str, float]]:
    with book.store.unit_of_work() as uow:
        live = [
            contact
            for customer in uow.customers.iter_location(location)
            for contact in uow.contacts.for_customer(customer.id)
            if contact.is_live
        ]
    fresh = MatchIndex.build(live, kind="contact").find_similar(draft)
    return [(m.record.id, m.score) for m in fresh]


@pytest.fixture
def shared_book(make_book: MakeBook) -> ck.Book:
    return make_book(FakeClock())


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_kept_index_answers_like_a_fresh_one(
    shared_book: ck.Book, steps: list[tuple[str, int, int]]
) -> None:
    book = shared_book
    location = f"loc-{next(_locations)}"
    admin = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id=location)
    customer_draft, contact_draft = CUSTOMER_DRAFTS[0], CONTACT_DRAFTS[0]
    # Build both indexes first, so every later change has to be applied to them.
    book.customers.find_similar(customer_draft, actor=admin)
    book.contacts.find_similar(contact_draft, actor=admin)
    made: list[str] = []
    people: list[str] = []
    for number, (action, i, j) in enumerate(steps):
        with book.store.unit_of_work() as uow:
            live = [c.id for c in uow.customers.iter_location(location)]
        try:
            if action == "create" or not live:
                made.append(
                    book.customers.create(
                        ck.NewCustomer(
                            company_name=NAMES[i % len(NAMES)],
                            customer_number=f"C-{number}",
                            phone=PHONES[j % len(PHONES)],
                        ),
                        actor=admin,
                    ).id
                )
            elif action == "update":
                values = {"company_name": NAMES[j % len(NAMES)], "phone": PHONES[i % len(PHONES)]}
                book.customers.update(live[i % len(live)], values, actor=admin)
            elif action == "delete":
                book.customers.delete(live[i % len(live)], actor=admin)
            elif action == "merge" and len(live) > 1:
                main, other = live[i % len(live)], live[j % len(live)]
                if main != other:
                    book.customers.merge(main, [other], actor=admin)
            elif action == "clash":  # a failed call must leave the indexes as they were
                book.customers.create(
                    ck.NewCustomer(company_name=NAMES[i % len(NAMES)], customer_number="C-0"),
                    actor=admin,
                )
            elif action == "contact":
                first, last = PEOPLE[j % len(PEOPLE)]
                people.append(
                    book.contacts.add(
                        live[i % len(live)],
                        ck.NewContact(first_name=first, last_name=last),
                        actor=admin,
                    ).id
                )
            elif action == "drop" and people:
                book.contacts.delete(people[i % len(people)], actor=admin)
        except ck.CustomerKitError:
            pass
        for customer_draft in CUSTOMER_DRAFTS:
            found = book.customers.find_similar(customer_draft, actor=admin)
            got = [(m.record.id, m.score) for m in found]
            assert got == _expected_customers(book, location, customer_draft)
        for contact_draft in CONTACT_DRAFTS:
            matches = book.contacts.find_similar(contact_draft, actor=admin)
            got = [(m.record.id, m.score) for m in matches]
            assert got == _expected_contacts(book, location, contact_draft)


def test_memory_book_keeps_the_index_between_calls() -> None:
    book = ck.open_book(hasher=ck.PasswordHasher.for_tests())
    draft = ck.NewCustomer(company_name="Johnson Tires")
    book.customers.find_similar(draft, actor=ADMIN)
    with book.store.unit_of_work() as uow:
        first = uow.customers.match_index("loc-1", region="US")
    draft = ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1")
    created = book.customers.create(draft, actor=ADMIN)
    with book.store.unit_of_work() as uow:
        again = uow.customers.match_index("loc-1", region="US")
    assert again is first
    assert created.id in again


def test_a_stored_record_is_compared_like_a_fresh_index_would(make_book: MakeBook) -> None:
    """A record already stored, given to ``find_similar``, counts once in the name frequencies.

    A SQL book keeps only its records' blocks, so it cannot tell from the records it loaded
    whether the probe is among its records; it once counted the probe's name twice.
    """
    from customerkit import synth

    book = make_book(FakeClock())
    drafts = [draft for _, draft in synth.customers(300, seed=3, locations=("loc-1",))]
    created = book.customers.create_many(drafts, actor=ADMIN)
    for customer_id, contact in synth.contacts([c.id for c in created[:120]], seed=4):
        book.contacts.add(customer_id, contact, actor=ADMIN)
    with book.store.unit_of_work() as uow:
        customers = list(uow.customers.iter_location("loc-1"))
        contacts = [k for c in customers for k in uow.contacts.for_customer(c.id) if k.is_live]
    fresh_customers = MatchIndex.build(customers, kind="customer")
    fresh_contacts = MatchIndex.build(contacts, kind="contact")
    for customer in customers:
        got = [(m.record.id, m.score) for m in book.customers.find_similar(customer, actor=ADMIN)]
        assert got == [(m.record.id, m.score) for m in fresh_customers.find_similar(customer)]
    for contact in contacts:
        got = [(m.record.id, m.score) for m in book.contacts.find_similar(contact, actor=ADMIN)]
        assert got == [(m.record.id, m.score) for m in fresh_contacts.find_similar(contact)]
