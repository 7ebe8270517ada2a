"""Dismissed pairs: recorded, hidden from duplicates, removed with their records."""

from __future__ import annotations

from datetime import timedelta

import pytest

import customerkit as ck
from customerkit.matching import Parameters
from customerkit.testing import FakeClock
from customerkit.testing.contract._actors import ADMIN, ADVISOR, MANAGER, OTHER_ADMIN, STAFF
from customerkit.testing.contract._base import ContractBase, customer, pair_ids
from customerkit.testing.contract.contacts import ContactsContract
from customerkit.testing.contract.duplicates import DuplicatesContract


class DismissalsContract(ContractBase):
    """Rules M1, M2 with a person's say: pairs dismissed as "not a duplicate"."""

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
        c, a, b = DuplicatesContract.two_anns(book, clock)
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
        owner, ann, anne = DuplicatesContract.two_anns(book, clock)
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
        owner, ann, anne = DuplicatesContract.two_anns(book, clock)
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
        c, a, b = DuplicatesContract.two_anns(book, clock)
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
        c, a, b = DuplicatesContract.two_anns(book, clock)
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
        fleet, fleet_user = ContactsContract.fleet_setup(book)
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
        owner, ann, anne = DuplicatesContract.two_anns(book, clock)
        book.contacts.dismiss(ann.id, anne.id, actor=ADVISOR)
        book.customers.delete(a.id, actor=MANAGER)  # a tombstone keeps its dismissals
        assert len(book.customers.dismissed(actor=STAFF)) == 2
        book.customers.delete(b.id, actor=MANAGER, delete_history=True)
        assert book.customers.dismissed(actor=STAFF) == []
        book.customers.delete(owner.id, actor=MANAGER, delete_history=True)
        assert book.contacts.dismissed(actor=STAFF) == []

    def test_the_book_matches_with_its_match_config(self, book: ck.Book, clock: FakeClock) -> None:
        base = book
        # Duplicates so rare a priori that no evidence is enough (shipped m and u, for both kinds).
        strict = ck.MatchConfig(parameters=Parameters(prior=1e-300, m={}, u={}), estimate=False)
        book = ck.Book(
            base.store,
            clock=clock,
            config=ck.BookConfig(match=strict),
            hasher=ck.PasswordHasher.for_tests(),
        )
        a, _, _ = self.three_johnsons(book)
        owner, ann, _ = DuplicatesContract.two_anns(book, clock)
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
        self, book: ck.Book, clock: FakeClock, strict_kind: str
    ) -> None:
        """``contact_match`` / ``customer_match`` replace ``match`` for that kind only."""
        base = book
        strict = ck.MatchConfig(parameters=Parameters(prior=1e-300, m={}, u={}), estimate=False)
        config = ck.BookConfig(**{f"{strict_kind}_match": strict})  # type: ignore[arg-type]
        book = ck.Book(base.store, clock=clock, config=config, hasher=ck.PasswordHasher.for_tests())
        a, _, _ = self.three_johnsons(book)
        _, ann, _ = DuplicatesContract.two_anns(book, clock)
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
