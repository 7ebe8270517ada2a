"""Customers: required fields, numbers, history, deletion and reference data (rules C1-C8)."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

import customerkit as ck
from customerkit.ports import UnitOfWork
from customerkit.testing import FakeClock
from customerkit.testing.contract._actors import ADMIN, ADVISOR, MANAGER, OTHER_ADMIN, STAFF
from customerkit.testing.contract._base import ContractBase, customer


class CustomersContract(ContractBase):
    """Rules C1-C8."""

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
        """Rules C6, M3: a purge of a customer that absorbed others by merge erases all of it.

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
