"""``customerkit export`` and ``import``: a location's customers to and from a file."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import attrs
import typer

import customerkit as ck
from customerkit.cli._app import (
    DEFAULT_DB,
    DbOption,
    LocationOption,
    OutArgument,
    _Failure,
    _summary,
)
from customerkit.cli._books import _admin, _open, _sqlite_file, book_url
from customerkit.cli._commands import at_location
from customerkit.cli._output import _file_label, _note, _progress, _writable
from customerkit.csvfile import open_csv, read_csv, refuse_repeated
from customerkit.export import restore
from customerkit.identity import username_key
from customerkit.sources import field_name
from customerkit.text import number_key


def export_customers(
    out: OutArgument,
    fmt: Annotated[Literal["csv", "jsonl"], typer.Option("--format", help="csv or jsonl")] = "csv",
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Export the customers of a location to CSV or JSON Lines."""
    with (
        at_location(db, location) as (book, admin),
        _writable(out) as fileobj,
        _progress("exporting") as report,
    ):
        count = book.customers.export(fileobj, actor=admin, format=fmt, progress=report)
    _note(f"Exported {count} customers to {'standard output' if out == '-' else out}.")


#: Customer fields the import reads (a password is never read from a file).
IMPORT_FIELDS = frozenset(attrs.fields_dict(ck.NewCustomer)) - {"password"}


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
        usernames: dict[str, int] = {}

        def drafts() -> Iterator[ck.NewCustomer]:
            for line, row in table.rows:
                values = {
                    f: restore(v) for f, v in zip(fields, row, strict=True) if f in IMPORT_FIELDS
                }
                draft = _draft(values, line)
                number = draft.customer_number
                number_seen = number_key(number) if isinstance(number, str) else None
                _refuse_repeated(numbers, number_seen, line, "customer_number")
                _refuse_repeated(usernames, _username_key(draft.username), line, "username")
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
                except ck.DuplicateUsername as error:
                    raise _username_held(error, usernames) from error
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


#: A key field of an import row: what its message calls the value, and what its key ignores.
_KEYED = {
    "customer_number": ("number", "case and separators"),
    "username": ("username", "case and width"),
}


def _refuse_repeated(seen: dict[str, int], key: str | None, line: int, field: str) -> None:
    """Note the line of a draft's canonical ``key``; a key an earlier line has is an error.

    No key (a blank, or a value the load will refuse and name the line of) notes nothing.
    """
    if not key:
        return
    if key in seen:
        noun, ignoring = _KEYED[field]
        raise _Failure(
            f"line {line}: {field}: line {seen[key]} has this {noun} already "
            f"({ignoring} are ignored); nothing was imported"
        )
    seen[key] = line


def _username_held(error: ck.DuplicateUsername, usernames: dict[str, int]) -> _Failure:
    """The import's error for a row whose username a customer of the book holds."""
    key = _username_key(error.username)
    where = f"line {usernames[key]}: " if key in usernames else ""
    return _Failure(
        f"{where}username: a customer of the book has this username already (case and width "
        "are ignored); nothing was imported"
    )


def _username_key(username: object) -> str | None:
    """The canonical key of a username, or None for none or one the load will refuse."""
    if not isinstance(username, str):
        return None
    try:
        return username_key(username)
    except ck.CustomerKitError:
        return None


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
