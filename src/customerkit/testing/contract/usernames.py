"""Usernames: canonical keys, reserved names, immutability (rules U1-U4)."""

from __future__ import annotations

import pytest

import customerkit as ck
from customerkit.testing.contract._actors import ADMIN, STAFF
from customerkit.testing.contract._base import ContractBase, customer


class UsernamesContract(ContractBase):
    """Rules U1-U3 through the book."""

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
