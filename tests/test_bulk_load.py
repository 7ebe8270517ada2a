"""Bulk load and export: the shortcuts taken for speed give exactly what the general code gives.

``create_many`` of a million customers and the memory backend's export take shortcuts (ASCII
fast paths, a sorted id set read page by page, history written without generic conversions);
each test here compares a shortcut with the general code it stands for, or checks what the
shortcut promises (ids in ascending order, export memory that does not grow with the book).
"""

from __future__ import annotations

import itertools
import threading
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import customerkit as ck
from conftest import word_starts_disagree
from customerkit import synth, validation
from customerkit import text as text_module
from customerkit.backends import memory
from customerkit.backends.sqlalchemy import _rows, unit_of_work
from customerkit.errors import ValidationError
from customerkit.model import Customer, CustomerKind, NewCustomer
from customerkit.services._context import changes_between, record_history
from customerkit.services._created import HISTORY_FIELDS, created_changes
from customerkit.testing import FakeClock
from customerkit.text import fold, number_key, words

NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
ADMIN = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")

# Text with the characters the shortcuts must not get wrong: ASCII punctuation, apostrophes,
# hyphens, controls, line breaks, accents, full-width forms, surrogates and marks.
tricky_text = st.text(
    st.one_of(
        st.sampled_from(
            "aZ09 -'`.,&/()#\t\n\r\x00\x1f\x7f\x85\u00e9\u0301\u2019\u2013\uff21\u00df"
        ),
        st.characters(),
    ),
    max_size=30,
)


def _old_clean_text(value: str, field: str, *, multiline: bool = False) -> str:
    """clean_text as it was before its printable-text shortcut."""
    text = value.strip()
    problem = validation._bad_character(text)
    if problem is None and not multiline and validation._LINE_BREAK.search(text):
        problem = "must be on one line"
    if problem is not None:
        raise ValidationError({field: f"{problem}; remove it and try again"})
    limit = validation.MAX_LENGTH.get(field, validation.DEFAULT_MAX_LENGTH)
    if len(text) > limit:
        raise ValidationError({field: f"is longer than {limit} characters; shorten it"})
    return text


