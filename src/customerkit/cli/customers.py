"""The commands on a location's customers: search, merge, unmerge, history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

import customerkit as ck
from customerkit.cli._app import DEFAULT_DB, DbOption, FormatOption, LocationOption, _flag
from customerkit.cli._books import _admin, _open, _require_location
from customerkit.cli._commands import Table, customer_table_command, merge_command, unmerge_command
from customerkit.cli._output import Format, _emit, _note


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


merge = merge_command(
    "customer",
    lambda book: book.customers,
    doc="""Merge customers into a main customer; undo with unmerge.

    Their contacts move along. Prints the merge id.
    """,
)
unmerge = unmerge_command(
    "customer",
    lambda book: book.customers,
    merged_by="merge",
    doc="""Undo a customer merge.

    The merged customers and their contacts come back.
    """,
)


def _history(book: ck.Book, customer: str, admin: ck.Actor, fmt: Format) -> Table:
    records = book.history.for_customer(customer, actor=admin)
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
    return Table(rows, ["at", "action", "entity", "entity_id", "actor_id", "changes"])


history = customer_table_command(
    _history, doc="Show a customer's history of changes, oldest first."
)


def _changes(changes: Mapping[str, tuple[Any, Any]], fmt: Format) -> Any:
    if fmt is Format.JSON:
        return {name: list(pair) for name, pair in changes.items()}
    return "; ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in changes.items())
