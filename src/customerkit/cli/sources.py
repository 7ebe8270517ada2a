"""``customerkit source import``: customers from a DMS's CSV export, read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import customerkit as ck
from customerkit.cli._app import DEFAULT_DB, DbOption, LocationOption
from customerkit.cli._books import _admin, _open
from customerkit.cli._output import _note, _progress


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
