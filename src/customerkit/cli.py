"""The ``customerkit`` command line (extra ``cli``): demo, search, import, export, contacts.

The CLI acts as a dealer admin of one location (``--location``) on the book ``--db`` names.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import attrs

try:
    import typer
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the customerkit command line needs the 'cli' extra: pip install 'customerkit[cli]'",
        name=error.name,
    ) from error

import customerkit as ck
from customerkit import synth

DEFAULT_DB = "memory://"
app = typer.Typer(help="Customer profiles and contacts for dealer software.", no_args_is_help=True)
contacts_app = typer.Typer(help="Work on a customer's contacts.", no_args_is_help=True)
source_app = typer.Typer(
    help="Import customers from an external source (DMS).", no_args_is_help=True
)
app.add_typer(contacts_app, name="contacts")
app.add_typer(source_app, name="source")
console = Console()

DbOption = Annotated[str, typer.Option("--db", help="Book URL: memory://, sqlite:///file.db, …")]
LocationOption = Annotated[str, typer.Option("--location", help="Location to act for.")]


def _admin(location: str) -> ck.Actor:
    return ck.Actor(user_id="cli", role=ck.Role.DEALER_ADMIN, location_id=location)


@contextmanager
def _progress(label: str) -> Iterator[ck.ports.Progress]:
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield report


def _fail(error: ck.CustomerKitError) -> None:
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(code=1)


@app.command()
def demo(
    size: Annotated[int, typer.Option(help="How many customers to generate.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 7,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Build a synthetic dealer data set, load it, search it and summarise it."""
    locations = ("loc-1", "loc-2", "loc-3")
    book = ck.open_book(db)
    started = time.perf_counter()
    by_location: dict[str, list[ck.NewCustomer]] = {loc: [] for loc in locations}
    for location, draft in synth.customers(size, seed=seed, locations=locations):
        by_location[location].append(draft)
    for location in locations:
        admin = _admin(location)
        with _progress(f"loading {location}") as report:
            book.customers.create_many(by_location[location], actor=admin, progress=report)
    loaded = time.perf_counter() - started
    admin = _admin("loc-1")
    table = Table(title="Searches at loc-1")
    for column in ("query", "field", "hits", "best match", "ms"):
        table.add_column(column)
    for query, field in (("john", "ALL"), ("tir den", "ALL"), ("truck", "NAME"), ("CO", "STATE")):
        began = time.perf_counter()
        hits = book.customers.search(query, actor=admin, field=ck.SearchField[field], limit=20)
        elapsed = (time.perf_counter() - began) * 1000
        best = hits[0].customer.company_name if hits else "—"
        table.add_row(query, field, str(len(hits)), best, f"{elapsed:.2f}")
    console.print(table)
    summary = Table(title="Book")
    for column in ("location", "customers", "created in the last 30 days"):
        summary.add_column(column)
    for location in locations:
        recent = book.customers.recent(actor=_admin(location))
        summary.add_row(location, str(len(by_location[location])), str(len(recent)))
    console.print(summary)
    console.print(f"Loaded {size} customers in {loaded:.1f} s into {db}.")


@app.command()
def search(
    query: str,
    field: Annotated[ck.SearchField, typer.Option(case_sensitive=False)] = ck.SearchField.ALL,
    limit: int = 20,
    fuzzy: bool = False,
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Search customers of a location."""
    book = ck.open_book(db)
    try:
        hits = book.customers.search(
            query, actor=_admin(location), field=field, limit=limit, fuzzy=fuzzy
        )
    except ck.CustomerKitError as error:
        _fail(error)
    table = Table()
    for column in ("score", "company", "number", "city", "state", "id"):
        table.add_column(column)
    for hit in hits:
        c = hit.customer
        table.add_row(f"{hit.score:.2f}", c.company_name, c.customer_number, c.city, c.state, c.id)
    console.print(table)


@app.command("export")
def export_customers(
    out: Path,
    format: Annotated[str, typer.Option(help="csv or jsonl")] = "csv",  # noqa: A002
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Export every customer of a location to CSV or JSON Lines."""
    book = ck.open_book(db)
    with out.open("w", encoding="utf-8", newline="") as fileobj, _progress("exporting") as report:
        try:
            count = book.customers.export(
                fileobj, actor=_admin(location), format=format, progress=report
            )  # type: ignore[arg-type]
        except ck.CustomerKitError as error:
            _fail(error)
    console.print(f"Exported {count} customers to {out}.")


@app.command("import")
def import_customers(
    path: Path, db: DbOption = DEFAULT_DB, location: LocationOption = "loc-1"
) -> None:
    """Create customers from a CSV file whose header uses the customer field names."""
    book = ck.open_book(db)
    source = ck.CsvSource("import", path)
    drafts = []
    for record in source.records():
        fields = {k: v for k, v in record.data.items() if k in _NEW_CUSTOMER_FIELDS}
        drafts.append(ck.NewCustomer(**fields))
    with _progress("importing") as report:
        try:
            created = book.customers.create_many(drafts, actor=_admin(location), progress=report)
        except ck.CustomerKitError as error:
            _fail(error)
    console.print(f"Imported {len(created)} customers.")


_NEW_CUSTOMER_FIELDS = frozenset(attrs.fields_dict(ck.NewCustomer)) - {"kind", "extra", "password"}


@contacts_app.command("unused")
def contacts_unused(
    customer: str, db: DbOption = DEFAULT_DB, location: LocationOption = "loc-1"
) -> None:
    """List a customer's unused contacts (no communication in 6 months)."""
    book = ck.open_book(db)
    try:
        unused = book.contacts.unused(customer, actor=_admin(location))
    except ck.CustomerKitError as error:
        _fail(error)
    table = Table(title=f"{len(unused.contacts)} unused contacts")
    for column in ("id", "name", "last communication"):
        table.add_column(column)
    for contact in unused.contacts:
        last = contact.last_communicated_at
        table.add_row(contact.id, contact.full_name, last.isoformat() if last else "never")
    console.print(table)


@source_app.command("import")
def source_import(
    path: Path,
    name: Annotated[str, typer.Option(help="Source name.")] = "dms",
    id_column: str = "customer_number",
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Import every record of a DMS CSV export as a read-only customer (skips known ones)."""
    book = ck.open_book(db)
    admin = _admin(location)
    try:
        source = ck.CsvSource(name, path, id_column)
        book.sources.register(source)
        book.sources.enable(name, location_id=location, actor=admin)
        records = source.records()
        imported = skipped = 0
        with _progress("importing") as report:
            for done, record in enumerate(records, start=1):
                try:
                    book.sources.import_customer(name, record.external_id, actor=admin)
                    imported += 1
                except ck.AlreadyImported:
                    skipped += 1
                report(done, len(records))
    except ck.CustomerKitError as error:
        _fail(error)
    console.print(f"Imported {imported} customers; {skipped} were imported before.")


def main() -> None:
    """Entry point of the ``customerkit`` command."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
