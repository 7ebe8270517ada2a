"""The ``customerkit`` command line (extra ``cli``): demo, search, import, export, contacts.

The CLI acts as a dealer admin of one location (``--location``) on the book ``--db`` names.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

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
from customerkit.export import neutralise

#: The embedded default: an SQLite file in the current folder.
DEFAULT_DB = "sqlite:///customerkit.db"
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
    fresh: Annotated[
        bool, typer.Option(help="Start from an empty SQLite file (deletes the file first).")
    ] = True,
) -> None:
    """Build a synthetic dealer data set, load it, search it, find duplicates, summarise."""
    locations = synth.DEFAULT_LOCATIONS
    if fresh and db.startswith("sqlite:///"):
        database = Path(db.removeprefix("sqlite:///"))
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            path.unlink(missing_ok=True)
    book = ck.open_book(db)
    started = time.perf_counter()
    drafts: dict[str, list[ck.NewCustomer]] = {loc: [] for loc in locations}
    for location, draft in synth.customers(size, seed=seed, locations=locations):
        drafts[location].append(draft)
    created: dict[str, list[ck.Customer]] = {}
    for location in locations:
        with _progress(f"customers {location}") as report:
            created[location] = book.customers.create_many(
                drafts[location], actor=_admin(location), progress=report
            )
    admin = _admin(locations[0])
    first = created[locations[0]]
    contact_count = 0
    with _progress("contacts loc-1") as report:
        ids = [customer.id for customer in first]
        for done, (customer_id, contact) in enumerate(synth.contacts(ids, seed=seed), start=1):
            book.contacts.add(customer_id, contact, actor=admin)
            contact_count = done
            if done % 500 == 0:
                report(done, None)
        report(contact_count, contact_count)
    loaded = time.perf_counter() - started
    console.print(_search_table(book, admin, first[0]))
    console.print(_duplicates_table(book, admin))
    summary = Table(title="Book")
    for column in ("location", "customers", "created in the last 30 days"):
        summary.add_column(column)
    for location in locations:
        recent = book.customers.recent(actor=_admin(location))
        summary.add_row(location, str(len(created[location])), str(len(recent)))
    console.print(summary)
    console.print(
        f"Loaded {size} customers and {contact_count} contacts in {loaded:.1f} s into {db}."
    )


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


@app.command()
def duplicates(
    path: Path,
    kind: Annotated[str, typer.Option(help="contact or customer")] = "contact",
    out: Annotated[Path | None, typer.Option(help="Write the pairs to this CSV.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write a readable HTML report.")] = None,
) -> None:
    """Find duplicates in a CSV of contacts or customers (columns named like the model)."""
    if kind not in ("contact", "customer"):
        console.print("[red]error:[/red] --kind must be contact or customer")
        raise typer.Exit(code=2)
    with path.open(encoding="utf-8-sig", newline="") as fileobj:
        records = list(csv.DictReader(fileobj))
    with _progress("matching") as report:
        report(0, len(records))
        found = ck.find_duplicates(records, kind=kind)  # type: ignore[arg-type]
        report(len(records), len(records))
    console.print(
        f"{len(records)} records, {found.compared} pairs compared, "
        f"{len(found.pairs)} duplicate pairs in {len(found.groups)} groups."
    )
    if out is not None:
        rows = found.to_records()
        with out.open("w", encoding="utf-8", newline="") as fileobj:
            columns = list(rows[0]) if rows else ["left_id", "right_id", "score", "reasons"]
            writer = csv.DictWriter(fileobj, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: neutralise(_cell(v)) for k, v in row.items()})
        console.print(f"Pairs written to {out}.")
    if html is not None:
        html.write_text(found._repr_html_(), encoding="utf-8")
        console.print(f"Report written to {html}.")


def _cell(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return str(value)


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
    format: Annotated[Literal["csv", "jsonl"], typer.Option(help="csv or jsonl")] = "csv",  # noqa: A002
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Export every customer of a location to CSV or JSON Lines."""
    book = ck.open_book(db)
    with out.open("w", encoding="utf-8", newline="") as fileobj, _progress("exporting") as report:
        try:
            count = book.customers.export(
                fileobj, actor=_admin(location), format=format, progress=report
            )
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
        fields: dict[str, Any] = {k: v for k, v in record.data.items() if k in _NEW_CUSTOMER_FIELDS}
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
    main()
