"""Commands written once and built per kind of record: merge, unmerge, and a customer's lists.

Customers and contacts merge and unmerge the same way, and a customer's history, contacts and
unused contacts are all "a table for one customer": each command is built here from what
differs (the service, the help texts, the rows), so the options and the flow have one home.
"""

# No ``from __future__ import annotations``: typer reads the annotations of the functions built
# here, and they name each command's own record kind, known only when the command is built.

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, NamedTuple

import typer

import customerkit as ck
from customerkit.cli._app import DEFAULT_DB, DbOption, FormatOption, LocationOption, _flag
from customerkit.cli._books import _admin, _open, _require_location
from customerkit.cli._output import Format, _emit, _note, _report_merge
from customerkit.services.contacts import ContactService
from customerkit.services.customers import CustomerService

Command = Callable[..., None]
Service = Callable[[ck.Book], CustomerService | ContactService]


@contextmanager
def at_location(db: str, location: str) -> Iterator[tuple[ck.Book, ck.Actor]]:
    """The open book ``--db`` names, and the admin of ``--location`` (which has customers)."""
    with _open(db) as book:
        _require_location(book, location, db)
        yield book, _admin(location)


def merge_command(kind: str, service: Service, *, doc: str) -> Command:
    """``merge MAIN OTHERS...`` for customers or contacts (``kind``) of ``service``."""

    def merge(
        main: Annotated[str, typer.Argument(help=f"Id of the {kind} to keep.")],
        others: Annotated[list[str], typer.Argument(help=f"Ids of the {kind}s to merge into it.")],
        dry_run: Annotated[
            bool, _flag("--dry-run", "Show what would happen; write nothing.")
        ] = False,
        db: DbOption = DEFAULT_DB,
        location: LocationOption = "loc-1",
    ) -> None:
        with at_location(db, location) as (book, admin):
            result = service(book).merge(main, others, actor=admin, dry_run=dry_run)
        _report_merge(result, dry_run)

    merge.__doc__ = doc
    return merge


def unmerge_command(kind: str, service: Service, *, merged_by: str, doc: str) -> Command:
    """``unmerge MERGE_ID`` for customers or contacts; ``merged_by`` names the merge command."""

    def unmerge(
        merge_id: Annotated[str, typer.Argument(help=f"The id {merged_by} printed.")],
        db: DbOption = DEFAULT_DB,
        location: LocationOption = "loc-1",
    ) -> None:
        with at_location(db, location) as (book, admin):
            restored = service(book).unmerge(merge_id, actor=admin)
        _note(f"Merge {merge_id} undone; {kind} {restored.id} has its old values back.")

    unmerge.__doc__ = doc
    return unmerge


class Table(NamedTuple):
    """What a customer's list command prints: rows, their columns and the table's title."""

    rows: Sequence[Mapping[str, Any]]
    columns: Sequence[str]
    title: str = ""


def customer_table_command(
    table: Callable[[ck.Book, str, ck.Actor, Format], Table], *, doc: str
) -> Command:
    """``COMMAND CUSTOMER`` printing the ``table`` of one customer in the chosen format."""

    def command(
        customer: Annotated[str, typer.Argument(help="Customer id.")],
        fmt: FormatOption = Format.TABLE,
        db: DbOption = DEFAULT_DB,
        location: LocationOption = "loc-1",
    ) -> None:
        with at_location(db, location) as (book, admin):
            shown = table(book, customer, admin, fmt)
        _emit(shown.rows, shown.columns, fmt, title=shown.title)

    command.__doc__ = doc
    return command
