"""The ``customerkit`` command line (extra ``cli``).

The CLI acts as a dealer admin of one location (``--location``) on the book ``--db`` names.
Data goes to standard output (``--format table|csv|json`` where it is a list); progress, notes
and errors go to standard error. An error is one line and exit status 1 (2 for a wrong command
line); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import enum
import io
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import attrs

try:
    import typer
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from typer import TyperException as _ClickError  # typer carries its own click
    from typer.core import TyperGroup
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the customerkit command line needs the 'cli' extra: pip install 'customerkit[cli]'",
        name=error.name,
    ) from error

import customerkit as ck
from customerkit import synth
from customerkit.book import MEMORY_URLS
from customerkit.csvfile import CsvRows, open_csv, read_csv, refuse_repeated
from customerkit.export import neutralise, restore
from customerkit.matching.table import CONTACT_FIELDS, CUSTOMER_FIELDS
from customerkit.services import accelerators
from customerkit.sources import field_name
from customerkit.text import number_key

#: The embedded default: an SQLite file in the current folder.
DEFAULT_DB = "customerkit.db"
#: The demo's own book, so the demo never touches the one the other commands use.
DEMO_DB = "customerkit-demo.db"
#: A category only the demo creates: it marks a book the demo may delete and build again.
DEMO_MARK = "customerkit demo data"
#: The user the demo acts as: a change by anyone else makes the book more than a demo.
DEMO_USER = "customerkit-demo"
_DEBUG = "customerkit.debug"
_MATCH_EXTRA_COLUMNS = frozenset({"id", "last_communicated_at", "created_at"})


class _Failure(Exception):
    """A failure the CLI reports in one line with exit status 1 (2 when ``usage``)."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def _message(error: BaseException) -> str:
    if isinstance(error, ck.ValidationError) and len(error.errors) > 1:
        return _summary(error.errors)
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    if isinstance(error, (ck.CustomerKitError, _Failure, ImportError)):
        return str(error)
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{error.__class__.__name__}: {first_line} (run with --debug for the details)"


def _summary(errors: Mapping[str, str], shown: int = 5) -> str:
    items = [f"{key}: {value}" for key, value in errors.items()]
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return f"{len(items)} problems: " + "; ".join(items[:shown]) + more


class _Group(TyperGroup):
    """Turns every error of a command into one line on standard error (unless ``--debug``)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (_ClickError, typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            # Whoever read the output stopped (``| head``): stop quietly, as Unix tools do.
            _silence_stdout()
            raise typer.Exit(code=1) from None
        except Exception as error:
            if ctx.meta.get(_DEBUG):
                raise
            _err().print(f"error: {_message(error)}", markup=False, highlight=False, soft_wrap=True)
            usage = isinstance(error, _Failure) and error.usage
            raise typer.Exit(code=2 if usage else 1) from error


def _silence_stdout() -> None:
    """Point standard output at the null device, so exiting flushes nowhere instead of failing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # no real file (a test runner)
        pass