def _outcome(call: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return ("accepted", call(*args, **kwargs))
    except ValidationError as error:
        return ("refused", error.errors)


@given(tricky_text, st.booleans())
def test_clean_text_shortcut_gives_what_the_checks_give(value: str, multiline: bool) -> None:
    """Printable text skips the character checks: same result as running them."""
    for field in ("city", "postal_code"):
        assert _outcome(validation.clean_text, value, field, multiline=multiline) == _outcome(
            _old_clean_text, value, field, multiline=multiline
        )


@given(tricky_text)
def test_sql_rows_shortcuts_agree_with_text_functions(value: str) -> None:
    """Number keys, search words and folded names of the SQL rows: ASCII shortcuts agree."""
    assert number_key(value) == text_module._general_number_key(value)
    assert _rows.words_of(value) == words(value)
    customer = Customer(
        id="c1", location_id="loc-1", kind=CustomerKind.LOCAL, company_name=value,
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    assert _rows.folded_name(customer) == fold(value)


def _customers() -> list[Customer]:
    drafts = [draft for _, draft in synth.customers(300, seed=5, locations=("loc-1",))]
    drafts.append(
        attrs.evolve(drafts[0], username="someone", extra={"po": "17"}, company_type=None, email="")
    )
    return [
        Customer(
            id=f"c{i}",
            location_id="loc-1",
            kind=draft.kind,
            created_at=NOW,
            updated_at=NOW,
            **{
                name: getattr(draft, name)
                for name in attrs.fields_dict(NewCustomer)
                if name not in ("kind", "password")
            },
        )
        for i, draft in enumerate(drafts)
    ]


def test_created_changes_are_what_record_history_stores() -> None:
    """A creation's history without the generic helpers equals what they would write."""
    book = ck.open_book(clock=FakeClock(NOW), hasher=ck.PasswordHasher.for_tests())
    ctx = book.customers._ctx
    for customer in _customers():
        generic = changes_between(None, customer, ("kind", *HISTORY_FIELDS))
        with ctx.store.unit_of_work() as uow:
            stored = record_history(
                ctx,
                uow,
                customer,
                action="create",
                actor=ADMIN,
                changes=generic,
                at=NOW,
            )
        assert dict(created_changes(customer)) == dict(stored.changes)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_create_many_hands_out_ids_in_ascending_order(backend: str, tmp_path: Any) -> None:
    """Ids stay random but ascend in creation order, so SQL indexes by id are appended to."""
    url = None if backend == "memory" else f"sqlite:///{tmp_path / 'b.db'}"
    book = ck.open_book(url, clock=FakeClock(NOW), hasher=ck.PasswordHasher.for_tests())
    drafts = [draft for _, draft in synth.customers(50, seed=3, locations=("loc-1",))]
    created = book.customers.create_many(drafts, actor=ADMIN)
    ids = [customer.id for customer in created]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [c.company_name for c in created] == [d.company_name.strip() for d in drafts]
    book.close()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_load_hands_out_ids_in_ascending_order_across_chunks(backend: str, tmp_path: Any) -> None:
    """A load's ids ascend in row order over all its chunks, and look like any other id."""
    url = None if backend == "memory" else f"sqlite:///{tmp_path / 'b.db'}"
    book = ck.open_book(url, clock=FakeClock(NOW), hasher=ck.PasswordHasher.for_tests())
    drafts = [draft for _, draft in synth.customers(50, seed=3, locations=("loc-1",))]
    assert book.customers.load(iter(drafts), actor=ADMIN, chunk_size=7) == 50
    with book.store.unit_of_work(read_only=True) as uow:
        by_number = {c.customer_number: c.id for c in uow.customers.iter_location("loc-1")}
    ids = [by_number[draft.customer_number.strip()] for draft in drafts]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    book.close()


# -- the memory backend's sorted id set ---------------------------------------------------------

operations = st.lists(
    st.tuples(st.sampled_from(["add", "discard"]), st.text("abcdef", min_size=1, max_size=4)),
    max_size=300,
)


@given(operations, st.integers(1, 4))
def test_sorted_ids_behave_like_a_sorted_set(steps: list[tuple[str, str]], block: int) -> None:
    """Adds and removes in any order; reading gives the set in order, from any key on."""
    ids = memory.SortedIds(block=block)
    model: set[str] = set()
    for action, key in steps:
        if action == "add":
            assert ids.add(key) == (key not in model)
            model.add(key)
        else:
            assert ids.discard(key) == (key in model)
            model.discard(key)
        assert (key in ids) == (key in model)
    assert list(ids) == sorted(model)
    assert len(ids) == len(model)
    for key in ["", "a", "c", "ff", "g"]:
        assert ids.after(key, 3) == sorted(k for k in model if k > key)[:3]
    twin = memory.SortedIds(block=block + 1)
    for key in sorted(model, reverse=True):
        twin.add(key)
    assert twin == ids


def test_sorted_ids_reading_survives_changes_between_pages() -> None:
    """A paused reader never repeats or skips an id that was there all along."""
    ids = memory.SortedIds(block=2)
    for key in "bdfhjl":
        ids.add(key)
    seen = []
    for key in ids:
        seen.append(key)
        if key == "d":
            ids.discard("b")
            ids.discard("f")
            ids.add("e")
            ids.add("a")
    assert seen == ["b", "d", "e", "h", "j", "l"]


def _memory_store_with(count: int) -> memory.MemoryStore:
    store = memory.MemoryStore()
    with store.unit_of_work() as uow:
        for i in range(count):
            uow.customers.add(
                Customer(
                    id=f"{i * 7919 % count:08d}",
                    location_id="loc-1",
                    kind=CustomerKind.LOCAL,
                    company_name="Acme",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        uow.commit()
    return store


def _iteration_peak(store: memory.MemoryStore) -> tuple[int, list[str]]:
    with store.unit_of_work() as uow:
        tracemalloc.start()
        try:
            first = [c.id for c in itertools.islice(uow.customers.iter_location("loc-1"), 3)]
            count = sum(1 for _ in uow.customers.iter_location("loc-1"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == len(store.state.customers)
    return peak, first


def test_memory_export_order_reads_in_constant_memory() -> None:
    """Reading a location in id order allocates a page, not a sorted copy of every id."""
    peak, first = _iteration_peak(_memory_store_with(40_000))
    assert first == ["00000000", "00000001", "00000002"]
    assert peak < 64 * 1024  # a sorted list of 40,000 ids alone takes 320 KiB


def test_memory_rollback_forgets_the_sorted_ids_it_added() -> None:
    """A unit of work left without commit takes its ids out of the sorted set again."""
    store = _memory_store_with(10)
    before = list(store.state.sorted_ids["loc-1"])
    with store.unit_of_work() as uow:
        for location in ("loc-1", "loc-new"):
            uow.customers.add(
                Customer(
                    id="zz",
                    location_id=location,
                    kind=CustomerKind.LOCAL,
                    company_name="Acme",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        uow.customers.remove(before[0])
    assert list(store.state.sorted_ids["loc-1"]) == before
    assert "loc-new" not in store.state.sorted_ids


def test_sqlite_bulk_load_cache_is_for_that_transaction_only(tmp_path: Any) -> None:
    """A bulk load grows its batches and its page cache and lets its sorts use threads; the
    connection gets its settings back."""
    from sqlalchemy import event

    book = ck.open_book(f"sqlite:///{tmp_path / 'b.db'}", hasher=ck.PasswordHasher.for_tests())
    store: Any = book.store
    store.batch_size = 10
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: seen.append(str(args[2])))
    drafts = [draft for _, draft in synth.customers(300, seed=3, locations=("loc-1",))]
    created = book.customers.create_many(drafts, actor=ADMIN)
    assert len(created) == 300
    assert any(statement.startswith("PRAGMA main.cache_size = -") for statement in seen)
    assert any(statement.startswith("PRAGMA temp.cache_size = -") for statement in seen)
    assert f"PRAGMA threads = {unit_of_work.BULK_SORT_THREADS}" in seen
    inserts = [s for s in seen if s.startswith("INSERT INTO customers")]
    assert len(inserts) < 300 * 2 // 10  # batches grew past the store's 10 rows
    with store.unit_of_work() as uow:
        assert uow.connection.exec_driver_sql("PRAGMA cache_size").scalar_one() == -65536
        assert uow.connection.exec_driver_sql("PRAGMA temp.cache_size").scalar_one() == -2000
        assert uow.connection.exec_driver_sql("PRAGMA threads").scalar_one() == 0
    word = drafts[0].company_name.split()[0]
    hits = book.customers.search(word, actor=ADMIN, limit=500)
    assert created[0].id in {hit.customer.id for hit in hits}
    book.close()


def _check_searchable(url: str, drafts: list[NewCustomer]) -> None:
    """The book opens, and its customers are found by search (none when it is empty)."""
    book = ck.open_book(url, hasher=ck.PasswordHasher.for_tests())
    try:
        for draft in drafts[:3]:
            word = max(words(draft.company_name), key=len)
            hits = book.customers.search(word, actor=ADMIN, limit=100)
            assert draft.company_name in {hit.customer.company_name for hit in hits}
        assert book.customers.search("zzzqqq", actor=ADMIN) == []
    finally:
        book.close()


# -- a killed load leaves the book as it was ----------------------------------------------------

_LOADER = """
import sys
import customerkit as ck
from customerkit import synth

url, size, location, method = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
admin = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id=location)
book = ck.open_book(url, hasher=ck.PasswordHasher.for_tests())
drafts = [d for _, d in synth.customers(size, seed=7, locations=(location,))]
print("loading", flush=True)
if method == "load":  # streamed, in chunks, indexes built at commit on an empty book
    book.customers.load(iter(drafts), actor=admin, chunk_size=2000)
else:
    book.customers.create_many(drafts, actor=admin)
book.close()
print("loaded", flush=True)
"""


def _snapshot(path: Any) -> dict[str, Any]:
    """Every row of every table, the schema, and SQLite's integrity verdict, as a reader sees."""
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        found: dict[str, Any] = {
            "schema": connection.execute("SELECT type, name, sql FROM sqlite_master").fetchall(),
            "integrity": connection.execute("PRAGMA integrity_check").fetchall(),
        }
        for name in names:
            rows = connection.execute(f'SELECT * FROM "{name}"').fetchall()
            found[name] = sorted(map(repr, rows))
        return found
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "empty"), [("create_many", False), ("load", False), ("load", True)]
)
def test_a_load_killed_at_any_point_leaves_the_book_as_it_was(
    tmp_path: Any, method: str, empty: bool
) -> None:
    """All or nothing: a load process (``create_many`` or ``load``, into an empty book, whose
    secondary indexes it drops and builds again, or not) killed (SIGKILL, no clean-up of any kind) at random
    points, in its validation, its batches, its staged words or its commit, leaves a book
    that opens and holds exactly what it held before, or, once it committed, all of it."""
    import random
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "book.db"
    url = f"sqlite:///{path}"
    book = ck.open_book(url, clock=FakeClock(NOW), hasher=ck.PasswordHasher.for_tests())
    first = [d for _, d in synth.customers(30, seed=1, locations=("loc-1",))]
    if not empty:
        book.customers.create_many(first, actor=ADMIN)
    book.close()
    before = _snapshot(path)
    size, chooser, killed = 20_000, random.Random(16), 0
    for attempt in range(6):
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _LOADER, url, str(size), f"loc-{attempt + 2}", method],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "loading"
        time.sleep(chooser.uniform(0.0, 2.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        after = _snapshot(path)
        if after == before:
            killed += 1
            _check_searchable(url, first if not empty else [])
            continue
        # It committed before the kill (maybe killed on its way out): it is all there, then.
        assert after["integrity"] == [("ok",)]
        reopened = ck.open_book(url, hasher=ck.PasswordHasher.for_tests())
        with reopened.store.unit_of_work(read_only=True) as uow:
            assert uow.customers.count(f"loc-{attempt + 2}") == size
        reopened.close()
        before = _snapshot(path)
    assert killed >= 2  # the kills did land mid-load (a fast machine may finish some)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_create_many_that_grows_the_table_by_a_large_share_analyses_it(
    backend: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """The first searches after a create_many too small to be a bulk load are planned with
    statistics of the table as it is: it analyses when it adds a large share of the rows."""
    from sqlalchemy import event

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'b.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    book = ck.open_book(url, hasher=ck.PasswordHasher.for_tests())
    store: Any = book.store
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: seen.append(str(args[2])))
    drafts = [draft for _, draft in synth.customers(4620, seed=4, locations=("loc-1",))]

    def analysed(part: list[NewCustomer]) -> bool:
        seen.clear()
        book.customers.create_many(part, actor=ADMIN)
        return any(statement.startswith("ANALYZE") for statement in seen)

    assert not analysed(drafts[:100])  # too few to matter
    assert analysed(drafts[100:3100])  # never analysed: 3,000 rows (no bulk load yet)
    assert not analysed(drafts[3100:3620])  # 520 on top of the 3,100 analysed: a small share
    assert analysed(drafts[3620:4620])  # 1,000 more: a large share
    book.close()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_loaded_customers_are_found_by_find_similar(backend: str, tmp_path: Any) -> None:
    """M6: a location whose matching keys are kept gets the loaded customers' keys too."""
    url = None if backend == "memory" else f"sqlite:///{tmp_path / 'b.db'}"
    book = ck.open_book(url, clock=FakeClock(NOW), hasher=ck.PasswordHasher.for_tests())
    drafts = [draft for _, draft in synth.customers(40, seed=5, locations=("loc-1",))]
    book.customers.create_many(drafts[:20], actor=ADMIN)
    twin = drafts[30]
    before = book.customers.find_similar(twin, actor=ADMIN)  # builds the keys, before the load
    assert twin.customer_number.strip() not in {match.record.customer_number for match in before}
    book.customers.load(iter(drafts[20:]), actor=ADMIN, chunk_size=4)
    found = book.customers.find_similar(twin, actor=ADMIN)
    assert twin.customer_number.strip() in {match.record.customer_number for match in found}
    book.close()


# -- a load builds its rows column by column: the same rows as create_many's -------------------


def _load_drafts() -> list[NewCustomer]:
    """Synthetic drafts and the values the column builders treat apart."""
    drafts = [draft for _, draft in synth.customers(200, seed=8, locations=("loc-1",))]
    base = drafts[0]
    return [
        *drafts,
        attrs.evolve(
            base, username="Some.One", password="long-enough-pass-1", customer_number="U1"
        ),
        attrs.evolve(base, extra={"po": "17", "$tag": "x"}, customer_number="E1"),
        attrs.evolve(base, company_name='Ãlvarez-Søren "Garage" \\ 東京', customer_number="Ü-2"),
        attrs.evolve(base, kind=CustomerKind.FLEET, customer_number="", city="São Paulo"),
        attrs.evolve(base, email="", phone="", fax="", company_type=None, customer_number="B1"),
    ]


def _chunk(drafts: list[NewCustomer], source: ck.SourceLink | None = None) -> Any:
    """A load's chunk of ``drafts``, made as ``loading.load_customers`` makes it."""
    from customerkit.ports import NewCustomers
    from customerkit.services._created import new_changes

    values = [validation.checked_draft(d, _AnyReference()) for d in drafts]
    passwords = [v.pop("password") for v in values]
    return NewCustomers(
        location_id="loc-1",
        actor_id="admin",
        action="create" if source is None else "import",
        source=source,
        at=NOW,
        ids=[f"{i:032x}" for i in range(len(drafts))],
        kinds=[d.kind for d in drafts],
        values=values,
        password_hashes=[None if p is None else f"hash-{p}" for p in passwords],
        changes=[
            new_changes(d.kind, v, password=p is not None)
            for d, v, p in zip(drafts, values, passwords, strict=True)
        ],
    )


class _AnyReference:
    def get_company_type(self, name: str) -> Any:
        return ck.CompanyType(name=name)

    def get_category(self, name: str) -> Any:
        return None


@pytest.mark.parametrize("sourced", [False, True])
def test_load_rows_are_the_rows_of_the_customers_create_would_make(sourced: bool) -> None:
    """Customer, history and word rows built from a chunk's columns equal those built from
    its ``Customer`` and ``ChangeRecord`` objects (what create_many writes)."""
    from sqlalchemy import create_engine

    from customerkit.backends.sqlalchemy import _bulk, _load_rows, schema
    from customerkit.services._created import created_customer

    source = ck.SourceLink(source="dms", external_id="x-1", last_synced_at=NOW, fields=("city",))
    drafts = _load_drafts()
    chunk = _chunk(drafts, source if sourced else None)
    customers, records = chunk.customers(), chunk.records()
    for draft, customer, record, password_hash in zip(
        drafts, customers, records, chunk.password_hashes, strict=True
    ):
        values = validation.checked_draft(draft, _AnyReference())
        made, made_record = created_customer(
            draft, values, customer_id=customer.id, password_hash=password_hash,
            actor=ADMIN, source=chunk.source, now=NOW,
        )  # fmt: skip
        assert (made, made_record) == (customer, record)
        assert dict(created_changes(customer)) | (
            {"password": ("", "(changed)")} if draft.password else {}
        ) == dict(record.changes)
    columns = tuple(column.name for column in schema.customers.columns)
    engine = create_engine("sqlite://")
    with engine.connect() as connection:

        def stored(row: dict[str, Any], names: tuple[str, ...] = columns) -> tuple[Any, ...]:
            return tuple(
                _bulk.db_datetime(connection, value) if isinstance(value, datetime) else value
                for value in _bulk.as_tuple(row, names)
            )

        assert _load_rows.customer_rows(connection, chunk, columns) == [
            stored(_rows.customer_row(customer)) for customer in customers
        ]
        seqs = list(range(7, 7 + len(records)))
        history_columns = tuple(column.name for column in schema.history.columns)
        expected = [
            stored(_rows.history_row(attrs.evolve(record, seq=seq)), history_columns)
            for seq, record in zip(seqs, records, strict=True)
        ]
        assert _load_rows.history_rows(connection, chunk, seqs) == expected
    engine.dispose()


@given(st.dictionaries(st.sampled_from(["company_name", "city", "email"]), tricky_text))
def test_changes_text_is_what_dumps_changes_writes(texts: dict[str, str]) -> None:
    """The history JSON written by hand equals json's, whatever the text holds."""
    from customerkit.backends.sqlalchemy import _load_rows

    changes: dict[str, tuple[Any, Any]] = {name: (None, value) for name, value in texts.items()}
    changes["extra"] = (None, {"$x": "1"}) if "email" in texts else (None, "plain")
    assert _load_rows.changes_text(changes) == _rows.dumps_changes(changes)
    del changes["extra"]
    assert _load_rows.changes_text(changes) == _rows.dumps_changes(changes)


def _stored_by_number(book: ck.Book) -> dict[str, Any]:
    """What a book holds, keyed by customer number instead of its random ids."""
    with book.store.unit_of_work(read_only=True) as uow:
        customers = list(uow.customers.iter_location("loc-1"))
        number = {c.id: c.customer_number or c.company_name for c in customers}
        found: dict[str, Any] = {
            number[c.id]: attrs.evolve(c, id="", password_hash=bool(c.password_hash))
            for c in customers
        }
        history = {
            number[c.id]: [(r.action, r.actor_id, r.at, dict(r.changes)) for r in
                           uow.history.for_customer(c.id)]
            for c in customers
        }  # fmt: skip
        words = None
        if hasattr(uow, "connection"):
            rows = uow.connection.exec_driver_sql(
                "SELECT location_id, field, word, customer_id, name_length, name_starts, starts "
                "FROM customer_words"
            ).all()
            words = sorted((r[0], r[1], r[2], number[r[3]], *r[4:]) for r in rows)
    assert word_starts_disagree(book) == []
    return {"customers": found, "history": history, "words": words}


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgresql"])
def test_load_and_create_many_store_the_same_book(
    backend: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """The same drafts through ``load`` and through ``create_many``: the same customers,
    history, search words and search results (ids aside, which are random)."""
    drafts = [d for d in _load_drafts() if d.customer_number]  # numbers name the customers
    drafts = [attrs.evolve(d, customer_number=f"{d.customer_number}-{i}") for i, d in
              enumerate(drafts)]  # fmt: skip
    books = []
    for name in ("loaded", "created"):
        if backend == "memory":
            url = None
        elif backend == "sqlite":
            url = f"sqlite:///{tmp_path / name}.db"
        else:
            from customerkit.testing.postgres import create_database

            url = create_database(request.getfixturevalue("postgres_server_url"))
        book = ck.open_book(url, clock=FakeClock(NOW), hasher=ck.PasswordHasher.for_tests())
        if name == "loaded":
            book.customers.load(iter(drafts), actor=ADMIN, chunk_size=64)
        else:
            book.customers.create_many(drafts, actor=ADMIN)
        books.append(book)
    loaded, created = (_stored_by_number(book) for book in books)
    assert loaded == created
    assert len(loaded["customers"]) == len(drafts)
    numbers = [max(words(d.customer_number), key=len) for d in (drafts[3], drafts[-2])]
    for text in ("garage", "alvarez", "sao", "motor", "corp co", "gar", *numbers):
        # All hits (ties are ordered by id, and ids are random): the same, with the same scores.
        hits = [
            sorted((h.customer.customer_number, h.score, h.field) for h in book.customers.search(
                text, actor=ADMIN, limit=len(drafts)))
            for book in books
        ]  # fmt: skip
        assert hits[0] == hits[1]
    for book in books:
        book.close()


_DEFINITIONS = {
    "sqlite": "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name",
    "postgresql": (
        "SELECT 'index', indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = current_schema() UNION ALL "
        "SELECT 'key', conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = CAST(current_schema() AS regnamespace) ORDER BY 1, 2"
    ),
}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "postgresql, partitioned"])
def test_a_load_into_an_empty_book_leaves_its_keys_and_indexes_as_they_were(
    backend: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """A load into an empty book drops indexes and keys and builds them after its rows: every
    one is back, as defined (on a book partitioned by location too), and the vocabulary holds
    each word once, the word a purged customer left there (the vocabulary keeps its words)
    included."""
    from sqlalchemy import text

    from customerkit.backends.sqlalchemy import SqlStore

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'b.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    partitions = 4 if backend.endswith("partitioned") else 0
    store: Any = SqlStore(url, partitions=partitions)
    book = ck.Book(store, hasher=ck.PasswordHasher.for_tests())
    with store.engine.begin() as connection:
        before = connection.execute(text(_DEFINITIONS[store.engine.dialect.name])).all()
        connection.execute(text("INSERT INTO search_vocab (word) VALUES ('garage')"))
        if backend == "sqlite":  # its trigram index, kept by the library, not by a trigger
            fill = "INSERT INTO search_vocab_fts (rowid, word) SELECT id, word FROM search_vocab"
            connection.execute(text(fill))
    drafts = [draft for _, draft in synth.customers(300, seed=6, locations=("loc-1",))]
    drafts[0] = attrs.evolve(drafts[0], company_name="Garage Est")
    assert book.customers.load(iter(drafts), actor=ADMIN, chunk_size=100) == 300
    with store.engine.connect() as connection:
        assert connection.execute(text(_DEFINITIONS[store.engine.dialect.name])).all() == before
        counted = "SELECT word, count(*) FROM search_vocab GROUP BY word HAVING count(*) > 1"
        assert connection.execute(text(counted)).all() == []
    assert [hit.customer.company_name for hit in book.customers.search("arage e", actor=ADMIN)] \
        == ["Garage Est"]  # fmt: skip
    book.close()


def test_a_postgresql_load_leaves_its_pages_all_visible(postgres_url: str) -> None:
    """Index-only scans of the first searches after a load read no table rows: the load's
    pages are VACUUMed (marked all-visible) once it committed, not whenever autovacuum comes."""
    from sqlalchemy import text

    book = ck.open_book(postgres_url, hasher=ck.PasswordHasher.for_tests())
    drafts = [draft for _, draft in synth.customers(2000, seed=5, locations=("loc-1",))]
    assert book.customers.load(drafts, actor=ADMIN) == 2000
    store: Any = book.store
    with store.engine.connect() as connection:
        pages = connection.execute(
            text(
                "SELECT relname, relpages, relallvisible FROM pg_class"
                " WHERE relname IN ('customers', 'customer_words')"
            )
        ).all()
    assert len(pages) == 2
    for name, total, visible in pages:
        assert total > 0, name
        assert visible == total, name
    book.close()


@pytest.mark.postgres
def test_a_postgresql_load_returns_when_another_session_blocks_its_vacuum(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The VACUUM after the commit is an optimisation: a session that takes a lock it conflicts
    with (another VACUUM, ANALYZE or ALTER) between the load's commit and its VACUUM makes it
    give up after its lock timeout, logged, rather than keep the committed load from returning.
    The other session queues for the lock while the load still holds it (its ANALYZE), so it
    is granted the lock at the commit, ahead of the VACUUM."""
    from sqlalchemy import create_engine, event

    from customerkit.backends.sqlalchemy import unit_of_work

    monkeypatch.setattr(unit_of_work, "VACUUM_LOCK_TIMEOUT", "200ms")
    book = ck.open_book(postgres_url, hasher=ck.PasswordHasher.for_tests())
    store: Any = book.store
    other = create_engine(postgres_url)
    holding = other.connect()
    watching = other.connect()
    holder_pid = holding.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    holding.commit()
    queued = threading.Thread(
        target=lambda: holding.exec_driver_sql("LOCK TABLE history IN SHARE UPDATE EXCLUSIVE MODE")
    )

    def queue_for_the_lock(_: Any) -> None:
        queued.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE pid = %(pid)s AND NOT granted"
        while not watching.exec_driver_sql(waiting, {"pid": holder_pid}).scalar_one():
            watching.rollback()
        watching.rollback()

    drafts = [draft for _, draft in synth.customers(300, seed=6, locations=("loc-1",))]
    outcome: list[object] = []
    loading = threading.Thread(
        target=lambda: outcome.append(book.customers.load(drafts, actor=ADMIN))
    )
    event.listen(store.engine, "commit", queue_for_the_lock, once=True)
    try:
        with caplog.at_level("WARNING", logger="customerkit"):
            loading.start()
            loading.join(timeout=120)
            assert not loading.is_alive(), "the committed load waited for its VACUUM"
        queued.join(timeout=120)
        assert outcome == [300]
        assert "VACUUM after a bulk load failed" in caplog.text
        holding.rollback()
        count = watching.exec_driver_sql("SELECT count(*) FROM customers").scalar_one()
        assert count == 300
    finally:
        holding.close()
        watching.close()
        other.dispose()
        book.close()


def test_a_refused_username_names_the_username_refused(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """The error carries the username the caller gave, so a bulk call can find its row."""
    book = make_book(FakeClock())
    book.customers.create(
        ck.NewCustomer(company_name="A", customer_number="A-1", username="bob"), actor=ADMIN
    )
    with pytest.raises(ck.DuplicateUsername) as one:
        book.customers.create(
            ck.NewCustomer(company_name="B", customer_number="B-1", username="BOB"), actor=ADMIN
        )
    assert one.value.username == "BOB"
    drafts = [
        ck.NewCustomer(company_name=f"C{at}", customer_number=f"C-{at}", username=f"c{at}")
        for at in range(7)
    ]
    drafts[5] = attrs.evolve(drafts[5], username="Bob")
    with pytest.raises(ck.DuplicateUsername) as loaded:
        book.customers.load(drafts, actor=ADMIN, chunk_size=3)
    assert loaded.value.username == "Bob"
    with pytest.raises(ck.DuplicateUsername) as many:
        book.customers.create_many(drafts, actor=ADMIN)
    assert many.value.username == "Bob"
