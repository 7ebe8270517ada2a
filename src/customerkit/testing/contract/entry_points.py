"""Every entry point refuses a malformed actor or argument before it reads anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import customerkit as ck
from customerkit.testing.contract._actors import ADMIN
from customerkit.testing.contract._base import ContractBase, customer

BAD_ACTORS = {
    "none": None,
    "text": "admin",
    "no-location": ck.Actor(user_id="u1", role=ck.Role.DEALER_ADMIN, location_id=None),  # type: ignore[arg-type]
    "blank-user": ck.Actor(user_id=" ", role=ck.Role.DEALER_ADMIN, location_id="loc-1"),
    "role-as-text": ck.Actor(user_id="u1", role="DEALER_ADMIN", location_id="loc-1"),  # type: ignore[arg-type]
}


class EntryPointsContract(ContractBase):
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
        """Rule U3: a username or password that is not text is ``ValidationError``, not a crash."""
        customer(book, username="jtires", password="secret-pw")
        with pytest.raises(ck.ValidationError):
            book.customers.verify_password(username, password)
