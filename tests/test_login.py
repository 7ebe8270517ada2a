"""Passwords are hashed and checked outside the write lock; a login's time tells nothing.

argon2 takes a tenth of a second on purpose. Run inside a write transaction it held SQLite's
one write lock that long: a loop of wrong-password logins starved every other writer, and a
``create_many`` with passwords blocked the book for seconds. And a login for an unknown username
returned at once, while a wrong password for a known one took the tenth of a second: the
time told which usernames exist. No timing is asserted here: a hasher double fails the test
when it runs while a write unit of work is open (and, on SQLite, while the file's write lock
is taken), and counts the verifies an unknown username costs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import customerkit as ck
from customerkit.testing import FakeClock

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")


class WriteWatch:
    """Counts the write units of work open on a store (wraps its ``unit_of_work``)."""

    def __init__(self, store: Any) -> None:
        self.open = 0
        self.sqlite_file: str | None = None
        engine = getattr(store, "engine", None)
        if engine is not None and engine.dialect.name == "sqlite":
            self.sqlite_file = engine.url.database
        original = store.unit_of_work

        @contextmanager
        def watched(*, read_only: bool = False) -> Iterator[Any]:
            with original(read_only=read_only) as uow:
                self.open += not read_only
                try:
                    yield uow
                finally:
                    self.open -= not read_only

        store.unit_of_work = watched

    def write_lock_free(self) -> bool:
        """On SQLite: whether another connection could take the write lock right now."""
        if self.sqlite_file is None:
            return True
        probe = sqlite3.connect(self.sqlite_file, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()


class WatchingHasher(ck.PasswordHasher):
    """The test hasher, recording every call and whether a write was open during it."""

    def __init__(self, *, rehash: bool = False) -> None:
        inner = ck.PasswordHasher.for_tests()
        super().__init__(inner.parameters, allow_insecure=True)
        self.watch: WriteWatch | None = None
        self.calls: list[str] = []
        self.under_lock: list[str] = []
        self.rehash = rehash

    def _note(self, name: str) -> None:
        self.calls.append(name)
        watch = self.watch
        if watch is not None and (watch.open or not watch.write_lock_free()):
            self.under_lock.append(name)

    def hash(self, password: str, *, field: str = "password") -> str:
        self._note("hash")
        return super().hash(password, field=field)

    def verify(self, hash: str, password: str) -> bool:  # noqa: A002 - the argon2 vocabulary
        self._note("verify")
        return super().verify(hash, password)

    def needs_rehash(self, hash: str) -> bool:  # noqa: A002 - the argon2 vocabulary
        return self.rehash or super().needs_rehash(hash)


@pytest.fixture
def watched(
    make_book: Callable[..., ck.Book], monkeypatch: pytest.MonkeyPatch
) -> Callable[[WatchingHasher], ck.Book]:
    """A book whose hasher watches the store's write units of work."""

    def make(hasher: WatchingHasher) -> ck.Book:
        book = make_book(FakeClock())
        book.customers._ctx.hasher = hasher
        hasher.watch = WriteWatch(book.store)
        return book

    return make


def test_passwords_are_hashed_and_verified_outside_any_write(
    watched: Callable[[WatchingHasher], ck.Book],
) -> None:
    """Rule U3: create, create_many, password changes, logins and rehashes never hash in a write."""
    hasher = WatchingHasher()
    book = watched(hasher)
    one = book.customers.create(
        ck.NewCustomer(
            company_name="One", customer_number="C-1", username="one", password="secret-pw-1"
        ),
        actor=ADMIN,
    )
    book.customers.create_many(
        [
            ck.NewCustomer(
                company_name=f"Many {i}",
                customer_number=f"M-{i}",
                username=f"m{i}",
                password="secret-x9",
            )
            for i in range(3)
        ],
        actor=ADMIN,
    )
    book.customers.update(one.id, {"password": "secret-pw-2"}, actor=ADMIN)
    assert book.customers.verify_password("one", "secret-pw-2") is not None
    assert book.customers.verify_password("one", "wrong") is None
    assert book.customers.verify_password("nobody", "secret-pw-2") is None
    hasher.rehash = True  # the parameters rose: the next good login stores a new hash
    rehashed = book.customers.verify_password("m1", "secret-x9")
    assert rehashed is not None
    assert rehashed.version == 2
    assert hasher.calls.count("hash") == 6
    assert hasher.calls.count("verify") == 4
    assert hasher.under_lock == []


@pytest.mark.parametrize("username", ["nobody", "admin", "two words", "deleted", "no-password"])
def test_a_login_that_cannot_succeed_still_costs_one_verify(
    watched: Callable[[WatchingHasher], ck.Book], username: str
) -> None:
    """Rule U3: an unknown, invalid or deleted username, or one without a password, is checked
    against a dummy hash: one verify, as for a wrong password of a known username."""
    hasher = WatchingHasher()
    book = watched(hasher)
    gone = book.customers.create(
        ck.NewCustomer(
            company_name="Gone", customer_number="C-1", username="deleted", password="secret-pw"
        ),
        actor=ADMIN,
    )
    book.customers.delete(gone.id, actor=ADMIN)
    book.customers.create(
        ck.NewCustomer(company_name="Open", customer_number="C-2", username="no-password"),
        actor=ADMIN,
    )
    hasher.calls.clear()
    assert book.customers.verify_password(username, "secret-pw") is None
    assert hasher.calls == ["verify"]
    assert hasher.under_lock == []
