"""The contract suite: every rule of the SPEC, run against any backend.

Needs a ``make_book`` fixture: a callable ``make_book(clock) -> Book`` giving an empty book on
the backend under test. Test names cite the rule they check.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest

import customerkit as ck
from customerkit.matching import Parameters
from customerkit.ports import UnitOfWork
from customerkit.testing import FakeClock

__all__ = [
    "TestContactsContract",
    "TestCustomersContract",
    "TestDismissalsContract",
    "TestDuplicatesContract",
    "TestEntryPointsContract",
    "TestExportContract",
    "TestPermissionsContract",
    "TestSearchContract",
    "TestSourcesContract",
    "TestUsernamesContract",
]

MakeBook = Callable[[FakeClock], ck.Book]

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
MANAGER = ck.Actor(user_id="manager", role=ck.Role.SERVICE_MANAGER, location_id="loc-1")
ADVISOR = ck.Actor(user_id="advisor", role=ck.Role.SERVICE_ADVISOR, location_id="loc-1")
STAFF = ck.Actor(user_id="staff", role=ck.Role.STAFF, location_id="loc-1")
OTHER_ADMIN = ck.Actor(user_id="admin2", role=ck.Role.DEALER_ADMIN, location_id="loc-2")


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


@pytest.fixture
def book(make_book: MakeBook, clock: FakeClock) -> ck.Book:
    """An empty book on the backend under test."""
    return make_book(clock)


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


class TestCustomersContract:
    """C1-C8."""

    def test_c1_requires_name_and_number_and_reports_all_errors(self, book: ck.Book) -> None:
        with pytest.raises(ck.ValidationError) as caught:
            book.customers.create(
                ck.NewCustomer(company_name="  ", customer_number="", email="not-an-email"),
                actor=ADMIN,
            )
        assert set(caught.value.errors) == {"company_name", "customer_number", "email"}

    def test_c1_fleet_customer_may_have_blank_number(self, book: ck.Book) -> None:
        fleet = customer(book, "Acme Fleet", "", kind=ck.CustomerKind.FLEET)
        assert fleet.customer_number == ""

    def test_u4_trims_text_fields(self, book: ck.Book) -> None:
        c = customer(book, "  Johnson Tires  ", " C-1 ", city=" Denver ")
        assert (c.company_name, c.customer_number, c.city) == ("Johnson Tires", "C-1", "Denver")

    def test_c2_number_unique_per_location_normalised(self, book: ck.Book) -> None:
        first = customer(book, number="C-1001")
        with pytest.raises(ck.DuplicateCustomerNumber) as caught:
            customer(book, "Other", "c 1001")
        assert caught.value.existing_id == first.id
        customer(book, "Other", "C-1001", actor=OTHER_ADMIN)  # another location is fine

    def test_c2_c6_deleted_customer_frees_its_number(self, book: ck.Book) -> None:
        first = customer(book, number="C-7")
        book.customers.delete(first.id, actor=ADMIN)
        assert customer(book, "Again", "C-7").customer_number == "C-7"

    def test_c3_local_number_change_needs_service_manager(self, book: ck.Book) -> None:
        c = customer(book)
        with pytest.raises(ck.PermissionDenied):
            book.customers.update(c.id, {"customer_number": "C-2"}, actor=STAFF)
        assert book.customers.get(c.id, actor=ADMIN).customer_number == "C-1"
        assert len(book.history.for_customer(c.id, actor=ADMIN)) == 1
        changed = book.customers.update(c.id, {"customer_number": "C-2"}, actor=MANAGER)
        assert changed.customer_number == "C-2"

    def test_c3_blank_fleet_number_set_by_staff_then_locked(self, book: ck.Book) -> None:
        fleet = customer(book, "Acme Fleet", "", kind=ck.CustomerKind.FLEET)
        fleet = book.customers.update(fleet.id, {"customer_number": "F-9"}, actor=STAFF)
        with pytest.raises(ck.PermissionDenied):
            book.customers.update(fleet.id, {"customer_number": "F-10"}, actor=STAFF)
        assert book.customers.update(fleet.id, {"customer_number": "F-10"}, actor=MANAGER)

    def test_c3_same_number_other_format_is_no_change(self, book: ck.Book) -> None:
        c = customer(book, number="C-1")
        assert book.customers.update(
            c.id, {"customer_number": "C-1", "city": "Aurora"}, actor=STAFF
        )

    def test_c4_company_type_and_category_must_exist(self, book: ck.Book) -> None:
        with pytest.raises(ck.ValidationError) as caught:
            customer(book, company_type="Dealer", category="Gold")
        assert set(caught.value.errors) == {"company_type", "category"}
        book.reference.add_company_type("Dealer", actor=ADMIN)
        book.reference.add_category("Gold", required_fields=["email", "vat_id"], actor=ADMIN)
        with pytest.raises(ck.ValidationError) as caught:
            customer(book, company_type="Dealer", category="Gold")
        assert set(caught.value.errors) == {"email", "vat_id"}
        c = customer(
            book,
            company_type="Dealer",
            category="Gold",
            email="a@example.com",
            extra={"vat_id": "DE123"},
        )
        assert (c.company_type, c.category, c.extra["vat_id"]) == ("Dealer", "Gold", "DE123")

    def test_c4_reference_data_is_admin_only(self, book: ck.Book) -> None:
        with pytest.raises(ck.PermissionDenied):
            book.reference.add_company_type("Dealer", actor=MANAGER)
        assert book.reference.company_types() == []

    def test_c5_history_records_actor_time_and_old_new(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        c = customer(book, city="Denver")
        clock.advance(minutes=5)
        book.customers.update(c.id, {"city": "Aurora"}, actor=STAFF, expected_version=c.version)
        history = book.history.for_customer(c.id, actor=ADMIN)
        assert [h.action for h in history] == ["create", "update"]
        last = history[-1]
        assert (last.actor_id, last.at, dict(last.changes)) == (
            "staff",
            clock.now,
            {"city": ("Denver", "Aurora")},
        )

    def test_c5_expected_version_guards_lost_updates(self, book: ck.Book) -> None:
        c = customer(book)
        book.customers.update(c.id, {"city": "Aurora"}, actor=STAFF, expected_version=c.version)
        with pytest.raises(ck.ConcurrentModification):
            book.customers.update(
                c.id, {"city": "Boulder"}, actor=STAFF, expected_version=c.version
            )
        assert book.customers.get(c.id, actor=STAFF).city == "Aurora"

    def test_c5_failed_update_writes_nothing(self, book: ck.Book) -> None:
        c = customer(book)
        with pytest.raises(ck.ValidationError):
            book.customers.update(c.id, {"city": "x" * 1000, "email": "bad"}, actor=STAFF)
        assert book.customers.get(c.id, actor=STAFF) == c
        assert len(book.history.for_customer(c.id, actor=ADMIN)) == 1

    def test_c5_records_read_are_frozen_and_hash(self, book: ck.Book) -> None:
        c = customer(book, extra={"vat_id": "DE123"})
        c = book.customers.update(c.id, {"extra": {"vat_id": "DE124"}}, actor=STAFF)
        read = book.customers.get(c.id, actor=STAFF)
        with pytest.raises(TypeError):
            read.extra["vat_id"] = "changed"  # type: ignore[index]
        history = book.history.for_customer(c.id, actor=ADMIN)
        with pytest.raises(TypeError):
            history[-1].changes["extra"][1]["vat_id"] = "changed"
        assert book.customers.get(c.id, actor=STAFF).extra == {"vat_id": "DE124"}
        assert len({read, c, *history}) == 1 + len(history)  # records hash, equal ones alike

    def test_c6_delete_keeps_history_and_tombstone(self, book: ck.Book) -> None:
        c = customer(book, username="jtires")
        book.customers.delete(c.id, actor=MANAGER)
        with pytest.raises(ck.NotFound):
            book.customers.get(c.id, actor=ADMIN)
        assert [h.action for h in book.history.for_customer(c.id, actor=ADMIN)][-1] == "delete"
        assert book.customers.search("johnson", actor=ADMIN) == []
        with pytest.raises(ck.DuplicateUsername):
            customer(book, "New", "C-2", username="JTires")

    def test_c6_delete_with_history_frees_username(self, book: ck.Book) -> None:
        c = customer(book, username="jtires")
        book.customers.delete(c.id, actor=MANAGER, delete_history=True)
        with pytest.raises(ck.NotFound):
            book.history.for_customer(c.id, actor=ADMIN)
        assert customer(book, "New", "C-2", username="jtires").username == "jtires"

    def test_c6_purge_erases_customers_merged_into_it(self, book: ck.Book) -> None:
        """C6, M3: a purge of a customer that absorbed others by merge erases all of it.

        ``delete_history=True`` removes everything that resolves to the customer: the absorbed
        tombstones (a chain too), their history, the contacts merged in, and the merge
        records; nothing is left to unmerge.
        """
        main = customer(book, "Johnson Tires", "C-1")
        middle = customer(book, "Johnson Tire Co", "C-2", phone="303 555 0142")
        first = customer(book, "Johnson Tires Inc", "C-3", email="jti@example.com")
        kept = customer(book, "Deere Co", "C-4")
        ann = book.contacts.add(
            first.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=ADMIN
        )
        bob = book.contacts.add(
            main.id, ck.NewContact(first_name="Bob", last_name="Ray"), actor=ADMIN
        )
        bobby = book.contacts.add(
            main.id, ck.NewContact(first_name="Bobby", last_name="Ray"), actor=ADMIN
        )
        contact_merge = book.contacts.merge(bob.id, [bobby.id], actor=ADMIN)
        inner = book.customers.merge(middle.id, [first.id], actor=ADMIN)  # first -> middle
        outer = book.customers.merge(main.id, [middle.id], actor=ADMIN)  # middle -> main
        book.customers.delete(main.id, actor=MANAGER, delete_history=True)
        with book.store.unit_of_work() as uow:
            for gone in (main, middle, first):
                assert uow.customers.get(gone.id) is None
                assert uow.contacts.for_customer(gone.id) == []
                assert uow.history.for_customer(gone.id) == []
            for contact in (ann, bob, bobby):
                assert uow.contacts.get(contact.id) is None
            for merge_id in (contact_merge.merge_id, inner.merge_id, outer.merge_id):
                assert merge_id is not None
                assert uow.merges.get(merge_id) is None
            assert uow.customers.get(kept.id) == kept
        assert [c.id for c in book.customers.recent(actor=ADMIN)] == [kept.id]
        assert customer(book, "Again", "C-2").customer_number == "C-2"

    def test_c6_delete_needs_service_manager(self, book: ck.Book) -> None:
        c = customer(book)
        with pytest.raises(ck.PermissionDenied):
            book.customers.delete(c.id, actor=ADVISOR)
        assert book.customers.get(c.id, actor=ADMIN) == c

    def test_c7_up_to_two_staff_with_login_same_location(self, book: ck.Book) -> None:
        for uid, login, loc in (
            ("u7", True, "loc-1"),
            ("u8", True, "loc-1"),
            ("u9", True, "loc-1"),
            ("nologin", False, "loc-1"),
        ):
            book.users.add(
                ck.User(
                    id=uid,
                    name=uid,
                    email=f"{uid}@example.com",
                    role=ck.Role.STAFF,
                    location_id=loc,
                    has_login=login,
                ),
                actor=ADMIN,
            )
        book.users.add(
            ck.User(
                id="far",
                name="far",
                email="far@example.com",
                role=ck.Role.STAFF,
                location_id="loc-2",
            ),
            actor=OTHER_ADMIN,
        )
        c = customer(book)
        assert book.customers.assign_staff(c.id, ["u7", "u9"], actor=STAFF).assigned_staff == (
            "u7",
            "u9",
        )
        for bad in (["u7", "u8", "u9"], ["nologin"], ["far"], ["ghost"]):
            with pytest.raises(ck.ValidationError):
                book.customers.assign_staff(c.id, bad, actor=STAFF)
        assert book.customers.get(c.id, actor=STAFF).assigned_staff == ("u7", "u9")

    def test_c8_recent_newest_first_with_filter(self, book: ck.Book, clock: FakeClock) -> None:
        old = customer(book, "Old Tires", "C-1")
        clock.advance(days=40)
        a = customer(book, "Alpha Tires", "C-2")
        clock.advance(days=1)
        b = customer(book, "Beta Farms", "C-3")
        assert [c.id for c in book.customers.recent(actor=STAFF)] == [b.id, a.id]
        assert [c.id for c in book.customers.recent(actor=STAFF, text="tires")] == [a.id]
        window = book.customers.recent(actor=STAFF, within=timedelta(days=60))
        assert [c.id for c in window] == [b.id, a.id, old.id]

    def test_create_many_is_all_or_nothing(self, book: ck.Book) -> None:
        drafts = [ck.NewCustomer(company_name=f"Co {i}", customer_number=f"N{i}") for i in range(5)]
        drafts.append(ck.NewCustomer(company_name="", customer_number="N9"))
        seen: list[tuple[int, int | None]] = []
        with pytest.raises(ck.ValidationError) as caught:
            book.customers.create_many(
                drafts, actor=ADMIN, progress=lambda d, t: seen.append((d, t))
            )
        assert "[5].company_name" in caught.value.errors
        assert book.customers.recent(actor=ADMIN) == []
        created = book.customers.create_many(
            drafts[:5], actor=ADMIN, progress=lambda d, t: seen.append((d, t))
        )
        assert len(created) == 5
        assert seen[-1] == (5, 5)

    def test_create_many_duplicate_inside_batch_rolls_back(self, book: ck.Book) -> None:
        drafts = [
            ck.NewCustomer(company_name="A", customer_number="N1"),
            ck.NewCustomer(company_name="B", customer_number="n-1"),
        ]
        with pytest.raises(ck.DuplicateCustomerNumber):
            book.customers.create_many(drafts, actor=ADMIN)
        assert book.customers.recent(actor=ADMIN) == []

    def test_load_gives_the_errors_of_create_keyed_by_row(self, book: ck.Book) -> None:
        """C1, C4, U1: a load checks each row with create's rules, and says the same."""
        bad = [
            ck.NewCustomer(company_name="", customer_number="N1"),
            ck.NewCustomer(company_name="Co", customer_number="--"),
            ck.NewCustomer(company_name="Co", customer_number="N2", email="not-an-email"),
            ck.NewCustomer(company_name="Co", customer_number="N3", phone="12"),
            ck.NewCustomer(company_name="Co", customer_number="N4", company_type="Nope"),
            ck.NewCustomer(company_name="Co", customer_number="N5", password="secret-pass-1"),
            ck.NewCustomer(company_name="Co\x00", customer_number="N6", extra={"pin": "1"}),
        ]
        for draft in bad:
            with pytest.raises(ck.ValidationError) as by_create:
                book.customers.create(draft, actor=ADMIN)
            good = ck.NewCustomer(company_name="Fine", customer_number="OK-1")
            with pytest.raises(ck.ValidationError) as by_load:
                book.customers.load([good, draft], actor=ADMIN)
            expected = {f"[1].{k}": v for k, v in by_create.value.errors.items()}
            assert by_load.value.errors == expected
        assert book.customers.recent(actor=ADMIN) == []

    def test_load_is_all_or_nothing_on_a_bad_row_in_the_middle(self, book: ck.Book) -> None:
        """C1, C2: a bad row in a later chunk leaves the book as it was; every bad row is said."""
        kept = customer(book, "Kept Tires", "K-1")
        drafts = [
            ck.NewCustomer(company_name=f"Comp {i}", customer_number=f"N{i}") for i in range(10)
        ]
        drafts[7] = ck.NewCustomer(company_name=" ", customer_number="N7")
        drafts[9] = ck.NewCustomer(company_name="Co 9", customer_number="N9", email="x@")
        with pytest.raises(ck.ValidationError) as caught:
            book.customers.load(iter(drafts), actor=ADMIN, chunk_size=3)
        assert set(caught.value.errors) == {"[7].company_name", "[9].email"}
        assert [c.id for c in book.customers.recent(actor=ADMIN)] == [kept.id]
        assert book.customers.search("comp", actor=ADMIN) == []
        # A clash with the book, or with an earlier row of the load, in a later chunk.
        for number in ("k1", "N-1"):
            clashing = [
                *(
                    ck.NewCustomer(company_name=f"Co {i}", customer_number=f"N{i}")
                    for i in range(8)
                ),
                ck.NewCustomer(company_name="Late", customer_number=number),
            ]
            with pytest.raises(ck.DuplicateCustomerNumber) as duplicate:
                book.customers.load(clashing, actor=ADMIN, chunk_size=3)
            if number == "k1":
                assert duplicate.value.existing_id == kept.id
            assert [c.id for c in book.customers.recent(actor=ADMIN)] == [kept.id]
        assert len(book.history.for_customer(kept.id, actor=ADMIN)) == 1

    def test_load_results_are_searchable_with_their_history(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        """C1, S1, H1: loaded customers are there, found by search, their creation recorded."""
        for round_ in ("alpha", "bravo"):  # an empty book, then one with customers
            drafts = (
                ck.NewCustomer(
                    company_name=f"Loadwell {round_} Garage {i}",
                    customer_number=f"L{round_}-{i}",
                    city="Denver",
                    email=f"ops{i}@loadwell.example",
                )
                for i in range(11)
            )
            seen: list[tuple[int, int | None]] = []
            count = book.customers.load(
                drafts,
                actor=ADMIN,
                chunk_size=4,
                total=11,
                progress=lambda d, t: seen.append((d, t)),  # noqa: B023
            )
            assert count == 11
            assert seen == [(4, 11), (8, 11), (11, 11)]
            hits = book.customers.search(f"loadwell {round_}", actor=ADMIN, limit=50)
            assert len(hits) == 11
            found = book.customers.search(f"garage {round_}", actor=STAFF, limit=50)
            assert {h.customer.id for h in found} == {h.customer.id for h in hits}
            one = next(h.customer for h in hits if h.customer.customer_number == f"L{round_}-3")
            assert one.company_name == f"Loadwell {round_} Garage 3"
            assert one.location_id == ADMIN.location_id
            assert one.created_at == clock()
            assert book.customers.get(one.id, actor=STAFF) == one
            [record] = book.history.for_customer(one.id, actor=ADMIN)
            assert record.action == "create"
            assert record.actor_id == ADMIN.user_id
            assert record.changes["company_name"] == (None, one.company_name)
            assert record.changes["email"] == (None, "ops3@loadwell.example")
        assert len(book.customers.recent(actor=ADMIN)) == 22
        # The book still takes one customer at a time after a load.
        later = customer(book, "After Load Motors", "A-1")
        assert book.customers.search("after load", actor=STAFF)[0].customer.id == later.id

    def test_load_needs_permission_to_create(self, book: ck.Book) -> None:
        """P1: an actor who may not create customers may not load them."""
        fleet = customer(book, "Acme Fleet", "F-1", kind=ck.CustomerKind.FLEET)
        user = ck.Actor(
            user_id="f", role=ck.Role.FLEET_USER, location_id="loc-1", fleet_customer_id=fleet.id
        )
        drafts = [ck.NewCustomer(company_name="Co", customer_number="N1")]
        with pytest.raises(ck.PermissionDenied):
            book.customers.load(drafts, actor=user)
        assert [c.id for c in book.customers.recent(actor=ADMIN)] == [fleet.id]

    def test_read_only_unit_of_work_refuses_writes(self, book: ck.Book) -> None:
        c = customer(book)

        def add_type(uow: UnitOfWork) -> None:
            uow.reference.add_company_type(ck.CompanyType(name="Dealer"))
            uow.commit()

        def move(uow: UnitOfWork) -> None:
            current = uow.customers.get(c.id)
            assert current is not None
            moved = attrs.evolve(current, city="Aurora", version=current.version + 1)
            uow.customers.update(moved, expected_version=current.version)
            uow.commit()

        for write in (add_type, move):
            with (
                pytest.raises(RuntimeError, match="read-only"),
                book.store.unit_of_work(read_only=True) as uow,
            ):
                write(uow)
        assert book.reference.company_types() == []
        assert book.customers.get(c.id, actor=STAFF) == c
        assert book.customers.search("aurora", actor=STAFF) == []

    def test_read_only_fields_and_unknown_fields(self, book: ck.Book) -> None:
        c = customer(book)
        with pytest.raises(ck.ValidationError):
            book.customers.update(c.id, {"id": "x"}, actor=ADMIN)
        with pytest.raises(ck.ValidationError):
            book.customers.update(c.id, {"version": 9}, actor=ADMIN)


#: Actors no call may accept: not an Actor, or one with a missing or mistyped field.
BAD_ACTORS = {
    "none": None,
    "text": "admin",
    "no-location": ck.Actor(user_id="u1", role=ck.Role.DEALER_ADMIN, location_id=None),  # type: ignore[arg-type]
    "blank-user": ck.Actor(user_id=" ", role=ck.Role.DEALER_ADMIN, location_id="loc-1"),
    "role-as-text": ck.Actor(user_id="u1", role="DEALER_ADMIN", location_id="loc-1"),  # type: ignore[arg-type]
}


class TestEntryPointsContract:
    """Bad actors and arguments are refused at the entry point, the same on every backend."""

    @pytest.mark.parametrize("bad", list(BAD_ACTORS.values()), ids=list(BAD_ACTORS))
    def test_a_bad_actor_is_refused_by_every_call(self, book: ck.Book, bad: Any) -> None:
        """``ValidationError`` naming the actor, before anything is read or written."""
        c = customer(book)
        k = book.contacts.add(c.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=ADMIN)
        draft = ck.NewCustomer(company_name="New", customer_number="C-9")
        calls: dict[str, Callable[[], object]] = {
            "customers.create": lambda: book.customers.create(draft, actor=bad),
            "customers.create_many": lambda: book.customers.create_many([draft], actor=bad),
            "customers.load": lambda: book.customers.load([draft], actor=bad),
            "customers.get": lambda: book.customers.get(c.id, actor=bad),
            "customers.update": lambda: book.customers.update(c.id, {"city": "X"}, actor=bad),
            "customers.delete": lambda: book.customers.delete(c.id, actor=bad),
            "customers.search": lambda: book.customers.search("johnson", actor=bad),
            "customers.recent": lambda: book.customers.recent(actor=bad),
            "customers.assign_staff": lambda: book.customers.assign_staff(c.id, [], actor=bad),
            "customers.find_duplicates": lambda: book.customers.find_duplicates(actor=bad),
            "customers.merge": lambda: book.customers.merge(c.id, ["x"], actor=bad),
            "history.for_customer": lambda: book.history.for_customer(c.id, actor=bad),
            "contacts.add": lambda: book.contacts.add(
                c.id, ck.NewContact(first_name="Bo", last_name="Ray"), actor=bad
            ),
            "contacts.get": lambda: book.contacts.get(k.id, actor=bad),
            "contacts.list": lambda: book.contacts.list(c.id, actor=bad),
            "contacts.update": lambda: book.contacts.update(k.id, {"title": "X"}, actor=bad),
            "contacts.delete": lambda: book.contacts.delete(k.id, actor=bad),
            "contacts.delete_many": lambda: book.contacts.delete_many([k.id], actor=bad),
            "contacts.unused": lambda: book.contacts.unused(c.id, actor=bad),
            "reference.add_company_type": lambda: book.reference.add_company_type(
                "Fleet", actor=bad
            ),
            "users.add": lambda: book.users.add(
                ck.User(id="u7", name="U", email="", role=ck.Role.STAFF, location_id="loc-1"),
                actor=bad,
            ),
        }
        if bad is not None:  # these accept None: the call is the library's own
            calls["contacts.record_communication"] = lambda: book.contacts.record_communication(
                k.id, actor=bad
            )
            calls["contacts.recipients"] = lambda: book.contacts.recipients(c.id, actor=bad)
        for name, call in calls.items():
            with pytest.raises(ck.ValidationError, match="actor") as caught:
                call()
            assert type(caught.value) is ck.ValidationError, name
        assert book.customers.recent(actor=ADMIN) == [c]
        assert book.contacts.list(c.id, actor=ADMIN) == [k]
        assert len(book.history.for_customer(c.id, actor=ADMIN)) == 2

    @pytest.mark.parametrize(
        ("username", "password"), [("jtires", None), (None, "secret-pw"), ("jtires", b"x")]
    )
    def test_verify_password_refuses_what_is_not_text(
        self, book: ck.Book, username: Any, password: Any
    ) -> None:
        """U3: a username or password that is not text is ``ValidationError``, not a crash."""
        customer(book, username="jtires", password="secret-pw")
        with pytest.raises(ck.ValidationError):
            book.customers.verify_password(username, password)


class TestUsernamesContract:
    """U1-U3 through the book."""

    def test_u1_unique_by_canonical_key(self, book: ck.Book) -> None:
        customer(book, username="BigBird")
        for variant in ("bigbird", "BIGBIRD", "Ｂｉｇｂｉｒｄ"):
            with pytest.raises(ck.DuplicateUsername):
                customer(book, "Other", "C-2", username=variant)

    def test_u1_username_is_immutable(self, book: ck.Book) -> None:
        c = customer(book, username="jtires")
        with pytest.raises(ck.ImmutableField):
            book.customers.update(c.id, {"username": "other"}, actor=ADMIN)
        assert book.customers.get(c.id, actor=ADMIN).username == "jtires"

    def test_u1_username_can_be_set_once_later(self, book: ck.Book) -> None:
        c = customer(book)
        assert book.customers.update(c.id, {"username": "jt"}, actor=STAFF).username == "jt"

    @pytest.mark.parametrize("bad", ["admin", "аdmin", "bo\u200bb", "bob\x00", "a b", "ﬁle"])
    def test_u1_refused_usernames(self, book: ck.Book, bad: str) -> None:
        with pytest.raises(ck.ValidationError) as caught:
            customer(book, username=bad)
        assert "username" in caught.value.errors

    def test_u2_suggest_username_skips_taken(self, book: ck.Book) -> None:
        suggest = book.customers.suggest_username
        first = suggest("José", "García-López", "+1 (303) 555-0142")
        assert first == "jgarcialopez0142"
        customer(book, username=first)
        assert suggest("José", "García-López", "+1 (303) 555-0142") == "jgarcialopez0142-2"

    def test_u2_suggest_username_transliterates(self, book: ck.Book) -> None:
        suggest = book.customers.suggest_username
        assert suggest("Søren", "Søstergaard", "303 555 0142") == "ssostergaard0142"
        assert suggest("Иван", "Петров", "") == "ipetrov"

    def test_u3_password_hashed_never_shown(self, book: ck.Book) -> None:
        c = customer(book, username="jt", password="correct horse battery")
        assert c.password_hash is not None
        assert c.password_hash.startswith("$argon2id$")
        assert "correct horse" not in repr(c)
        assert c.password_hash not in repr(c)
        assert book.customers.verify_password("JT", "correct horse battery") is not None
        assert book.customers.verify_password("jt", "wrong password!") is None
        history = book.history.for_customer(c.id, actor=ADMIN)
        assert history[0].changes["password"] == ("", "(changed)")

    def test_u4_email_and_phone_validation(self, book: ck.Book) -> None:
        with pytest.raises(ck.ValidationError) as caught:
            customer(book, email="Bob <bob@x.com>", phone="=1+1")
        assert set(caught.value.errors) == {"email", "phone"}
        c = customer(book, email=" Bob@Example.COM ", phone="5550142")
        assert (c.email, c.phone) == ("Bob@Example.COM", "5550142")


class TestSearchContract:
    """S1-S5 through the book: same hits in the same order on every backend."""

    @pytest.fixture
    def loaded(self, book: ck.Book) -> ck.Book:
        rows = [
            ("John Deere", "D-1", "Moline", "IL"),
            ("Johnson Tires - Denver", "C-1001", "Denver", "CO"),
            ("Johnson Tires", "C-1002", "Aurora", "CO"),
            ("Big John's Hauling", "C-2000", "Boulder", "CO"),
            ("Smith-Jones Farms", "C-3000", "Salina", "KS"),
            ("O'Brien Equipment", "C-4000", "Denver", "CO"),
            ("ÉCOLE Auto", "C-5000", "Lyon", "CO"),
            ("50%_off Tires", "C-6000", "Denver", "CO"),
        ]
        for name, number, city, state in rows:
            customer(book, name, number, city=city, state=state)
        customer(book, "Johnson Far Away", "C-1001", actor=OTHER_ADMIN)
        return book

    @staticmethod
    def names(book: ck.Book, query: str, **kw: object) -> list[str]:
        hits = book.customers.search(query, actor=STAFF, **kw)  # type: ignore[arg-type]
        return [hit.customer.company_name for hit in hits]

    def test_s4_prefix_examples_from_the_help_center(self, loaded: ck.Book) -> None:
        names = self.names(loaded, "john")
        assert names[:1] == ["John Deere"]
        assert {"John Deere", "Johnson Tires", "Johnson Tires - Denver"} <= set(names)
        assert self.names(loaded, "john den") == ["Johnson Tires - Denver"]

    def test_s1_scoped_to_location_and_field(self, loaded: ck.Book) -> None:
        assert "Johnson Far Away" not in self.names(loaded, "johnson")
        assert self.names(loaded, "denver", field=ck.SearchField.NAME) == ["Johnson Tires - Denver"]
        by_city = self.names(loaded, "denver", field=ck.SearchField.CITY)
        assert set(by_city) == {"Johnson Tires - Denver", "O'Brien Equipment", "50%_off Tires"}
        assert self.names(loaded, "1002", field=ck.SearchField.NUMBER) == ["Johnson Tires"]

    def test_s2_folding_apostrophes_and_hyphens(self, loaded: ck.Book) -> None:
        assert self.names(loaded, "obrien") == ["O'Brien Equipment"]
        assert self.names(loaded, "ecole") == ["ÉCOLE Auto"]
        for query in ("smith", "jones", "smithjones", "smith-jones"):
            assert self.names(loaded, query) == ["Smith-Jones Farms"]

    def test_s2_letters_without_ascii_decomposition_are_transliterated(self, book: ck.Book) -> None:
        customer(book, "Søren Hauling", "C-1", city="Łódź")
        customer(book, "Иван Петров Trucks", "C-2", city="Straße")
        customer(book, "Ærø Marine", "C-3")
        customer(book, "Soren Lodz Plain", "C-4")
        for query, field, expected in (
            ("soren", ck.SearchField.NAME, {"Søren Hauling", "Soren Lodz Plain"}),
            ("søren", ck.SearchField.NAME, {"Søren Hauling", "Soren Lodz Plain"}),
            ("lodz", ck.SearchField.CITY, {"Søren Hauling"}),
            ("łódź", ck.SearchField.ALL, {"Søren Hauling", "Soren Lodz Plain"}),
            ("ivan petrov", ck.SearchField.NAME, {"Иван Петров Trucks"}),
            ("петров", ck.SearchField.NAME, {"Иван Петров Trucks"}),
            ("strasse", ck.SearchField.CITY, {"Иван Петров Trucks"}),
            ("aero", ck.SearchField.NAME, {"Ærø Marine"}),
        ):
            hits = book.customers.search(query, actor=STAFF, field=field)
            assert {h.customer.company_name for h in hits} == expected, query

    def test_s3_short_queries(self, loaded: ck.Book) -> None:
        with pytest.raises(ck.QueryTooShort):
            loaded.customers.search("jo", actor=STAFF)
        with pytest.raises(ck.QueryTooShort):
            loaded.customers.search("", actor=STAFF)
        assert len(self.names(loaded, "co", field=ck.SearchField.STATE)) == 6
        assert self.names(loaded, "john t d") == ["Johnson Tires - Denver"]

    def test_s4_infix_ranked_below_prefix(self, loaded: ck.Book) -> None:
        names = self.names(loaded, "ohn")
        assert set(names) >= {"John Deere", "Johnson Tires", "Big John's Hauling"}

    def test_s5_ranking_is_deterministic(self, loaded: ck.Book) -> None:
        assert self.names(loaded, "tires") == [
            "50%_off Tires",  # as long as "Johnson Tires": then by folded name
            "Johnson Tires",
            "Johnson Tires - Denver",
        ]

    def test_s4_fuzzy_finds_typos_ranked_last(self, loaded: ck.Book) -> None:
        assert self.names(loaded, "jonson") == []
        assert set(self.names(loaded, "jonson", fuzzy=True)) >= {"Johnson Tires"}

    @pytest.mark.parametrize(
        "query", ["%%%", "___", "' OR '1'='1", "'; DROP TABLE customers;--", "a%b", "tires%"]
    )
    def test_hostile_queries_are_literal(self, loaded: ck.Book, query: str) -> None:
        try:
            names = self.names(loaded, query)
        except ck.QueryTooShort:
            names = []  # no word of 3 characters: refused, never a wildcard
        expected = ["50%_off Tires", "Johnson Tires", "Johnson Tires - Denver"]
        assert names == (expected if "tires" in query else [])
        assert len(self.names(loaded, "tires")) == 3

    def test_percent_matches_literally(self, loaded: ck.Book) -> None:
        assert self.names(loaded, "50%_off") == ["50%_off Tires"]

    @pytest.mark.parametrize("query", ["\x00abc", "a" * 100_000, "\ud800abc"])
    def test_bad_queries_raise_validation_error(self, loaded: ck.Book, query: str) -> None:
        with pytest.raises(ck.ValidationError):
            loaded.customers.search(query, actor=STAFF)

    @pytest.mark.parametrize("limit", [0, -1, 501, 10**9])
    def test_limit_bounds(self, loaded: ck.Book, limit: int) -> None:
        with pytest.raises(ck.ValidationError):
            loaded.customers.search("tires", actor=STAFF, limit=limit)

    def test_search_follows_updates_and_deletes(self, loaded: ck.Book) -> None:
        [hit] = loaded.customers.search("deere", actor=STAFF)
        loaded.customers.update(hit.customer.id, {"company_name": "Deer Valley Feed"}, actor=STAFF)
        assert self.names(loaded, "deere") == []
        assert self.names(loaded, "valley") == ["Deer Valley Feed"]
        loaded.customers.delete(hit.customer.id, actor=MANAGER)
        assert self.names(loaded, "valley") == []


class TestPermissionsContract:
    """P1, P2: deny by default, tenancy by location and fleet."""

    def test_p2_other_location_cannot_read_or_change(self, book: ck.Book) -> None:
        c = customer(book)
        for call in (
            lambda: book.customers.get(c.id, actor=OTHER_ADMIN),
            lambda: book.customers.update(c.id, {"city": "X"}, actor=OTHER_ADMIN),
            lambda: book.customers.delete(c.id, actor=OTHER_ADMIN),
            lambda: book.history.for_customer(c.id, actor=OTHER_ADMIN),
            lambda: book.contacts.list(c.id, actor=OTHER_ADMIN),
        ):
            with pytest.raises(ck.PermissionDenied):
                call()
        assert book.customers.get(c.id, actor=ADMIN) == c

    @pytest.mark.parametrize(
        ("role", "allowed"),
        [
            (ck.Role.FLEET_USER, False),
            (ck.Role.STAFF, True),
            (ck.Role.SERVICE_ADVISOR, True),
            (ck.Role.DEALER_ADMIN, True),
        ],
    )
    def test_p1_create_needs_staff(self, book: ck.Book, role: ck.Role, allowed: bool) -> None:
        actor = ck.Actor(user_id="x", role=role, location_id="loc-1")
        if allowed:
            assert customer(book, actor=actor)
        else:
            with pytest.raises(ck.PermissionDenied):
                customer(book, actor=actor)

    def test_p1_fleet_user_sees_only_its_fleet(self, book: ck.Book) -> None:
        fleet = customer(book, "Acme Fleet Tires", "F-1", kind=ck.CustomerKind.FLEET)
        other = customer(book, "Other Tires", "C-2")
        fleet_user = ck.Actor(
            user_id="f", role=ck.Role.FLEET_USER, location_id="loc-1", fleet_customer_id=fleet.id
        )
        assert book.customers.get(fleet.id, actor=fleet_user) == fleet
        with pytest.raises(ck.PermissionDenied):
            book.customers.get(other.id, actor=fleet_user)
        hits = book.customers.search("tires", actor=fleet_user)
        assert [h.customer.id for h in hits] == [fleet.id]
        with pytest.raises(ck.PermissionDenied):
            book.customers.update(fleet.id, {"city": "X"}, actor=fleet_user)

    def test_p2_fleet_user_finds_its_customer_whatever_others_rank(self, book: ck.Book) -> None:
        fleet = customer(book, "Zenith Hauling Tires Fleet", "F-1", kind=ck.CustomerKind.FLEET)
        book.customers.create_many(
            [
                ck.NewCustomer(company_name=f"Tires {n}", customer_number=f"T-{n}")
                for n in range(25)
            ],
            actor=ADMIN,
        )
        fleet_user = ck.Actor(
            user_id="f", role=ck.Role.FLEET_USER, location_id="loc-1", fleet_customer_id=fleet.id
        )
        assert fleet.id not in [h.customer.id for h in book.customers.search("tires", actor=ADMIN)]
        for query, limit in (("tires", 20), ("tires", 1), ("hauling", 5), ("tir", 1)):
            hits = book.customers.search(query, actor=fleet_user, limit=limit)
            assert [h.customer.id for h in hits] == [fleet.id]
            [as_admin] = [
                h
                for h in book.customers.search(query, actor=ADMIN, limit=500)
                if h.customer.id == fleet.id
            ]
            assert (hits[0].score, hits[0].field) == (as_admin.score, as_admin.field)
        assert book.customers.search("tires", actor=fleet_user, field=ck.SearchField.CITY) == []
        assert book.customers.search("zzzz", actor=fleet_user) == []

    def test_p1_policy_is_replaceable(self, make_book: MakeBook, clock: FakeClock) -> None:
        class DenyAll:
            def authorize(self, actor: ck.Actor, action: ck.Action, target: ck.Target) -> None:
                raise ck.PermissionDenied("closed")

        book = make_book(clock)
        book_denied = ck.Book(
            book.store, clock=clock, policy=DenyAll(), hasher=ck.PasswordHasher.for_tests()
        )
        with pytest.raises(ck.PermissionDenied):
            customer(book_denied)


class TestContactsContract:
    """K1-K5."""

    @staticmethod
    def fleet_setup(book: ck.Book) -> tuple[ck.Customer, ck.Actor]:
        fleet = customer(book, "Acme Fleet", "F-1", kind=ck.CustomerKind.FLEET)
        user = ck.User(
            id="fu",
            name="Fran Fleet",
            email="fran@acme.example",
            role=ck.Role.FLEET_USER,
            location_id="loc-1",
            fleet_customer_id=fleet.id,
        )
        book.users.add(user, actor=ADMIN)
        return fleet, ck.Actor(
            user_id="fu", role=ck.Role.FLEET_USER, location_id="loc-1", fleet_customer_id=fleet.id
        )

    def test_k1_provider_manages_local_contacts(self, book: ck.Book) -> None:
        c = customer(book)
        k = book.contacts.add(
            c.id,
            ck.NewContact(first_name="Ann", last_name="Lee", email="ann@example.com"),
            actor=STAFF,
        )
        assert k.managed_by is ck.ManagedBy.PROVIDER
        k = book.contacts.update(k.id, {"phone": "303 555 0100"}, actor=STAFF)
        assert book.contacts.list(c.id, actor=STAFF) == [k]

    def test_k1_fleet_contacts_changed_only_by_the_fleet(self, book: ck.Book) -> None:
        fleet, fleet_actor = self.fleet_setup(book)
        by_provider = book.contacts.add(
            fleet.id, ck.NewContact(first_name="P", last_name="Q"), actor=STAFF
        )
        by_fleet = book.contacts.add(
            fleet.id, ck.NewContact(first_name="R", last_name="S"), actor=fleet_actor
        )
        assert (by_provider.added_by_fleet, by_fleet.added_by_fleet) == (False, True)
        assert by_provider.managed_by is ck.ManagedBy.PROVIDER
        assert by_fleet.managed_by is ck.ManagedBy.FLEET
        with pytest.raises(ck.PermissionDenied):
            book.contacts.update(by_fleet.id, {"title": "Boss"}, actor=ADMIN)
        with pytest.raises(ck.PermissionDenied):
            book.contacts.delete(by_fleet.id, actor=ADMIN)
        assert (
            book.contacts.update(by_fleet.id, {"title": "Boss"}, actor=fleet_actor).title == "Boss"
        )
        with pytest.raises(ck.PermissionDenied):
            book.contacts.update(by_provider.id, {"title": "Boss"}, actor=fleet_actor)

    def test_k1_provider_fixes_the_contacts_it_added_to_a_fleet(self, book: ck.Book) -> None:
        fleet, _ = self.fleet_setup(book)
        mine = book.contacts.add(
            fleet.id, ck.NewContact(first_name="Pat", last_name="Quin"), actor=STAFF
        )
        fixed = book.contacts.update(mine.id, {"last_name": "Quinn"}, actor=STAFF)
        assert fixed.last_name == "Quinn"
        book.contacts.delete(mine.id, actor=STAFF)
        assert book.contacts.list(fleet.id, actor=STAFF) == []

    def test_k1_bulk_delete_spares_fleet_managed_contacts(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        fleet, fleet_actor = self.fleet_setup(book)
        theirs = book.contacts.add(
            fleet.id, ck.NewContact(first_name="R", last_name="S"), actor=fleet_actor
        )
        ours = book.contacts.add(
            fleet.id, ck.NewContact(first_name="P", last_name="Q"), actor=STAFF
        )
        clock.advance(days=400)
        unused = book.contacts.unused(fleet.id, actor=ADVISOR).contacts
        assert {(c.id, c.managed_by) for c in unused} == {
            (theirs.id, ck.ManagedBy.FLEET),
            (ours.id, ck.ManagedBy.PROVIDER),
        }
        with pytest.raises(ck.PermissionDenied):
            book.contacts.delete_many([ours.id, theirs.id], actor=ADMIN)
        assert len(book.contacts.list(fleet.id, actor=STAFF)) == 2  # all or nothing
        assert book.contacts.delete_many([ours.id], actor=ADVISOR) == [ours.id]
        assert book.contacts.list(fleet.id, actor=STAFF) == [theirs]

    def test_k2_email_never_updates(self, book: ck.Book) -> None:
        c = customer(book)
        k = book.contacts.add(
            c.id, ck.NewContact(first_name="A", last_name="B", email="a@example.com"), actor=STAFF
        )
        with pytest.raises(ck.ImmutableField):
            book.contacts.update(k.id, {"email": "new@example.com"}, actor=STAFF)
        assert book.contacts.get(k.id, actor=STAFF).email == "a@example.com"

    def test_k3_external_user_email_unique_across_book(self, book: ck.Book) -> None:
        c1 = customer(book)
        c2 = customer(book, "Other", "C-2", actor=OTHER_ADMIN)
        book.contacts.add(
            c1.id,
            ck.NewContact(
                first_name="A", last_name="B", email="Ext@Example.com", external_user=True
            ),
            actor=STAFF,
        )
        with pytest.raises(ck.DuplicateExternalUser):
            book.contacts.add(
                c2.id,
                ck.NewContact(
                    first_name="C", last_name="D", email="ext@example.com", external_user=True
                ),
                actor=OTHER_ADMIN,
            )
        # not an external user: no clash
        book.contacts.add(
            c2.id,
            ck.NewContact(first_name="C", last_name="D", email="ext@example.com"),
            actor=OTHER_ADMIN,
        )

    def test_k4_recipients(self, book: ck.Book, clock: FakeClock) -> None:
        fleet, fleet_actor = self.fleet_setup(book)

        def add(customer_id: str, draft: ck.NewContact, actor: ck.Actor) -> ck.Contact:
            clock.advance(seconds=1)  # creation order decides which duplicate email wins
            return book.contacts.add(customer_id, draft, actor=actor)

        a = add(
            fleet.id,
            ck.NewContact(first_name="A", last_name="A", email="a@example.com"),
            actor=STAFF,
        )
        add(fleet.id, ck.NewContact(first_name="No", last_name="Mail"), actor=STAFF)
        add(
            fleet.id,
            ck.NewContact(first_name="Dup", last_name="A", email="A@EXAMPLE.com"),
            actor=STAFF,
        )
        one = add(
            fleet.id,
            ck.NewContact(
                first_name="O", last_name="T", email="o@example.com", one_time_case_id="case-9"
            ),
            actor=STAFF,
        )
        gone = add(
            fleet.id,
            ck.NewContact(first_name="G", last_name="G", email="g@example.com"),
            actor=fleet_actor,
        )
        book.contacts.delete(gone.id, actor=fleet_actor)  # K1: the fleet added it
        emails = [r.email for r in book.contacts.recipients(fleet.id)]
        assert emails == ["a@example.com", "fran@acme.example"]
        open_case = book.contacts.recipients(fleet.id, case=ck.CaseRef("case-9"))
        assert [r.contact_id for r in open_case if r.contact_id] == [a.id, one.id]
        closed = book.contacts.recipients(fleet.id, case=ck.CaseRef("case-9", open=False))
        assert one.id not in [r.contact_id for r in closed]
        other_case = book.contacts.recipients(fleet.id, case=ck.CaseRef("case-1"))
        assert one.id not in [r.contact_id for r in other_case]

    def test_k5_unused_after_six_calendar_months(self, book: ck.Book, clock: FakeClock) -> None:
        c = customer(book)
        talked = book.contacts.add(c.id, ck.NewContact(first_name="T", last_name="T"), actor=STAFF)
        silent = book.contacts.add(c.id, ck.NewContact(first_name="S", last_name="S"), actor=STAFF)
        clock.advance(days=100)
        book.contacts.record_communication(talked.id)
        clock.advance(days=90)
        unused = book.contacts.unused(c.id, actor=ADVISOR)
        assert [k.id for k in unused.contacts] == [silent.id]
        assert unused.should_prompt is False

    def test_k5_prompt_at_thirty_for_advisor_and_above(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        c = customer(book)
        for i in range(30):
            book.contacts.add(c.id, ck.NewContact(first_name=f"N{i}", last_name="X"), actor=STAFF)
        clock.advance(days=200)
        assert book.contacts.unused(c.id, actor=ADVISOR).should_prompt is True
        assert book.contacts.unused(c.id, actor=STAFF).should_prompt is False
        ids = [k.id for k in book.contacts.unused(c.id, actor=ADVISOR).contacts]
        with pytest.raises(ck.PermissionDenied):
            book.contacts.delete_many(ids, actor=STAFF)
        with pytest.raises(ck.NotFound):
            book.contacts.delete_many([*ids, "missing"], actor=ADVISOR)
        assert len(book.contacts.list(c.id, actor=STAFF)) == 30
        assert book.contacts.delete_many(ids, actor=ADVISOR) == ids
        assert book.contacts.list(c.id, actor=STAFF) == []

    def test_contact_history_is_kept(self, book: ck.Book) -> None:
        c = customer(book)
        k = book.contacts.add(c.id, ck.NewContact(first_name="A", last_name="B"), actor=STAFF)
        book.contacts.update(k.id, {"title": "Owner"}, actor=STAFF)
        book.contacts.delete(k.id, actor=STAFF)
        actions = [(h.entity, h.action) for h in book.history.for_customer(c.id, actor=ADMIN)]
        assert actions == [
            ("customer", "create"),
            ("contact", "add"),
            ("contact", "update"),
            ("contact", "delete"),
        ]

    def test_contact_validation(self, book: ck.Book) -> None:
        c = customer(book)
        with pytest.raises(ck.ValidationError) as caught:
            book.contacts.add(
                c.id,
                ck.NewContact(first_name=" ", last_name="", email="x@", phone="abc"),
                actor=STAFF,
            )
        assert set(caught.value.errors) == {"last_name", "email", "phone"}


class TestSourcesContract:
    """D1-D4."""

    @pytest.fixture
    def dms(self) -> ck.InMemorySource:
        return ck.InMemorySource(
            "procede",
            [
                ck.SourceRecord(
                    external_id="P-1",
                    data={
                        "company_name": "Johnson Tires",
                        "customer_number": "P-1",
                        "city": "Denver",
                        "state": "CO",
                    },
                ),
                ck.SourceRecord(
                    external_id="P-2", data={"company_name": "John Deere", "customer_number": "P-2"}
                ),
            ],
        )

    def test_d4_secret_columns_are_never_stored(self, book: ck.Book) -> None:
        """A source column named like a secret is dropped at import and refresh.

        It is not in ``extra``, the history, an export or a repr.
        """
        data = {"company_name": "Johnson Tires", "customer_number": "P-1", "Region": "West"}
        secrets = {"password": "hunter2-pw", "User PIN": "4711-pin", "api_token": "tok-xyz"}
        dms = ck.InMemorySource(
            "procede", [ck.SourceRecord(external_id="P-1", data={**data, **secrets})]
        )
        book.sources.register(dms)
        book.sources.enable("procede", location_id="loc-1", actor=ADMIN)
        c = book.sources.import_customer("procede", "P-1", actor=STAFF)
        assert c.extra == {"Region": "West"}
        dms.put(ck.SourceRecord(external_id="P-1", data={**data, **secrets, "Region": "East"}))
        c = book.sources.refresh_customer(c.id, actor=STAFF)
        assert c.extra == {"Region": "East"}
        out = io.StringIO()
        book.customers.export(out, actor=ADMIN, format="jsonl")
        history = book.history.for_customer(c.id, actor=ADMIN)
        for text in (
            out.getvalue(),
            repr(history),
            repr(c),
            repr(book.customers.get(c.id, actor=ADMIN)),
        ):
            assert not [value for value in secrets.values() if value in text]

    @pytest.mark.parametrize("key", ["password", "Passwd", "userPIN", "API-Token", "secret"])
    def test_d4_secret_keys_in_extra_are_refused(self, book: ck.Book, key: str) -> None:
        """``extra`` given through the API never holds a secret: ``ValidationError`` on extra."""
        with pytest.raises(ck.ValidationError, match="secret") as caught:
            customer(book, extra={key: "hunter2-pw", "Region": "West"})
        assert "hunter2-pw" not in str(caught.value)
        c = customer(book, extra={"Region": "West", "Shipping": "dock 2", "Pinecone": "y"})
        with pytest.raises(ck.ValidationError, match="secret"):
            book.customers.update(c.id, {"extra": {key: "hunter2-pw"}}, actor=ADMIN)
        assert book.customers.get(c.id, actor=ADMIN) == c

    def test_d2_only_admin_enables_and_disabled_refuses(
        self, book: ck.Book, dms: ck.InMemorySource
    ) -> None:
        book.sources.register(dms)
        with pytest.raises(ck.SourceError):
            book.sources.search("procede", "john", actor=STAFF)
        with pytest.raises(ck.PermissionDenied):
            book.sources.enable("procede", location_id="loc-1", actor=MANAGER)
        book.sources.enable("procede", location_id="loc-1", actor=ADMIN)
        assert len(book.sources.search("procede", "john", actor=STAFF)) == 2

    def test_d3_d4_import_then_read_only_then_refresh(
        self, book: ck.Book, dms: ck.InMemorySource
    ) -> None:
        book.sources.register(dms)
        book.sources.enable("procede", location_id="loc-1", actor=ADMIN)
        c = book.sources.import_customer("procede", "P-1", actor=STAFF)
        assert (c.company_name, c.source and c.source.external_id) == ("Johnson Tires", "P-1")
        hits = {
            h.record.external_id: h.customer_id
            for h in book.sources.search("procede", "john", actor=STAFF)
        }
        assert hits == {"P-1": c.id, "P-2": None}
        with pytest.raises(ck.AlreadyImported):
            book.sources.import_customer("procede", "P-1", actor=STAFF)
        with pytest.raises(ck.ReadOnlyCustomer):
            book.customers.update(c.id, {"city": "Aurora"}, actor=ADMIN)
        book.customers.update(c.id, {"phone_extension": "12"}, actor=STAFF)  # not from the source
        dms.put(
            ck.SourceRecord(
                external_id="P-1",
                data={
                    "company_name": "Johnson Tires & Wheels",
                    "customer_number": "P-1",
                    "city": "Aurora",
                    "state": "CO",
                },
            )
        )
        refreshed = book.sources.refresh_customer(c.id, actor=STAFF)
        assert (refreshed.company_name, refreshed.city) == ("Johnson Tires & Wheels", "Aurora")
        last = book.history.for_customer(c.id, actor=ADMIN)[-1]
        assert last.action == "refresh"
        assert last.changes["city"] == ("Denver", "Aurora")
        dms.drop("P-1")
        with pytest.raises(ck.SourceError):
            book.sources.refresh_customer(c.id, actor=STAFF)
        assert book.customers.get(c.id, actor=STAFF) == refreshed
        book.customers.delete(c.id, actor=MANAGER)

    def test_d1_csv_source(self, book: ck.Book, tmp_path: object) -> None:
        from pathlib import Path

        assert isinstance(tmp_path, Path)
        path = tmp_path / "export.csv"
        path.write_text(
            "\ufeffCustomer #;Company Name;City;State\r\nP-9;Miller Trucking;Salina;KS\r\n",
            encoding="utf-8",
        )
        source = ck.CsvSource("dms", path)
        book.sources.register(source)
        book.sources.enable("dms", location_id="loc-1", actor=ADMIN)
        [hit] = book.sources.search("dms", "mill", actor=STAFF)
        assert hit.record.data["company_name"] == "Miller Trucking"
        c = book.sources.import_customer("dms", "P-9", actor=STAFF)
        assert (c.customer_number, c.state) == ("P-9", "KS")


class TestExportContract:
    """C8: streaming export, formula neutralisation."""

    def test_c8_csv_export_neutralises_formulas_and_round_trips(self, book: ck.Book) -> None:
        c = customer(
            book,
            '=HYPERLINK("http://x","click")',
            "C-1",
            city="-Denver",
            address_line1='He said "hi", twice',
        )
        book.contacts.add(
            c.id,
            ck.NewContact(first_name="@Ann", last_name="Lee", email="ann@example.com"),
            actor=STAFF,
        )
        customer(book, "Plain Co", "C-2", username="plain", password="secret password")
        out = io.StringIO()
        progress: list[tuple[int, int | None]] = []
        assert (
            book.customers.export(out, actor=STAFF, progress=lambda d, t: progress.append((d, t)))
            == 2
        )
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        first = next(r for r in rows if r["id"] == c.id)
        assert first["company_name"] == '\'=HYPERLINK("http://x","click")'
        assert first["city"] == "'-Denver"
        assert first["address_line1"] == 'He said "hi", twice'
        assert first["contact_names"] == "'@Ann Lee"
        assert first["contact_emails"] == "ann@example.com"
        assert "password" not in out.getvalue().lower().replace("password_hash", "")
        assert "$argon2" not in out.getvalue()
        assert progress[-1] == (2, 2)

    def test_c8_jsonl_export_selected_ids(self, book: ck.Book) -> None:
        a = customer(book, "A Co", "C-1")
        customer(book, "B Co", "C-2")
        out = io.StringIO()
        assert book.customers.export(out, actor=STAFF, format="jsonl", ids=[a.id]) == 1
        [row] = [json.loads(line) for line in out.getvalue().splitlines()]
        assert row["company_name"] == "A Co"

    def test_c8_export_reads_one_snapshot_while_others_write(self, book: ck.Book) -> None:
        """T17: rows exported are the rows when the export began, though others write meanwhile.

        More than one page of rows, so later pages are read after the change.
        """
        drafts = [
            ck.NewCustomer(company_name=f"Snapshot {i}", customer_number=f"S-{i}")
            for i in range(1500)
        ]
        before = {c.id for c in book.customers.create_many(drafts, actor=ADMIN)}
        last = max(before)  # exported last: a change to it comes before its page is read
        latecomer = ck.NewCustomer(company_name="Latecomer", customer_number="L-1")
        changed: list[ck.Customer] = []

        def change() -> None:
            book.customers.delete(last, actor=ADMIN)
            changed.append(book.customers.create(latecomer, actor=ADMIN))

        writer = threading.Thread(target=change)

        class ChangingWhileWritten(io.StringIO):
            def write(self, text: str) -> int:
                if writer.ident is None and self.tell() > 0:
                    writer.start()  # memory: waits for the export's lock; SQL: goes through
                    writer.join(timeout=0.5)
                return super().write(text)

        out = ChangingWhileWritten()
        book.customers.export(out, actor=STAFF, format="jsonl")
        writer.join()
        exported = [json.loads(line)["id"] for line in out.getvalue().splitlines()]
        assert len(exported) == len(set(exported))
        assert set(exported) == before
        assert changed  # the change happened, after or during the export
        with pytest.raises(ck.NotFound):
            book.customers.get(last, actor=STAFF)

    def test_c8_export_other_location_ids_are_not_exported(self, book: ck.Book) -> None:
        far = customer(book, "Far Co", "C-1", actor=OTHER_ADMIN)
        out = io.StringIO()
        assert book.customers.export(out, actor=STAFF, format="jsonl", ids=[far.id]) == 0


class TestDuplicatesContract:
    """M1-M6 through the book."""

    @staticmethod
    def two_anns(book: ck.Book, clock: FakeClock) -> tuple[ck.Customer, ck.Contact, ck.Contact]:
        c = customer(book)
        a = book.contacts.add(
            c.id,
            ck.NewContact(first_name="Ann", last_name="Lee", email="ann@example.com"),
            actor=STAFF,
        )
        clock.advance(days=1)
        b = book.contacts.add(
            c.id,
            ck.NewContact(
                first_name="Anne",
                last_name="Lee",
                email="ANN@example.com",
                phone="303 555 0142",
                title="Owner",
            ),
            actor=STAFF,
        )
        return c, a, b

    def test_m1_m2_finds_duplicate_contacts_with_reasons(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        c, a, b = self.two_anns(book, clock)
        book.contacts.add(c.id, ck.NewContact(first_name="Zed", last_name="Ulm"), actor=STAFF)
        report = book.contacts.find_duplicates(actor=STAFF, customer_id=c.id)
        [pair] = report.pairs
        assert {pair.left_id, pair.right_id} == {a.id, b.id}
        assert 0 <= pair.score <= 1
        assert pair.reasons
        [group] = report.groups
        assert set(group.ids) == {a.id, b.id}
        assert book.contacts.find_duplicates(actor=STAFF).pairs == report.pairs

    def test_m6_find_similar_agrees(self, book: ck.Book, clock: FakeClock) -> None:
        c, a, _ = self.two_anns(book, clock)
        similar = book.contacts.find_similar(
            ck.NewContact(first_name="Ann", last_name="Lee", email="ann@EXAMPLE.com"),
            actor=STAFF,
            customer_id=c.id,
        )
        assert a.id in {m.record.id for m in similar}

    def test_m6_find_similar_follows_every_change(self, book: ck.Book) -> None:
        draft = ck.NewCustomer(company_name="Johnson Tires", phone="303 555 0142")

        def similar() -> list[str]:
            return [m.record.id for m in book.customers.find_similar(draft, actor=STAFF)]

        assert similar() == []
        a = customer(book, "Johnson Tires LLC", "C-1", phone="(303) 555-0142")
        assert similar() == [a.id]
        b = customer(book, "Johnson Tire", "C-2", phone="303.555.0142")
        assert set(similar()) == {a.id, b.id}
        book.customers.update(a.id, {"company_name": "Garcia Farms", "phone": ""}, actor=STAFF)
        assert similar() == [b.id]
        c = customer(book, "Johnson Tires Inc", "C-3", phone="303 555 0142")
        book.customers.merge(b.id, [c.id], actor=ADVISOR)
        assert similar() == [b.id]
        book.customers.delete(b.id, actor=MANAGER)
        assert similar() == []
        assert book.customers.find_similar(draft, actor=OTHER_ADMIN) == []

    def test_m6_contacts_find_similar_across_the_location(self, book: ck.Book) -> None:
        first, second = customer(book, "First Co", "C-1"), customer(book, "Second Co", "C-2")
        draft = ck.NewContact(first_name="Ann", last_name="Lee", email="ann@example.com")
        found = book.contacts.find_similar(draft, actor=STAFF)
        assert found == []
        ann = book.contacts.add(second.id, draft, actor=STAFF)
        book.contacts.add(first.id, ck.NewContact(first_name="Zed", last_name="Ulm"), actor=STAFF)
        assert [m.record.id for m in book.contacts.find_similar(draft, actor=STAFF)] == [ann.id]
        book.contacts.delete(ann.id, actor=STAFF)
        assert book.contacts.find_similar(draft, actor=STAFF) == []

    def test_m3_merge_fills_blanks_and_resolves(self, book: ck.Book, clock: FakeClock) -> None:
        c, a, b = self.two_anns(book, clock)
        book.contacts.record_communication(b.id, at=clock.now)
        preview = book.contacts.merge(a.id, [b.id], actor=ADVISOR, dry_run=True)
        assert preview.merge_id is None
        assert book.contacts.get(b.id, actor=STAFF).id == b.id  # nothing written
        result = book.contacts.merge(a.id, [b.id], actor=ADVISOR)
        assert result.merge_id is not None
        main = book.contacts.get(a.id, actor=STAFF)
        assert (main.first_name, main.phone, main.title) == ("Ann", "303 555 0142", "Owner")
        assert main.last_communicated_at == clock.now
        assert result.provenance["phone"] == b.id
        assert book.contacts.get(b.id, actor=STAFF).id == a.id
        assert [k.id for k in book.contacts.list(c.id, actor=STAFF)] == [a.id]
        assert book.contacts.merge(a.id, [b.id], actor=ADVISOR) == result  # idempotent repeat
        actions = [h.action for h in book.history.for_customer(c.id, actor=ADMIN)]
        assert actions.count("merge") == 1

    def test_m4_survivorship_rules_and_provenance(
        self, make_book: MakeBook, clock: FakeClock
    ) -> None:
        base = make_book(clock)
        rules = {
            "phone": ck.Survivorship.MOST_RECENT,
            "title": ck.Survivorship.LONGEST,
            "email": ck.Survivorship.LONGEST,
        }
        book = ck.Book(
            base.store,
            clock=clock,
            config=ck.BookConfig(survivorship=rules),
            hasher=ck.PasswordHasher.for_tests(),
        )
        c = customer(book)
        add = book.contacts.add
        main = add(
            c.id,
            ck.NewContact(
                first_name="Ann",
                last_name="Lee",
                phone="303 555 0100",
                title="CEO",
                email="a@example.com",
            ),
            actor=STAFF,
        )
        clock.advance(days=1)
        newer = add(
            c.id,
            ck.NewContact(
                first_name="Ann",
                last_name="Lee",
                phone="303 555 0199",
                title="Chief Executive",
                email="ann.lee@example.com",
            ),
            actor=STAFF,
        )
        result = book.contacts.merge(main.id, [newer.id], actor=ADVISOR)
        assert (result.main.phone, result.main.title) == ("303 555 0199", "Chief Executive")
        assert result.main.email == "a@example.com"  # K2: a merge only fills a blank email
        assert result.provenance["phone"] == result.provenance["title"] == newer.id
        assert result.provenance["email"] == main.id
        assert result.merge_id is not None
        restored = book.contacts.unmerge(result.merge_id, actor=ADVISOR)
        assert (restored.phone, restored.title) == ("303 555 0100", "CEO")

    def test_m3_emails_and_phones_that_lose_are_kept_as_alternates(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        c = customer(book)
        add = book.contacts.add
        main = add(
            c.id,
            ck.NewContact(first_name="Ann", last_name="Lee", email="ann@example.com"),
            actor=STAFF,
        )
        second = add(
            c.id,
            ck.NewContact(
                first_name="Ann", last_name="Lee", email="ann.lee@work.com", phone="303 555 0142"
            ),
            actor=STAFF,
        )
        third = add(
            c.id,
            ck.NewContact(
                first_name="Ann",
                last_name="Lee",
                email="ANN.LEE@WORK.COM",  # the same address as the second's: kept once
                phone="(720) 555-0199",
            ),
            actor=STAFF,
        )
        result = book.contacts.merge(main.id, [second.id, third.id], actor=ADVISOR)
        merged = book.contacts.get(main.id, actor=STAFF)
        assert merged == result.main
        assert (merged.email, merged.phone) == ("ann@example.com", "303 555 0142")
        assert merged.alternate_emails == ("ann.lee@work.com",)
        assert merged.alternate_phones == ("(720) 555-0199",)
        assert result.provenance["alternate_emails"] == second.id  # where the kept value came from
        assert result.provenance["alternate_phones"] == third.id
        assert result.merge_id is not None
        restored = book.contacts.unmerge(result.merge_id, actor=ADVISOR)
        assert (restored.alternate_emails, restored.alternate_phones) == ((), ())
        assert book.contacts.get(third.id, actor=STAFF).email == "ANN.LEE@WORK.COM"

    def test_m3_customer_alternates_survive_a_second_merge(self, book: ck.Book) -> None:
        main = customer(book, "Johnson Tires", "C-1", phone="303 555 0142")
        dup = customer(book, "Johnson Tires Inc", "C-2", phone="303-555-0199")
        again = customer(book, "Johnson Tire", "C-3", phone="+1 303 555 0142")  # main's number
        first = book.customers.merge(main.id, [dup.id], actor=ADVISOR)
        assert first.main.alternate_phones == ("303-555-0199",)
        second = book.customers.merge(main.id, [again.id], actor=ADVISOR)
        assert second.main.alternate_phones == ("303-555-0199",)  # nothing new: no change
        assert "alternate_phones" not in second.provenance
        assert first.merge_id is not None
        assert second.merge_id is not None
        book.customers.unmerge(second.merge_id, actor=ADVISOR)
        restored = book.customers.unmerge(first.merge_id, actor=ADVISOR)
        assert restored.alternate_phones == ()

    def test_m3_refusals(self, book: ck.Book, clock: FakeClock) -> None:
        c, a, b = self.two_anns(book, clock)
        other = customer(book, "Other Co", "C-2")
        far = book.contacts.add(
            other.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=STAFF
        )
        for main, others in ((a.id, []), (a.id, [a.id]), (a.id, [far.id])):
            with pytest.raises(ck.MergeError):
                book.contacts.merge(main, others, actor=ADVISOR)
        with pytest.raises(ck.PermissionDenied):
            book.contacts.merge(a.id, [b.id], actor=STAFF)
        with pytest.raises(ck.NotFound):
            book.contacts.merge(a.id, ["missing"], actor=ADVISOR)
        third = book.contacts.add(c.id, ck.NewContact(first_name="A", last_name="Lee"), actor=STAFF)
        book.contacts.merge(a.id, [b.id], actor=ADVISOR)
        with pytest.raises(ck.MergeError):
            book.contacts.merge(third.id, [b.id], actor=ADVISOR)  # b already merged into a
        assert book.contacts.get(third.id, actor=STAFF).status is ck.RecordStatus.ACTIVE

    def test_m4_unmerge_restores(self, book: ck.Book, clock: FakeClock) -> None:
        c, a, b = self.two_anns(book, clock)
        before = {k.id: k for k in book.contacts.list(c.id, actor=STAFF)}
        result = book.contacts.merge(a.id, [b.id], actor=ADVISOR)
        assert result.merge_id is not None
        restored = book.contacts.unmerge(result.merge_id, actor=ADVISOR)
        assert (restored.phone, restored.title) == ("", "")
        after = {k.id: k for k in book.contacts.list(c.id, actor=STAFF)}
        assert set(after) == set(before)
        for key, old in before.items():
            assert attrs_fields(after[key]) == attrs_fields(old)
        with pytest.raises(ck.MergeError):
            book.contacts.unmerge(result.merge_id, actor=ADVISOR)

    def test_m4_unmerge_refuses_after_conflicting_change(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        _, a, b = self.two_anns(book, clock)
        result = book.contacts.merge(a.id, [b.id], actor=ADVISOR)
        assert result.merge_id is not None
        book.contacts.update(a.id, {"phone": "720 555 0000"}, actor=STAFF)
        with pytest.raises(ck.MergeError):
            book.contacts.unmerge(result.merge_id, actor=ADVISOR)
        assert book.contacts.get(b.id, actor=STAFF).id == a.id

    def test_m3_customer_merge_moves_contacts_and_unmerge_moves_back(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        main = customer(book, "Johnson Tires", "C-1")
        dup = customer(book, "Johnson Tires Inc", "C-9", phone="303 555 0142", city="Denver")
        k = book.contacts.add(dup.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=STAFF)
        result = book.customers.merge(main.id, [dup.id], actor=ADVISOR)
        merged = book.customers.get(main.id, actor=STAFF)
        assert (merged.customer_number, merged.phone, merged.city) == (
            "C-1",
            "303 555 0142",
            "Denver",
        )
        assert [c.id for c in book.contacts.list(main.id, actor=STAFF)] == [k.id]
        with pytest.raises(ck.NotFound):
            book.customers.get(dup.id, actor=STAFF)
        assert [h.customer.id for h in book.customers.search("johnson", actor=STAFF)] == [main.id]
        customer(book, "Taker", "C-9")  # the merged customer's number is free again
        assert result.merge_id is not None
        with pytest.raises(ck.DuplicateCustomerNumber):
            book.customers.unmerge(result.merge_id, actor=ADVISOR)
        assert [c.id for c in book.contacts.list(main.id, actor=STAFF)] == [k.id]

    def test_m4_customer_unmerge(self, book: ck.Book) -> None:
        main = customer(book, "Johnson Tires", "C-1")
        dup = customer(book, "Johnson Tires Inc", "C-9", phone="303 555 0142")
        k = book.contacts.add(dup.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=STAFF)
        result = book.customers.merge(main.id, [dup.id], actor=ADVISOR)
        assert result.merge_id is not None
        restored = book.customers.unmerge(result.merge_id, actor=ADVISOR)
        assert restored.phone == ""
        assert [c.id for c in book.contacts.list(dup.id, actor=STAFF)] == [k.id]
        assert book.customers.get(dup.id, actor=STAFF).customer_number == "C-9"

    def test_m3_chained_contact_merges_never_point_at_a_tombstone(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        """RELIABILITY d6: merging a main that absorbed others re-points their tombstones.

        Unmerges then go back last in, first out, and point them back.
        """
        c, a, b = self.two_anns(book, clock)
        d = book.contacts.add(c.id, ck.NewContact(first_name="Ann", last_name="Lea"), actor=STAFF)
        first = book.contacts.merge(a.id, [b.id], actor=ADVISOR)
        second = book.contacts.merge(d.id, [a.id], actor=ADVISOR)
        assert (pointer(book, "contacts", b.id), pointer(book, "contacts", a.id)) == (d.id, d.id)
        assert book.contacts.get(b.id, actor=STAFF).id == d.id
        repointed = [
            r.changes["merged_into"]
            for r in book.history.for_customer(c.id, actor=ADMIN)
            if r.action == "repointed"
        ]
        assert repointed == [(a.id, d.id)]
        assert first.merge_id is not None
        assert second.merge_id is not None
        with pytest.raises(ck.MergeError):
            book.contacts.unmerge(first.merge_id, actor=ADVISOR)  # its main is merged now
        book.contacts.unmerge(second.merge_id, actor=ADVISOR)
        assert (pointer(book, "contacts", b.id), pointer(book, "contacts", a.id)) == (a.id, None)
        book.contacts.unmerge(first.merge_id, actor=ADVISOR)
        live = {k.id for k in book.contacts.list(c.id, actor=STAFF)}
        assert live == {a.id, b.id, d.id}

    def test_m3_chained_customer_merges_never_point_at_a_tombstone(self, book: ck.Book) -> None:
        a = customer(book, "Johnson Tires", "C-1")
        b = customer(book, "Johnson Tires Inc", "C-2")
        d = customer(book, "Johnson Tire Co", "C-3")
        first = book.customers.merge(a.id, [b.id], actor=ADVISOR)
        second = book.customers.merge(d.id, [a.id], actor=ADVISOR)
        assert (pointer(book, "customers", b.id), pointer(book, "customers", a.id)) == (
            d.id,
            d.id,
        )
        assert [r.action for r in book.history.for_customer(b.id, actor=ADMIN)][-2:] == [
            "merged",
            "repointed",
        ]
        assert first.merge_id is not None
        assert second.merge_id is not None
        book.customers.unmerge(second.merge_id, actor=ADVISOR)
        assert pointer(book, "customers", b.id) == a.id
        book.customers.unmerge(first.merge_id, actor=ADVISOR)
        assert {c.id for c in book.customers.recent(actor=STAFF)} == {a.id, b.id, d.id}

    def test_m1_customer_duplicates(self, book: ck.Book) -> None:
        a = customer(book, "Johnson Tires LLC", "C-1", phone="303-555-0142", postal_code="80202")
        b = customer(book, "Johnson Tires", "C-2", phone="(303) 555 0142", postal_code="80202")
        customer(book, "Garcia Farms", "C-3", phone="719 555 0199")
        report = book.customers.find_duplicates(actor=STAFF)
        assert [{p.left_id, p.right_id} for p in report.pairs] == [{a.id, b.id}]


def pair_ids(report: ck.DuplicateReport) -> list[set[str]]:
    """The pairs of a report as sets of ids, in report order."""
    return [{pair.left_id, pair.right_id} for pair in report.pairs]


class TestDismissalsContract:
    """M1, M2 with a person's say: pairs dismissed as "not a duplicate"."""

    @staticmethod
    def three_johnsons(book: ck.Book) -> tuple[ck.Customer, ck.Customer, ck.Customer]:
        """Three customers that all match one another."""
        same = {"postal_code": "80202", "city": "Denver"}
        a = customer(book, "Johnson Tires LLC", "J-1", phone="303-555-0142", **same)
        b = customer(book, "Johnson Tires", "J-2", phone="(303) 555 0142", **same)
        c = customer(book, "Johnson Tire Co", "J-3", phone="303.555.0142", **same)
        return a, b, c

    def test_m1_dismissed_contacts_are_not_reported_until_undismissed(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        c, a, b = TestDuplicatesContract.two_anns(book, clock)
        before = book.contacts.find_duplicates(actor=STAFF)
        assert pair_ids(before) == [{a.id, b.id}]
        dismissal = book.contacts.dismiss(b.id, a.id, actor=ADVISOR)
        assert (dismissal.left_id, dismissal.right_id) == tuple(sorted((a.id, b.id)))
        assert (dismissal.kind, dismissal.location_id) == ("contact", "loc-1")
        assert (dismissal.actor_id, dismissal.at) == (ADVISOR.user_id, clock.now)
        for scope in (None, c.id):
            report = book.contacts.find_duplicates(actor=STAFF, customer_id=scope)
            assert (report.pairs, report.groups) == ((), ())
        clock.advance(hours=1)
        assert book.contacts.dismiss(a.id, b.id, actor=ADVISOR) == dismissal  # idempotent
        assert book.contacts.dismissed(actor=STAFF) == [dismissal]
        assert book.contacts.dismissed(actor=STAFF, customer_id=c.id) == [dismissal]
        book.contacts.undismiss(a.id, b.id, actor=ADVISOR)
        assert book.contacts.find_duplicates(actor=STAFF).pairs == before.pairs
        assert book.contacts.dismissed(actor=STAFF) == []
        book.contacts.undismiss(b.id, a.id, actor=ADVISOR)  # nothing to undo: no change
        actions = [h.action for h in book.history.for_customer(c.id, actor=ADMIN)]
        assert (actions.count("dismiss"), actions.count("undismiss")) == (2, 2)

    def test_m1_dismissed_customers_are_not_reported_until_undismissed(self, book: ck.Book) -> None:
        a = customer(book, "Johnson Tires LLC", "C-1", phone="303-555-0142", postal_code="80202")
        b = customer(book, "Johnson Tires", "C-2", phone="(303) 555 0142", postal_code="80202")
        before = book.customers.find_duplicates(actor=STAFF)
        assert pair_ids(before) == [{a.id, b.id}]
        dismissal = book.customers.dismiss(a.id, b.id, actor=ADVISOR)
        report = book.customers.find_duplicates(actor=STAFF)
        assert (report.pairs, report.groups) == ((), ())
        assert book.customers.dismiss(b.id, a.id, actor=MANAGER) == dismissal  # idempotent
        assert book.customers.dismissed(actor=STAFF) == [dismissal]
        book.customers.undismiss(b.id, a.id, actor=ADVISOR)
        assert book.customers.find_duplicates(actor=STAFF).pairs == before.pairs

    def test_m2_a_dismissed_pair_never_shares_a_group(self, book: ck.Book) -> None:
        a, b, c = self.three_johnsons(book)
        before = book.customers.find_duplicates(actor=STAFF)
        assert [set(g.ids) for g in before.groups] == [{a.id, b.id, c.id}]
        book.customers.dismiss(a.id, b.id, actor=ADVISOR)
        after = book.customers.find_duplicates(actor=STAFF)
        kept = [pair for pair in before.pairs if {pair.left_id, pair.right_id} != {a.id, b.id}]
        assert after.pairs == tuple(kept)  # the other pairs, scored as before
        assert len(kept) == 2
        [group] = after.groups
        assert c.id in group.ids
        assert not {a.id, b.id} <= set(group.ids)
        best = max(kept, key=lambda pair: pair.score)
        assert set(group.ids) == {best.left_id, best.right_id}

    def test_m6_find_similar_of_a_stored_record_leaves_dismissed_ones_out(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        a, b, c = self.three_johnsons(book)

        def similar(record: ck.Customer) -> set[str]:
            return {m.record.id for m in book.customers.find_similar(record, actor=STAFF)}

        assert similar(a) == {b.id, c.id}
        book.customers.dismiss(a.id, b.id, actor=ADVISOR)
        assert (similar(a), similar(b)) == ({c.id}, {c.id})
        draft = ck.NewCustomer(company_name="Johnson Tires", phone="303 555 0142")
        found = book.customers.find_similar(draft, actor=STAFF)  # a draft: nothing to leave out
        assert {m.record.id for m in found} == {a.id, b.id, c.id}
        owner, ann, anne = TestDuplicatesContract.two_anns(book, clock)
        book.contacts.dismiss(ann.id, anne.id, actor=ADVISOR)
        for scope in (None, owner.id):
            assert book.contacts.find_similar(ann, actor=STAFF, customer_id=scope) == []
        book.contacts.undismiss(ann.id, anne.id, actor=ADVISOR)
        for scope in (None, owner.id):
            found_contacts = book.contacts.find_similar(ann, actor=STAFF, customer_id=scope)
            assert [m.record.id for m in found_contacts] == [anne.id]

    def test_m3_a_dismissal_follows_a_merge_and_an_unmerge(self, book: ck.Book) -> None:
        """B is not C; B merged into A makes A stand for B, so A is not C; unmerge undoes it."""
        a, b, c = self.three_johnsons(book)
        book.customers.dismiss(b.id, c.id, actor=ADVISOR)
        merge = book.customers.merge(a.id, [b.id], actor=ADVISOR)
        report = book.customers.find_duplicates(actor=STAFF)
        assert (report.pairs, report.groups) == ((), ())
        assert [m.record.id for m in book.customers.find_similar(c, actor=STAFF)] == []
        [dismissal] = book.customers.dismissed(actor=STAFF)
        assert {dismissal.left_id, dismissal.right_id} == {b.id, c.id}  # as dismissed
        assert merge.merge_id is not None
        book.customers.unmerge(merge.merge_id, actor=ADVISOR)
        assert sorted(map(sorted, pair_ids(book.customers.find_duplicates(actor=STAFF)))) == sorted(
            [sorted((a.id, b.id)), sorted((a.id, c.id))]
        )
        book.customers.merge(b.id, [c.id], actor=ADVISOR)  # merged after all: nothing left
        assert pair_ids(book.customers.find_duplicates(actor=STAFF)) == [{a.id, b.id}]
        book.customers.undismiss(b.id, c.id, actor=ADVISOR)  # a merged id can be undone
        assert book.customers.dismissed(actor=STAFF) == []

    def test_m3_a_contact_dismissal_follows_a_merge(self, book: ck.Book, clock: FakeClock) -> None:
        owner, ann, anne = TestDuplicatesContract.two_anns(book, clock)
        third = book.contacts.add(
            owner.id,
            ck.NewContact(first_name="Ann", last_name="Lee", email="ann@example.com"),
            actor=STAFF,
        )
        assert len(book.contacts.find_duplicates(actor=STAFF).pairs) == 3
        book.contacts.dismiss(anne.id, third.id, actor=ADVISOR)
        book.contacts.merge(ann.id, [anne.id], actor=ADVISOR)
        assert book.contacts.find_duplicates(actor=STAFF).pairs == ()

    def test_p1_dismissing_needs_the_right_to_merge(self, book: ck.Book, clock: FakeClock) -> None:
        c, a, b = TestDuplicatesContract.two_anns(book, clock)
        x = customer(book, "Johnson Tires", "C-2")
        with pytest.raises(ck.PermissionDenied):
            book.contacts.dismiss(a.id, b.id, actor=STAFF)
        with pytest.raises(ck.PermissionDenied):
            book.customers.dismiss(c.id, x.id, actor=STAFF)
        book.contacts.dismiss(a.id, b.id, actor=ADVISOR)
        book.customers.dismiss(c.id, x.id, actor=ADVISOR)
        with pytest.raises(ck.PermissionDenied):
            book.contacts.undismiss(a.id, b.id, actor=STAFF)
        with pytest.raises(ck.PermissionDenied):
            book.customers.undismiss(c.id, x.id, actor=STAFF)
        assert len(book.contacts.dismissed(actor=STAFF)) == 1
        assert len(book.customers.dismissed(actor=STAFF)) == 1

    def test_dismiss_refusals(self, book: ck.Book, clock: FakeClock) -> None:
        c, a, b = TestDuplicatesContract.two_anns(book, clock)
        other = customer(book, "Other Co", "C-2")
        far = book.contacts.add(
            other.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=STAFF
        )
        with pytest.raises(ck.DismissError) as caught:
            book.contacts.dismiss(a.id, a.id, actor=ADVISOR)
        assert caught.value.field == "right_id"
        with pytest.raises(ck.DismissError):
            book.customers.dismiss(c.id, c.id, actor=ADVISOR)
        with pytest.raises(ck.DismissError):
            book.contacts.dismiss(a.id, far.id, actor=ADVISOR)  # two customers' contacts
        with pytest.raises(ck.NotFound):
            book.contacts.dismiss(a.id, "missing", actor=ADVISOR)
        with pytest.raises(ck.NotFound):
            book.customers.dismiss(c.id, a.id, actor=ADVISOR)  # a contact's id
        book.contacts.delete(b.id, actor=STAFF)
        with pytest.raises(ck.NotFound):
            book.contacts.dismiss(a.id, b.id, actor=ADVISOR)
        assert book.contacts.dismissed(actor=STAFF) == []
        actions = {h.action for h in book.history.for_customer(c.id, actor=ADMIN)}
        assert "dismiss" not in actions

    def test_p2_other_locations_cannot_dismiss_or_see(self, book: ck.Book) -> None:
        a, b, _ = self.three_johnsons(book)
        theirs = customer(book, "Johnson Tires", "C-1", actor=OTHER_ADMIN, phone="303-555-0142")
        with pytest.raises(ck.PermissionDenied):
            book.customers.dismiss(a.id, b.id, actor=OTHER_ADMIN)
        with pytest.raises(ck.PermissionDenied):
            book.customers.dismiss(a.id, theirs.id, actor=ADMIN)
        with pytest.raises(ck.PermissionDenied):
            book.customers.dismiss(theirs.id, a.id, actor=OTHER_ADMIN)
        book.customers.dismiss(a.id, b.id, actor=ADMIN)
        assert book.customers.dismissed(actor=OTHER_ADMIN) == []
        assert book.contacts.dismissed(actor=OTHER_ADMIN) == []
        with pytest.raises(ck.PermissionDenied):
            book.customers.undismiss(a.id, b.id, actor=OTHER_ADMIN)
        assert len(book.customers.dismissed(actor=ADMIN)) == 1

    def test_p1_fleet_users_cannot_dismiss(self, book: ck.Book) -> None:
        fleet, fleet_user = TestContactsContract.fleet_setup(book)
        add = book.contacts.add
        one = add(fleet.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=fleet_user)
        two = add(fleet.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=fleet_user)
        with pytest.raises(ck.PermissionDenied):
            book.contacts.dismiss(one.id, two.id, actor=fleet_user)
        book.contacts.dismiss(one.id, two.id, actor=ADVISOR)
        assert len(book.contacts.dismissed(actor=fleet_user, customer_id=fleet.id)) == 1

    def test_c5_dismissals_are_in_the_history(self, book: ck.Book, clock: FakeClock) -> None:
        a = customer(book, "Johnson Tires LLC", "C-1")
        b = customer(book, "Johnson Tires", "C-2")
        book.customers.dismiss(a.id, b.id, actor=ADVISOR)
        clock.advance(days=1)
        book.customers.undismiss(a.id, b.id, actor=MANAGER)
        for me, other in ((a, b), (b, a)):
            entries = book.history.for_customer(me.id, actor=ADMIN)[-2:]
            assert [(h.action, h.entity, h.entity_id) for h in entries] == [
                ("dismiss", "customer", me.id),
                ("undismiss", "customer", me.id),
            ]
            assert [dict(h.changes) for h in entries] == [
                {"not_duplicate_of": (None, other.id)},
                {"not_duplicate_of": (other.id, None)},
            ]
            assert [h.actor_id for h in entries] == [ADVISOR.user_id, MANAGER.user_id]
            assert entries[1].at - entries[0].at == timedelta(days=1)
        owner = customer(book, "Lee Farms", "C-3")
        one = book.contacts.add(
            owner.id, ck.NewContact(first_name="A", last_name="Lee"), actor=STAFF
        )
        two = book.contacts.add(
            owner.id, ck.NewContact(first_name="B", last_name="Lee"), actor=STAFF
        )
        book.contacts.dismiss(one.id, two.id, actor=ADVISOR)
        entries = book.history.for_customer(owner.id, actor=ADMIN)[-2:]
        assert {
            (h.action, h.entity, h.entity_id, h.changes["not_duplicate_of"]) for h in entries
        } == {
            ("dismiss", "contact", one.id, (None, two.id)),
            ("dismiss", "contact", two.id, (None, one.id)),
        }

    def test_c6_purging_a_record_erases_its_dismissals(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        a, b, c = self.three_johnsons(book)
        book.customers.dismiss(a.id, b.id, actor=ADVISOR)
        book.customers.dismiss(b.id, c.id, actor=ADVISOR)
        owner, ann, anne = TestDuplicatesContract.two_anns(book, clock)
        book.contacts.dismiss(ann.id, anne.id, actor=ADVISOR)
        book.customers.delete(a.id, actor=MANAGER)  # a tombstone keeps its dismissals
        assert len(book.customers.dismissed(actor=STAFF)) == 2
        book.customers.delete(b.id, actor=MANAGER, delete_history=True)
        assert book.customers.dismissed(actor=STAFF) == []
        book.customers.delete(owner.id, actor=MANAGER, delete_history=True)
        assert book.contacts.dismissed(actor=STAFF) == []

    def test_the_book_matches_with_its_match_config(
        self, make_book: MakeBook, clock: FakeClock
    ) -> None:
        base = make_book(clock)
        # Duplicates so rare a priori that no evidence is enough (shipped m and u, for both kinds).
        strict = ck.MatchConfig(parameters=Parameters(prior=1e-300, m={}, u={}), estimate=False)
        book = ck.Book(
            base.store,
            clock=clock,
            config=ck.BookConfig(match=strict),
            hasher=ck.PasswordHasher.for_tests(),
        )
        a, _, _ = self.three_johnsons(book)
        owner, ann, _ = TestDuplicatesContract.two_anns(book, clock)
        assert base.customers.find_duplicates(actor=STAFF).pairs  # the default finds them
        assert book.customers.find_duplicates(actor=STAFF).pairs == ()
        assert book.customers.find_similar(a, actor=STAFF) == []
        assert base.contacts.find_duplicates(actor=STAFF).pairs
        assert book.contacts.find_duplicates(actor=STAFF).pairs == ()
        for scope in (None, owner.id):
            assert book.contacts.find_similar(ann, actor=STAFF, customer_id=scope) == []
        assert [m.record.id for m in base.customers.find_similar(a, actor=STAFF)]
        with pytest.raises(ck.ValidationError):
            ck.BookConfig(match="strict")  # type: ignore[arg-type]

    @pytest.mark.parametrize("strict_kind", ["contact", "customer"])
    def test_the_book_matches_each_kind_with_its_own_match_config(
        self, make_book: MakeBook, clock: FakeClock, strict_kind: str
    ) -> None:
        """``contact_match`` / ``customer_match`` replace ``match`` for that kind only."""
        base = make_book(clock)
        strict = ck.MatchConfig(parameters=Parameters(prior=1e-300, m={}, u={}), estimate=False)
        config = ck.BookConfig(**{f"{strict_kind}_match": strict})  # type: ignore[arg-type]
        book = ck.Book(base.store, clock=clock, config=config, hasher=ck.PasswordHasher.for_tests())
        a, _, _ = self.three_johnsons(book)
        _, ann, _ = TestDuplicatesContract.two_anns(book, clock)
        found = {
            "customer": bool(book.customers.find_duplicates(actor=STAFF).pairs),
            "contact": bool(book.contacts.find_duplicates(actor=STAFF).pairs),
        }
        assert found == {"customer": strict_kind != "customer", "contact": strict_kind != "contact"}
        similar = {
            "customer": bool(book.customers.find_similar(a, actor=STAFF)),
            "contact": bool(book.contacts.find_similar(ann, actor=STAFF)),
        }
        assert similar == found
        with pytest.raises(ck.ValidationError):
            ck.BookConfig(**{f"{strict_kind}_match": "strict"})  # type: ignore[arg-type]


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
