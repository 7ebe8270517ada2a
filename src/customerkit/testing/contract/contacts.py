"""Contacts, recipients and unused contacts (rules K1-K5)."""

from __future__ import annotations

import pytest

import customerkit as ck
from customerkit.testing import FakeClock
from customerkit.testing.contract._actors import ADMIN, ADVISOR, OTHER_ADMIN, STAFF
from customerkit.testing.contract._base import ContractBase, add_contact, customer


class ContactsContract(ContractBase):
    """Rules K1-K5."""

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

        def add(actor: ck.Actor = STAFF, **fields: str) -> ck.Contact:
            clock.advance(seconds=1)  # creation order decides which duplicate email wins
            return add_contact(book, fleet.id, actor=actor, **fields)

        a = add(first_name="A", last_name="A", email="a@example.com")
        add(first_name="No", last_name="Mail")
        add(first_name="Dup", last_name="A", email="A@EXAMPLE.com")
        one = add(first_name="O", last_name="T", email="o@example.com", one_time_case_id="case-9")
        gone = add(fleet_actor, first_name="G", last_name="G", email="g@example.com")
        book.contacts.delete(gone.id, actor=fleet_actor)  # Rule K1: the fleet added it
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