app = typer.Typer(
    cls=_Group,
    help="Customer profiles and contacts for dealer software.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
contacts_app = typer.Typer(
    help="List, merge and clean up a customer's contacts.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
source_app = typer.Typer(
    help="Import customers from an external source (DMS).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(contacts_app, name="contacts")
app.add_typer(source_app, name="source")


class Format(enum.StrEnum):
    """How a command prints a list."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


class Kind(enum.StrEnum):
    """What the records of a CSV file are."""

    CONTACT = "contact"
    CUSTOMER = "customer"


DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        help="The book: a file (book.db), sqlite:///book.db, postgresql://…, or memory://.",
    ),
]
LocationOption = Annotated[str, typer.Option("--location", help="Location to act for.")]


def _flag(name: str, help: str, **extra: Any) -> Any:  # noqa: A002 - typer's word
    """An on/off option shown as just its name in help (no ``--no-…`` twin, no ``<bool>``)."""
    return typer.Option(name, help=help, metavar="", **extra)


FormatOption = Annotated[Format, typer.Option("--format", help="table, csv or json.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"customerkit {ck.__version__}")
        raise typer.Exit


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        _flag("--version", "Show the version and exit.", callback=_version, is_eager=True),
    ] = False,
    debug: Annotated[bool, _flag("--debug", "Show the traceback of an error.")] = False,
) -> None:
    """Customer profiles and contacts for dealer software."""
    ctx.meta[_DEBUG] = debug


# -- consoles, progress, output ----------------------------------------------------------------


def _err() -> Console:
    return Console(stderr=True)


def _out() -> Console:
    # Off a terminal nothing is cut to 80 columns: ids and names print whole.
    return Console() if sys.stdout.isatty() else Console(width=1_000_000)


def _note(text: str) -> None:
    _err().print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def _progress(label: str) -> Iterator[ck.ports.Progress]:
    console = _err()
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield report


@contextmanager
def _stages() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar for work in named stages (the matcher's), on standard error."""
    console = _err()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("matching", total=None)

        def report(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total or None)

        yield report


def _emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: Format,
    title: str = "",
    to: IO[str] | None = None,
) -> None:
    """Print rows as a table, CSV (neutralised cells) or a JSON array (to stdout by default)."""
    out = sys.stdout if to is None else to
    if fmt is Format.JSON:
        out.write(json.dumps(list(map(dict, rows)), ensure_ascii=False, indent=2) + "\n")
        return
    if fmt is Format.CSV:
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([neutralise(_text(row[c])) for c in columns] for row in rows)
        return
    table = Table(title=title or None)
    for column in columns:
        is_id = column == "id" or column.endswith("_id")
        table.add_column(column, overflow="fold" if is_id else "ellipsis")
    for row in rows:
        table.add_row(*(_text(row[column]) for column in columns))
    _out().print(table)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


# -- opening books -----------------------------------------------------------------------------


def book_url(db: str) -> str:
    """The URL of the book ``--db`` names: a plain path is an SQLite file, ``postgres://`` works.

    >>> book_url("dealer.db"), book_url("postgres://u@h/ck")
    ('sqlite:///dealer.db', 'postgresql+psycopg://u@h/ck')
    """
    if db in MEMORY_URLS:
        return "memory://"
    scheme, separator, rest = db.partition("://")
    if not separator:
        return f"sqlite:///{db}"
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return db


def _shown(db: str) -> str:
    """``--db`` as it may be printed: a password in the URL is masked."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", db)


def _sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL, or None (not SQLite, or an in-memory database)."""
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0] != "sqlite" or not rest.startswith("/"):
        return None
    database = rest[1:].split("?", 1)[0]
    return None if database in ("", ":memory:") else Path(database)


def _open(db: str, *, create: bool = False) -> ck.Book:
    """Open the book; unless ``create``, a missing SQLite file is an error, never a new book."""
    url = book_url(db)
    path = _sqlite_file(url)
    if not create and path is not None and not path.exists():
        hint = "create one with 'customerkit import', or try 'customerkit demo'"
        if Path(DEMO_DB).exists():
            hint = f"for the demo's book pass --db {DEMO_DB}"
        raise _Failure(f"there is no book at {str(path)!r}; check --db, or {hint}")
    try:
        return ck.open_book(url)
    except ck.StorageError as error:  # the database failed or is not a book: say which one
        raise _Failure(f"cannot open the book {_shown(db)!r}: {error}") from error
    except (ck.CustomerKitError, ImportError):
        raise
    except Exception as error:  # SQLAlchemy refusing the URL or the driver failing
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise _Failure(f"cannot open the book {_shown(db)!r}: {first_line}") from error


def _admin(location: str, user: str = "cli") -> ck.Actor:
    return ck.Actor(user_id=user, role=ck.Role.DEALER_ADMIN, location_id=location)


def _customer_count(book: ck.Book, location: str) -> int:
    with book.store.unit_of_work(read_only=True) as uow:
        return accelerators.count(uow.customers, location)


def _require_location(book: ck.Book, location: str, db: str) -> None:
    if _customer_count(book, location) == 0:
        where = _shown(db)
        raise _Failure(f"location {location!r} has no customers in {where}; check --location")


# -- demo --------------------------------------------------------------------------------------


@app.command()
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


# -- duplicates in a CSV file ------------------------------------------------------------------


@app.command()
def duplicates(
    path: Annotated[str, typer.Argument(help="CSV file of contacts or customers; - for stdin.")],
    kind: Annotated[Kind, typer.Option(help="What the records are.")] = Kind.CONTACT,
    scope: Annotated[
        str | None,
        typer.Option(help="Compare only records with the same value in this column."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Report pairs scoring at least this (0-1)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the pairs to this CSV.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write a readable HTML report.")] = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Find duplicate contacts or customers in a CSV file.

    Columns are named like the model's fields (first_name, email, company_name, ...); the
    pairs go to standard output, a summary to standard error.
    """
    with _progress("reading") as report, open_csv(path) as fileobj:
        table = read_csv(fileobj, name=_file_label(path))
        columns = _match_columns(table, kind, scope)
        records = []
        for count, (_, row) in enumerate(table.rows, start=1):
            records.append({c: restore(cell) for c, cell in zip(columns, row, strict=True) if c})
            if count % 10_000 == 0:
                report(count, None)
    config = ck.MatchConfig() if threshold is None else ck.MatchConfig(threshold=threshold)
    with _stages() as report:
        try:
            found = ck.find_duplicates(
                records, kind=kind.value, scope=scope, config=config, progress=report
            )
        except ValueError as error:  # the matcher's own refusals (two records with one id)
            if isinstance(error, ck.CustomerKitError):
                raise
            raise _Failure(str(error)) from error
    _note(
        f"{len(records)} records, {found.compared} pairs compared, "
        f"{len(found.pairs)} duplicate pairs in {len(found.groups)} groups."
    )
    rows = found.to_records()
    _emit(rows, ["left_id", "right_id", "score", "reasons"], fmt, title="Duplicate pairs")
    if out is not None:
        _write_pairs(out, rows)
        _note(f"Pairs written to {out}.")
    if html is not None:
        found.to_html(html)
        _note(f"Report written to {html}.")


def _file_label(path: str) -> str:
    return "standard input" if path == "-" else repr(path)


def _match_columns(table: CsvRows, kind: Kind, scope: str | None) -> list[str]:
    """The field each column feeds the matcher ("" for an ignored column), checked."""
    fields = [field_name(column) for column in table.header]
    refuse_repeated(fields, name=table.name, meaning=" (after mapping headers to fields)")
    wanted = CONTACT_FIELDS if kind is Kind.CONTACT else CUSTOMER_FIELDS
    other = CUSTOMER_FIELDS if kind is Kind.CONTACT else CONTACT_FIELDS
    if scope is not None and scope not in fields:
        raise _Failure(
            f"--scope {scope!r} is not a column of {table.name}; its columns are "
            + ", ".join(fields),
            usage=True,
        )
    known = {*wanted, *_MATCH_EXTRA_COLUMNS, *((scope,) if scope else ())}
    recognised = [f for f in fields if f in wanted]
    hint = ""
    if len([f for f in fields if f in other]) > len(recognised):
        hint = f"; these look like {'customer' if kind is Kind.CONTACT else 'contact'} columns: "
        hint += f"pass --kind {'customer' if kind is Kind.CONTACT else 'contact'}"
    if not recognised:
        raise _Failure(
            f"no column of {table.name} is a {kind.value} field ({', '.join(wanted)}); "
            f"rename the header{hint}"
        )
    ignored = [column for column, f in zip(table.header, fields, strict=True) if f not in known]
    if ignored:
        _note(f"note: ignoring columns {', '.join(ignored)}{hint}")
    return [f if f in known else "" for f in fields]


def _write_pairs(out: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    columns = list(rows[0]) if rows else ["left_id", "right_id", "score", "reasons"]
    with out.open("w", encoding="utf-8", newline="") as fileobj:
        writer = csv.writer(fileobj)
        writer.writerow(columns)
        writer.writerows([neutralise(_text(row[c])) for c in columns] for row in rows)


# -- customers ---------------------------------------------------------------------------------


@app.command()
def search(
    query: str,
    field: Annotated[ck.SearchField, typer.Option(case_sensitive=False)] = ck.SearchField.ALL,
    limit: Annotated[int, typer.Option(min=1, help="Most hits to show.")] = 20,
    fuzzy: Annotated[bool, _flag("--fuzzy", "Allow a typo per word.")] = False,
    fmt: FormatOption = Format.TABLE,
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Search customers of a location."""
    with _open(db) as book:
        hits = book.customers.search(
            query, actor=_admin(location), field=field, limit=limit, fuzzy=fuzzy
        )
        if not hits:
            _require_location(book, location, db)
    rows = [
        {
            "score": hit.score,
            "company": hit.customer.company_name,
            "number": hit.customer.customer_number,
            "city": hit.customer.city,
            "state": hit.customer.state,
            "id": hit.customer.id,
        }
        for hit in hits
    ]
    _emit(rows, ["score", "company", "number", "city", "state", "id"], fmt)
    if not hits:
        _note("no customer matches")


@app.command("export")
def export_customers(
    out: Annotated[str, typer.Argument(help="File to write; - for standard output.")],
    fmt: Annotated[Literal["csv", "jsonl"], typer.Option("--format", help="csv or jsonl")] = "csv",
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Export the customers of a location to CSV or JSON Lines."""
    with _open(db) as book:
        _require_location(book, location, db)
        with _writable(out) as fileobj, _progress("exporting") as report:
            count = book.customers.export(
                fileobj, actor=_admin(location), format=fmt, progress=report
            )
    _note(f"Exported {count} customers to {'standard output' if out == '-' else out}.")


@contextmanager
def _writable(out: str) -> Iterator[IO[str]]:
    """A text file to write (``-``: standard output), UTF-8 with line ends kept as written.

    A file appears whole or not at all: it is written beside its final name and renamed at the
    end, so a failed export never leaves half a file over the last good one.
    """
    if out == "-":
        yield sys.stdout
        return
    target = Path(out)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as fileobj:
            yield fileobj
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


#: Customer fields the import reads (a password is never read from a file).
IMPORT_FIELDS = frozenset(attrs.fields_dict(ck.NewCustomer)) - {"password"}


@app.command("import")
def import_customers(
    path: Annotated[str, typer.Argument(help="CSV file (an export works); - for stdin.")],
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Create customers from a CSV file (an export reads back).

    The header names customer fields (company_name, customer_number, city, ...); all rows are
    created, or none. The file is read as it is loaded, so a large file never sits in memory.
    """
    with open_csv(path) as fileobj:
        table = read_csv(fileobj, name=_file_label(path))
        fields = [field_name(column) for column in table.header]
        refuse_repeated(fields, name=table.name, meaning=" (after mapping headers to fields)")
        if "company_name" not in fields:
            raise _Failure(f"{table.name} has no company_name column (or Company, Name)")
        ignored = [c for c, f in zip(table.header, fields, strict=True) if f not in IMPORT_FIELDS]
        if ignored:
            _note(f"note: not imported: {', '.join(ignored)}")
        lines: list[int] = []
        numbers: dict[str, int] = {}

        def drafts() -> Iterator[ck.NewCustomer]:
            for line, row in table.rows:
                values = {
                    f: restore(v) for f, v in zip(fields, row, strict=True) if f in IMPORT_FIELDS
                }
                draft = _draft(values, line)
                _refuse_repeated_number(numbers, draft, line)
                lines.append(line)
                yield draft

        # The rows are read as they load, so a bad one may come after the book is made: a file
        # made for this import goes again when it fails, as if it had been checked first.
        made = _sqlite_file(book_url(db))
        made = made if made is not None and not made.exists() else None
        try:
            with _open(db, create=True) as book, _progress("importing") as report:
                try:
                    count = book.customers.load(
                        drafts(), actor=_admin(location), progress=report, total=_rows_in(path)
                    )
                    report(count, count)  # the estimate counted lines, not rows
                except ck.ValidationError as error:
                    raise _Failure(_by_line(error, lines)) from error
                except ck.DuplicateCustomerNumber as error:
                    raise _number_held(book, error, numbers, location) from error
        except BaseException:
            if made is not None:
                for leftover in (made, Path(f"{made}-wal"), Path(f"{made}-shm")):
                    leftover.unlink(missing_ok=True)
            raise
    _note(f"Imported {count} customers.")


def _rows_in(path: str) -> int | None:
    """About how many rows a CSV file has (its lines less the header), for the progress bar.

    Counting bytes is a small share of reading the file; a quoted cell across lines makes it
    count high, and standard input cannot be read twice: no total then.
    """
    if path == "-":
        return None
    lines = 0
    with Path(path).open("rb") as fileobj:
        for block in iter(lambda: fileobj.read(1 << 20), b""):
            lines += block.count(b"\n")
    return max(lines - 1, 0)


def _number_held(
    book: ck.Book, error: ck.DuplicateCustomerNumber, numbers: dict[str, int], location: str
) -> _Failure:
    """The import's error for a row whose number a customer of the book holds."""
    held = book.customers.get(error.existing_id, actor=_admin(location))
    taken = numbers.get(number_key(held.customer_number))
    where = "" if taken is None else f"line {taken}: "
    return _Failure(
        f"{where}customer_number: customer {error.existing_id} of the book has "
        "this number already (case and separators are ignored); nothing was imported"
    )


def _refuse_repeated_number(numbers: dict[str, int], draft: ck.NewCustomer, line: int) -> None:
    """Note the line of a draft's number (by its canonical key); a number twice is an error."""
    key = number_key(draft.customer_number) if isinstance(draft.customer_number, str) else ""
    if key and key in numbers:
        raise _Failure(
            f"line {line}: customer_number: line {numbers[key]} has this number already "
            "(case and separators are ignored); nothing was imported"
        )
    numbers.setdefault(key, line)


def _draft(values: dict[str, str], line: int) -> ck.NewCustomer:
    """A draft from an import row: blanks are "not set", ``extra`` is the export's JSON."""
    fields: dict[str, Any] = dict(values)
    for name in ("company_type", "category", "username"):
        fields[name] = fields.get(name) or None
    try:
        fields["kind"] = ck.CustomerKind((fields.get("kind") or "LOCAL").strip().upper())
    except ValueError:
        raise _Failure(f"line {line}: kind must be LOCAL or FLEET") from None
    extra = fields.pop("extra", "")
    if extra:
        try:
            fields["extra"] = json.loads(extra)
        except ValueError:
            raise _Failure(
                f"line {line}: extra must be JSON text, as the export writes it"
            ) from None
    return ck.NewCustomer(**fields)


def _by_line(error: ck.ValidationError, lines: Sequence[int]) -> str:
    """create_many's ``"[position].field"`` problems keyed by the file's line numbers."""
    problems: dict[str, str] = {}
    for key, message in error.errors.items():
        position, _, name = key.partition("].")
        where = key
        if position.startswith("[") and position[1:].isdigit() and name:
            where = f"line {lines[int(position[1:])]}: {name}"
        elif len(lines) == 1:
            where = f"line {lines[0]}: {key}"
        problems[where] = message
    if len(problems) == 1:
        [(key, message)] = problems.items()
        return f"{key}: {message}; nothing was imported"
    return _summary(problems) + "; nothing was imported"


@app.command()
def merge(
    main: Annotated[str, typer.Argument(help="Id of the customer to keep.")],
    others: Annotated[list[str], typer.Argument(help="Ids of the customers to merge into it.")],
    dry_run: Annotated[bool, _flag("--dry-run", "Show what would happen; write nothing.")] = False,
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Merge customers into a main customer; undo with unmerge.

    Their contacts move along. Prints the merge id.
    """
    with _open(db) as book:
        _require_location(book, location, db)
        result = book.customers.merge(main, others, actor=_admin(location), dry_run=dry_run)
    _report_merge(result, dry_run)


@app.command()
def unmerge(
    merge_id: Annotated[str, typer.Argument(help="The id merge printed.")],
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Undo a customer merge.

    The merged customers and their contacts come back.
    """
    with _open(db) as book:
        _require_location(book, location, db)
        restored = book.customers.unmerge(merge_id, actor=_admin(location))
    _note(f"Merge {merge_id} undone; customer {restored.id} has its old values back.")


def _report_merge(result: ck.MergeResult[Any], dry_run: bool) -> None:
    merged = ", ".join(result.merged_ids)
    if dry_run:
        _note(f"Would merge {merged} into {result.main.id} (nothing written).")
        return
    _note(f"Merged {merged} into {result.main.id}; undo with: unmerge {result.merge_id}")
    typer.echo(result.merge_id)


@app.command()
def history(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    fmt: FormatOption = Format.TABLE,
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Show a customer's history of changes, oldest first."""
    with _open(db) as book:
        _require_location(book, location, db)
        records = book.history.for_customer(customer, actor=_admin(location))
    rows = [
        {
            "at": record.at.isoformat(),
            "action": record.action,
            "entity": record.entity,
            "entity_id": record.entity_id,
            "actor_id": record.actor_id or "",
            "changes": _changes(record.changes, fmt),
        }
        for record in records
    ]
    _emit(rows, ["at", "action", "entity", "entity_id", "actor_id", "changes"], fmt)


def _changes(changes: Mapping[str, tuple[Any, Any]], fmt: Format) -> Any:
    if fmt is Format.JSON:
        return {name: list(pair) for name, pair in changes.items()}
    return "; ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in changes.items())


# -- contacts ----------------------------------------------------------------------------------

_CONTACT_COLUMNS = (
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "title",
    "last_communicated_at",
)


def _contact_row(contact: ck.Contact) -> dict[str, Any]:
    last = contact.last_communicated_at
    return {
        "id": contact.id,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "email": contact.email,
        "phone": contact.phone,
        "title": contact.title,
        "last_communicated_at": last.isoformat() if last else "",
    }


@contacts_app.command("list")
def contacts_list(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    fmt: FormatOption = Format.TABLE,
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """List (or with --format csv, export) a customer's contacts."""
    with _open(db) as book:
        _require_location(book, location, db)
        contacts = book.contacts.list(customer, actor=_admin(location))
    _emit([_contact_row(c) for c in contacts], _CONTACT_COLUMNS, fmt)


@contacts_app.command("export")
def contacts_export(
    out: Annotated[str, typer.Argument(help="File to write; - for standard output.")],
    fmt: Annotated[Literal["csv", "json"], typer.Option("--format", help="csv or json")] = "csv",
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Export the contacts of every customer of a location.

    The file has a customer_id column: find duplicates among them with
    'customerkit duplicates FILE --scope customer_id'.
    """
    admin = _admin(location)
    with _open(db) as book:
        _require_location(book, location, db)
        ids = _CustomerIds()
        book.customers.export(ids, actor=admin, format="jsonl")  # streams; only ids are kept
        rows = []
        with _progress("contacts") as report:
            for done, customer_id in enumerate(ids.ids, start=1):
                for contact in book.contacts.list(customer_id, actor=admin):
                    rows.append({"customer_id": customer_id, **_contact_row(contact)})
                if done % 1000 == 0:
                    report(done, len(ids.ids))
            report(len(ids.ids), len(ids.ids))
    with _writable(out) as fileobj:
        _emit(rows, ("customer_id", *_CONTACT_COLUMNS), Format(fmt), to=fileobj)
    _note(f"Exported {len(rows)} contacts of {len(ids.ids)} customers.")


class _CustomerIds(io.StringIO):
    """A file-like sink for a JSON Lines export that keeps only the customers' ids."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        self.ids.extend(json.loads(line)["id"] for line in lines if line)
        return len(text)


@contacts_app.command("unused")
def contacts_unused(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    fmt: FormatOption = Format.TABLE,
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """List a customer's unused contacts (no communication in 6 months)."""
    with _open(db) as book:
        _require_location(book, location, db)
        unused = book.contacts.unused(customer, actor=_admin(location))
    rows = [_contact_row(contact) for contact in unused.contacts]
    _emit(rows, _CONTACT_COLUMNS, fmt, title=f"{len(rows)} unused contacts")


@contacts_app.command("merge")
def contacts_merge(
    main: Annotated[str, typer.Argument(help="Id of the contact to keep.")],
    others: Annotated[list[str], typer.Argument(help="Ids of the contacts to merge into it.")],
    dry_run: Annotated[bool, _flag("--dry-run", "Show what would happen; write nothing.")] = False,
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Merge contacts of one customer; undo with contacts unmerge."""
    with _open(db) as book:
        _require_location(book, location, db)
        result = book.contacts.merge(main, others, actor=_admin(location), dry_run=dry_run)
    _report_merge(result, dry_run)


@contacts_app.command("unmerge")
def contacts_unmerge(
    merge_id: Annotated[str, typer.Argument(help="The id contacts merge printed.")],
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Undo a contact merge."""
    with _open(db) as book:
        _require_location(book, location, db)
        restored = book.contacts.unmerge(merge_id, actor=_admin(location))
    _note(f"Merge {merge_id} undone; contact {restored.id} has its old values back.")


# -- sources -----------------------------------------------------------------------------------


@source_app.command("import")
def source_import(
    path: Annotated[Path, typer.Argument(help="The DMS's CSV export.")],
    name: Annotated[str, typer.Option(help="Source name.")] = "dms",
    id_column: Annotated[str, typer.Option(help="Column identifying a record.")] = (
        "customer_number"
    ),
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Import a DMS CSV export as read-only customers.

    Records imported before are skipped.
    """
    source = ck.CsvSource(name, path, id_column)
    records = source.records()
    admin = _admin(location)
    imported = skipped = 0
    with _open(db, create=True) as book:
        book.sources.register(source)
        book.sources.enable(name, location_id=location, actor=admin)
        with _progress("importing") as report:
            for done, record in enumerate(records, start=1):
                try:
                    book.sources.import_customer(name, record.external_id, actor=admin)
                    imported += 1
                except ck.AlreadyImported:
                    skipped += 1
                report(done, len(records))
    _note(f"Imported {imported} customers; {skipped} were imported before.")


def main() -> None:
    """Entry point of the ``customerkit`` command."""
    app(prog_name="customerkit")


if __name__ == "__main__":  # pragma: no cover
    main()
