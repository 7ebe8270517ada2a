"""``customerkit duplicates``: duplicate contacts or customers in a CSV file."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer

import customerkit as ck
from customerkit.cli._app import FormatOption, _Failure
from customerkit.cli._output import Format, _emit, _file_label, _note, _progress, _stages, _text
from customerkit.csvfile import CsvRows, open_csv, read_csv, refuse_repeated
from customerkit.export import neutralise, restore
from customerkit.matching.table import CONTACT_FIELDS, CUSTOMER_FIELDS
from customerkit.sources import field_name

_MATCH_EXTRA_COLUMNS = frozenset({"id", "last_communicated_at", "created_at"})


class Kind(enum.StrEnum):
    """What the records of a CSV file are."""

    CONTACT = "contact"
    CUSTOMER = "customer"


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
