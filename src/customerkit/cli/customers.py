"""The commands on a location's customers: search, merge, unmerge, history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

import customerkit as ck
from customerkit.cli._app import DEFAULT_DB, DbOption, FormatOption, LocationOption, _flag
from customerkit.cli._books import _admin, _open, _require_location
from customerkit.cli._output import Format, _emit, _note, _report_merge


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
