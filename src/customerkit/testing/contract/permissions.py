"""Permissions: roles, locations and fleets (rules P1, P2)."""

from __future__ import annotations

import pytest

import customerkit as ck
from customerkit.testing import FakeClock
from customerkit.testing.contract._actors import ADMIN, OTHER_ADMIN
from customerkit.testing.contract._base import ContractBase, customer


class PermissionsContract(ContractBase):
    """Rules P1, P2: deny by default, tenancy by location and fleet."""

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

    def test_p1_policy_is_replaceable(self, book: ck.Book, clock: FakeClock) -> None:
        class DenyAll:
            def authorize(self, actor: ck.Actor, action: ck.Action, target: ck.Target) -> None:
                raise ck.PermissionDenied("closed")

        book_denied = ck.Book(
            book.store, clock=clock, policy=DenyAll(), hasher=ck.PasswordHasher.for_tests()
        )
        with pytest.raises(ck.PermissionDenied):
            customer(book_denied)
