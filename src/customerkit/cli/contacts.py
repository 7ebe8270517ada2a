"""``customerkit contacts ...``: list, export, merge and clean up a customer's contacts."""

from __future__ import annotations

import io
import json
from typing import Annotated, Any, Literal

import typer

import customerkit as ck
from customerkit.cli._app import DEFAULT_DB, DbOption, FormatOption, LocationOption, _flag
from customerkit.cli._books import _admin, _open, _require_location
from customerkit.cli._output import Format, _emit, _note, _progress, _report_merge, _writable

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
