"""Duplicates and merges of contacts and customers (rules M1-M6)."""

from __future__ import annotations

from typing import Any

import pytest

import customerkit as ck
from customerkit.testing import FakeClock
from customerkit.testing.contract._actors import ADMIN, ADVISOR, MANAGER, OTHER_ADMIN, STAFF
from customerkit.testing.contract._base import (
    ContractBase,
    add_contact,
    attrs_fields,
    customer,
    pointer,
)


class DuplicatesContract(ContractBase):
    """Rules M1-M6 through the book."""

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

    def test_m4_survivorship_rules_and_provenance(self, book: ck.Book, clock: FakeClock) -> None:
        base = book
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
        ann: dict[str, Any] = {"first_name": "Ann", "last_name": "Lee"}
        main = add_contact(
            book, c.id, **ann, phone="303 555 0100", title="CEO", email="a@example.com"
        )
        clock.advance(days=1)
        newer = add_contact(
            book,
            c.id,
            **ann,
            phone="303 555 0199",
            title="Chief Executive",
            email="ann.lee@example.com",
        )
        result = book.contacts.merge(main.id, [newer.id], actor=ADVISOR)
        assert (result.main.phone, result.main.title) == ("303 555 0199", "Chief Executive")
        assert result.main.email == "a@example.com"  # Rule K2: a merge only fills a blank email
        assert result.provenance["phone"] == result.provenance["title"] == newer.id
        assert result.provenance["email"] == main.id
        assert result.merge_id is not None
        restored = book.contacts.unmerge(result.merge_id, actor=ADVISOR)
        assert (restored.phone, restored.title) == ("303 555 0100", "CEO")

    def test_m3_emails_and_phones_that_lose_are_kept_as_alternates(
        self, book: ck.Book, clock: FakeClock
    ) -> None:
        c = customer(book)
        ann: dict[str, Any] = {"first_name": "Ann", "last_name": "Lee"}
        main = add_contact(book, c.id, **ann, email="ann@example.com")
        second = add_contact(book, c.id, **ann, email="ann.lee@work.com", phone="303 555 0142")
        # The same address as the second's: kept once.
        third = add_contact(book, c.id, **ann, email="ANN.LEE@WORK.COM", phone="(720) 555-0199")
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
