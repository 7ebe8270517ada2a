"""``customerkit contacts ...``: list, export, merge and clean up a customer's contacts."""

from __future__ import annotations

import io
import json
from typing import Annotated, Any, Literal

import typer

import customerkit as ck
from customerkit.cli._app import DEFAULT_DB, DbOption, LocationOption, OutArgument
from customerkit.cli._commands import (
    Table,
    at_location,
    customer_table_command,
    merge_command,
    unmerge_command,
)
from customerkit.cli._output import Format, _emit, _note, _progress, _writable

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


def _contacts(book: ck.Book, customer: str, admin: ck.Actor, fmt: Format) -> Table:
    contacts = book.contacts.list(customer, actor=admin)
    return Table([_contact_row(c) for c in contacts], _CONTACT_COLUMNS)


contacts_list = customer_table_command(
    _contacts, doc="List (or with --format csv, export) a customer's contacts."
)


def contacts_export(
    out: OutArgument,
    fmt: Annotated[Literal["csv", "json"], typer.Option("--format", help="csv or json")] = "csv",
    db: DbOption = DEFAULT_DB,
    location: LocationOption = "loc-1",
) -> None:
    """Export the contacts of every customer of a location.

    The file has a customer_id column: find duplicates among them with
    'customerkit duplicates FILE --scope customer_id'.
    """
    with at_location(db, location) as (book, admin):
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


def _unused(book: ck.Book, customer: str, admin: ck.Actor, fmt: Format) -> Table:
    unused = book.contacts.unused(customer, actor=admin)
    rows = [_contact_row(contact) for contact in unused.contacts]
    return Table(rows, _CONTACT_COLUMNS, title=f"{len(rows)} unused contacts")


contacts_unused = customer_table_command(
    _unused, doc="List a customer's unused contacts (no communication in 6 months)."
)
contacts_merge = merge_command(
    "contact",
    lambda book: book.contacts,
    doc="Merge contacts of one customer; undo with contacts unmerge.",
)
contacts_unmerge = unmerge_command(
    "contact", lambda book: book.contacts, merged_by="contacts merge", doc="Undo a contact merge."
)
