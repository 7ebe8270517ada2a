"""``customerkit demo``: synthetic dealer data in a book of its own, searched and matched."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

import customerkit as ck
from customerkit import synth
from customerkit.cli._app import DEMO_DB, DEMO_MARK, DEMO_USER, _Failure
from customerkit.cli._books import _admin, _customer_count, _open, _shown, _sqlite_file, book_url
from customerkit.cli._output import _note, _out, _progress


def demo(
    size: Annotated[int, typer.Option(help="How many customers to generate.", min=1)] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 7,
    db: Annotated[
        str, typer.Option("--db", help="The demo's book (made anew on every run).")
    ] = DEMO_DB,
) -> None:
    """Load synthetic dealer data into a demo book, then search it and find duplicates.

    The demo writes to its own book (customerkit-demo.db) and rebuilds it on every run; it
    refuses a book it did not make.
    """
    url = _prepare_demo_book(db)
    locations = synth.DEFAULT_LOCATIONS
    with _open(url, create=True) as book:
        started = time.perf_counter()
        _refuse_non_empty(book, db, locations)
        book.reference.add_category(DEMO_MARK, actor=_admin(locations[0], DEMO_USER))
        drafts: dict[str, list[ck.NewCustomer]] = {loc: [] for loc in locations}
        for location, draft in synth.customers(size, seed=seed, locations=locations):
            drafts[location].append(draft)
        created: dict[str, list[ck.Customer]] = {}
        for location in locations:
            with _progress(f"customers {location}") as report:
                created[location] = book.customers.create_many(
                    drafts[location], actor=_admin(location, DEMO_USER), progress=report
                )
        admin = _admin(locations[0], DEMO_USER)
        first = created[locations[0]]
        contact_count = _add_demo_contacts(book, admin, [c.id for c in first], seed)
        loaded = time.perf_counter() - started
        out = _out()
        if first:
            out.print(_search_table(book, admin, first[0]))
        out.print(_duplicates_table(book, admin))
        summary = Table(title="Book")
        for column in ("location", "customers", "created in the last 30 days"):
            summary.add_column(column)
        for location in locations:
            recent = book.customers.recent(actor=_admin(location, DEMO_USER))
            summary.add_row(location, str(len(created[location])), str(len(recent)))
        out.print(summary)
    _note(
        f"Loaded {size} customers and {contact_count} contacts in {loaded:.1f} s into {_shown(db)}."
    )
    if _sqlite_file(url) is not None:
        _note(f'Try: customerkit search "tires aug" --db {db}')


def _prepare_demo_book(db: str) -> str:
    """The demo book's URL, after deleting the demo's previous book file (and only that)."""
    url = book_url(db)
    path = _sqlite_file(url)
    if path is None or not path.exists():
        return url
    if not _is_demo_file(path):
        raise _Failure(
            f"{str(path)!r} holds a book the demo did not make (or that others changed since); "
            "the demo never replaces it. "
            "Leave out --db to use the demo's own book, or name a new file"
        )
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        file.unlink(missing_ok=True)
    return url


def _is_demo_file(path: Path) -> bool:
    """Whether the SQLite file is a book the demo made and nobody else changed (read only)."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        marked = connection.execute("SELECT 1 FROM categories WHERE name = ?", (DEMO_MARK,))
        changed = connection.execute(
            "SELECT 1 FROM history WHERE actor_id IS NOT ? LIMIT 1", (DEMO_USER,)
        )
        return marked.fetchone() is not None and changed.fetchone() is None
    except sqlite3.Error:  # not a database, or not a customerkit book
        return False
    finally:
        connection.close()


def _refuse_non_empty(book: ck.Book, db: str, locations: Sequence[str]) -> None:
    """The demo loads only into an empty book (a server database it cannot replace)."""
    if any(_customer_count(book, location) for location in locations):
        raise _Failure(f"{_shown(db)} already holds customers; the demo needs an empty book")


def _add_demo_contacts(book: ck.Book, admin: ck.Actor, ids: list[str], seed: int) -> int:
    count = 0
    with _progress(f"contacts {admin.location_id}") as report:
        for count, (customer_id, contact) in enumerate(synth.contacts(ids, seed=seed), start=1):
            book.contacts.add(customer_id, contact, actor=admin)
            if count % 500 == 0:
                report(count, None)
        report(count, count)
    return count


def _search_table(book: ck.Book, admin: ck.Actor, sample: ck.Customer) -> Table:
    name_word = sample.company_name.split()[0][:4]
    queries = [
        (name_word, ck.SearchField.ALL, False),
        (f"{name_word} {sample.city[:3]}", ck.SearchField.ALL, False),
        (sample.customer_number[-4:], ck.SearchField.NUMBER, False),
        (sample.state, ck.SearchField.STATE, False),
        ("truk", ck.SearchField.NAME, True),
    ]
    table = Table(title="Searches at loc-1 (ranked top 20)")
    for column in ("query", "field", "hits", "best match", "ms"):
        table.add_column(column)
    for query, field, fuzzy in queries:
        began = time.perf_counter()
        try:
            hits = book.customers.search(query, actor=admin, field=field, fuzzy=fuzzy)
        except ck.QueryTooShort:
            continue
        elapsed = (time.perf_counter() - began) * 1000
        best = hits[0].customer.company_name if hits else "-"
        label = f"{query}{' (fuzzy)' if fuzzy else ''}"
        table.add_row(label, field.value, str(len(hits)), best, f"{elapsed:.2f}")
    return table


def _duplicates_table(book: ck.Book, admin: ck.Actor) -> Table:
    began = time.perf_counter()
    contacts = book.contacts.find_duplicates(actor=admin)
    customers = book.customers.find_duplicates(actor=admin)
    elapsed = time.perf_counter() - began
    table = Table(title=f"Likely duplicates at loc-1 (found in {elapsed:.2f} s)")
    for column in ("kind", "pairs", "groups", "example", "reasons"):
        table.add_column(column)
    for kind, report in (("contacts", contacts), ("customers", customers)):
        example = reasons = "-"
        if report.pairs:
            pair = report.pairs[0]
            example = f"{pair.left_id[:8]} ~ {pair.right_id[:8]} ({pair.score:.2f})"
            reasons = ", ".join(pair.reasons)
        table.add_row(kind, str(len(report.pairs)), str(len(report.groups)), example, reasons)
    return table
