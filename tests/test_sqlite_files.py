"""Opening SQLite files: no write lock to open or read a book; other files are not taken over.

Opening used to begin a write transaction to look at the schema: while another process held
the write lock longer than the 5 s busy timeout, ``open_book`` (and so every CLI command, even
``search``) failed with the driver's "database is locked". And a file of another application
got the book's tables added and was switched to WAL mode without a word.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import customerkit as ck
from customerkit.testing import FakeClock

ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
HASHER = ck.PasswordHasher.for_tests()


def open_book(path: Path, **options: bool) -> ck.Book:
    return ck.open_book(f"sqlite:///{path}", clock=FakeClock(), hasher=HASHER, **options)


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another process's writer, holding the file's write lock for the block."""
    writer = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("CREATE TABLE IF NOT EXISTS scratch (x)")  # a write in progress
        yield
        writer.execute("ROLLBACK")
    finally:
        writer.close()


def tables_and_journal(path: Path) -> tuple[list[str], str]:
    with sqlite3.connect(path) as probe:
        names = [r[0] for r in probe.execute("SELECT name FROM sqlite_master ORDER BY name")]
        return names, probe.execute("PRAGMA journal_mode").fetchone()[0]


def test_a_book_opens_and_reads_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    """Opening an existing book, and every read, works beside a writer holding the lock."""
    path = tmp_path / "book.db"
    book = open_book(path)
    customer = book.customers.create(
        ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1"), actor=ADMIN
    )
    book.close()
    with write_lock_held(path):
        reopened = open_book(path)
        try:
            assert reopened.customers.get(customer.id, actor=ADMIN) == customer
            hits = reopened.customers.search("johnson", actor=ADMIN)
            assert [h.customer.id for h in hits] == [customer.id]
            assert [c.id for c in reopened.customers.recent(actor=ADMIN)] == [customer.id]
            with pytest.raises(ck.BookBusy):  # a write still waits its turn, then says so
                reopened.customers.update(customer.id, {"city": "Denver"}, actor=ADMIN)
        finally:
            reopened.close()


def test_another_applications_file_is_refused_untouched(tmp_path: Path) -> None:
    """A non-empty SQLite file that is not a book is refused, its tables and journal mode
    unchanged; with ``share=True`` the book's tables are added beside the application's."""
    path = tmp_path / "erp.db"
    with sqlite3.connect(path) as erp:
        erp.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT)")
        erp.execute("INSERT INTO invoices (total) VALUES ('12.50')")
    before = tables_and_journal(path)
    with pytest.raises(ck.SchemaError, match="share=True"):
        open_book(path)
    assert tables_and_journal(path) == before == (["invoices"], "delete")
    shared = open_book(path, share=True)
    try:
        shared.customers.create(
            ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1"), actor=ADMIN
        )
    finally:
        shared.close()
    names, journal = tables_and_journal(path)
    assert {"invoices", "customers", "schema_version"} <= set(names)
    assert journal == "wal"
    with sqlite3.connect(path) as erp:
        assert erp.execute("SELECT total FROM invoices").fetchall() == [("12.50",)]
    open_book(path).close()  # a book now: no share needed any more


@pytest.mark.parametrize("content", [b"", None])
def test_an_empty_file_becomes_a_book(tmp_path: Path, content: bytes | None) -> None:
    """A new or empty file is made a book, in WAL mode."""
    path = tmp_path / "new.db"
    if content is not None:
        path.write_bytes(content)
    open_book(path).close()
    names, journal = tables_and_journal(path)
    assert "schema_version" in names
    assert journal == "wal"


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    """A damaged file, or one that is not SQLite, gives ``StorageError``, not the driver's."""
    path = tmp_path / "notes.db"
    path.write_bytes(b"Dear Ann Lee, your invoice ... " * 200)
    with pytest.raises(ck.StorageError, match="not a database") as caught:
        open_book(path)
    assert type(caught.value.__cause__).__module__.startswith("sqlalchemy")


def test_a_book_missing_a_table_gives_storage_errors(tmp_path: Path) -> None:
    """A book whose table was dropped behind its back: calls give ``StorageError`` quoting
    nothing stored, never the driver's error."""
    path = tmp_path / "book.db"
    book = open_book(path)
    customer = book.customers.create(
        ck.NewCustomer(company_name="Johnson Tires", customer_number="C-1"), actor=ADMIN
    )
    with sqlite3.connect(path) as other:
        other.execute("DROP TABLE contacts")
    try:
        with pytest.raises(ck.StorageError) as caught:
            book.contacts.add(
                customer.id,
                ck.NewContact(first_name="Ann", last_name="Lee", email="ann@example.com"),
                actor=ADMIN,
            )
        assert type(caught.value) is ck.StorageError
        assert "ann@example.com" not in str(caught.value)
        assert "ann@example.com" not in str(caught.value.__cause__)
    finally:
        book.close()
