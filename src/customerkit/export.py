"""Streaming customer export to CSV or JSON Lines.

Rows are written as they are read, so memory stays flat at any size. In CSV, a cell starting
with ``= + - @``, a tab, CR or LF gets a leading apostrophe so no spreadsheet runs it as a
formula (OWASP CSV injection); the apostrophe is never a tab (CVE-2021-41270). A cell that
starts with an apostrophe gets one more, so removing one leading apostrophe always gives the
stored value back. JSON Lines keeps values exactly, since JSON readers run nothing.

Backends hand over `ExportRecord` tuples (``ExportRows.export_records`` of the ports), so a
database backend can fill them straight from its rows without building a ``Customer`` first;
`record_of()` makes one from a customer and its contacts. A million customers make 30
million cells, so the per-cell work here is kept to C-level calls (see ``_CsvWriter``).
"""

# Rule C8: the export every backend streams.

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from customerkit.model import Contact, Customer

if TYPE_CHECKING:
    from customerkit.ports import Progress


class ExportRecord(NamedTuple):
    """One exported customer: every field but the password hash, its staff and live contacts.

    Field order is the column order. Text is as stored (``""`` for a missing company type,
    category, username or source); timestamps are ISO 8601 text (``datetime.isoformat()``);
    the contact columns list the live contacts oldest first.
    """

    id: str  # lower-case first: a file starting "ID" reads as SYLK in Excel
    location_id: str
    kind: str
    company_name: str
    customer_number: str
    address_line1: str
    address_line2: str
    city: str
    state: str
    postal_code: str
    country: str
    email: str
    phone: str
    phone_extension: str
    fax: str
    alternate_emails: Sequence[str]
    alternate_phones: Sequence[str]
    company_type: str
    category: str
    username: str
    extra: Mapping[str, str]
    assigned_staff: Sequence[str]
    source: str
    source_external_id: str
    created_at: str
    updated_at: str
    version: int
    contact_names: Sequence[str]
    contact_emails: Sequence[str]
    contact_phones: Sequence[str]


#: Export columns in order; starts with lower-case ``id`` (a file starting "ID" reads as SYLK).
COLUMNS: tuple[str, ...] = ExportRecord._fields
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
#: Cells starting with these get the apostrophe: the triggers, and the apostrophe itself so that
#: "remove one leading apostrophe" always gives the stored value back.
_PREFIXED = (*FORMULA_TRIGGERS, "'")
#: The start of a cell to neutralise, in "," + the row's cells joined by ",".
_PREFIXED_CELL = re.compile(",(?=[" + re.escape("".join(_PREFIXED)) + "])")
_PROGRESS_EVERY = 1000
_NOBODY: tuple[str, ...] = ()


def neutralise(cell: str) -> str:
    """Prefix a cell a spreadsheet would treat as a formula with an apostrophe.

    >>> neutralise("=1+1")
    "'=1+1"
    """
    return "'" + cell if cell.startswith(_PREFIXED) else cell


def restore(cell: str) -> str:
    """The value [`neutralise()`][customerkit.export.neutralise] was given: its apostrophe gone.

    An apostrophe is removed only where ``neutralise`` would have added it, so a value typed
    with a leading apostrophe by hand (``'tis``) stays as it is.

    >>> restore(neutralise("=1+1")), restore("'tis")
    ('=1+1', "'tis")
    """
    if cell.startswith("'") and cell[1:].startswith(_PREFIXED):
        return cell[1:]
    return cell


# -- records -----------------------------------------------------------------------------------


def record_of(customer: Customer, contacts: Iterable[Contact]) -> ExportRecord:
    """The export record of a customer and its contacts (tombstoned contacts are left out)."""
    live = [contact for contact in contacts if contact.is_live]
    names, emails, phones = _NOBODY, _NOBODY, _NOBODY
    if live:
        names = tuple(contact.full_name for contact in live)
        emails = tuple(contact.email for contact in live)
        phones = tuple(contact.phone for contact in live)
    source = customer.source
    created_at, updated_at = customer.created_at, customer.updated_at
    # isoformat() is the dearest step here (~1 µs); a customer never changed has two equal
    # timestamps, formatted once. Equal UTC values print alike (in other zones an equal
    # instant can print with another offset).
    created = created_at.isoformat()
    same = updated_at is created_at or (
        updated_at.tzinfo is created_at.tzinfo is UTC and updated_at == created_at
    )
    # tuple.__new__ skips the NamedTuple's Python-level __new__: a third of the cost here.
    return tuple.__new__(
        ExportRecord,
        (
            customer.id,
            customer.location_id,
            customer.kind.value,
            customer.company_name,
            customer.customer_number,
            customer.address_line1,
            customer.address_line2,
            customer.city,
            customer.state,
            customer.postal_code,
            customer.country,
            customer.email,
            customer.phone,
            customer.phone_extension,
            customer.fax,
            customer.alternate_emails,
            customer.alternate_phones,
            customer.company_type or "",
            customer.category or "",
            customer.username or "",
            customer.extra,
            customer.assigned_staff,
            source.source if source else "",
            source.external_id if source else "",
            created,
            created if same else updated_at.isoformat(),
            customer.version,
            names,
            emails,
            phones,
        ),
    )


# -- writing -----------------------------------------------------------------------------------


def _json_text(extra: Mapping[str, str]) -> str:
    return json.dumps(dict(extra), ensure_ascii=False, sort_keys=True) if extra else ""


def _cells(r: ExportRecord) -> list[str]:
    """The record's CSV cells before neutralising: lists joined by "; ", ``extra`` as JSON."""
    join = "; ".join
    return [
        r.id,
        r.location_id,
        r.kind,
        r.company_name,
        r.customer_number,
        r.address_line1,
        r.address_line2,
        r.city,
        r.state,
        r.postal_code,
        r.country,
        r.email,
        r.phone,
        r.phone_extension,
        r.fax,
        join(r.alternate_emails),
        join(r.alternate_phones),
        r.company_type,
        r.category,
        r.username,
        _json_text(r.extra),
        join(r.assigned_staff),
        r.source,
        r.source_external_id,
        r.created_at,
        r.updated_at,
        str(r.version),
        join(r.contact_names),
        join(r.contact_emails),
        join(r.contact_phones),
    ]


class _CsvWriter:
    """Writes records as CSV, byte for byte as ``csv.writer`` writes the neutralised cells.

    ``csv.writer`` looks at every character of every cell, and a million rows make 30 million
    cells. Most rows need no quoting, though: no cell holds a comma, a double quote, a line
    break or a NUL (which a csv.writer might treat specially). Their line is the cells joined
    by commas, and neutralising it is one regular-expression substitution after the commas,
    both at C speed (measured four times faster than cell by cell). Every other row goes
    through ``csv.writer``.
    """

    def __init__(self, fileobj: IO[str]) -> None:
        self._fileobj = fileobj
        self._lines: list[str] = []
        self._csv = csv.writer(self, lineterminator="\r\n")  # writes to self.write
        self._csv.writerow(COLUMNS)
        self._flush()

    def write(self, line: str) -> None:
        """Collect a line ``csv.writer`` made, in order with the others."""
        self._lines.append(line)

    def _flush(self) -> None:
        self._fileobj.write("".join(self._lines))
        self._lines.clear()

    def page(self, records: Sequence[ExportRecord]) -> None:
        lines, commas = self._lines, len(COLUMNS)
        for record in records:
            row = _cells(record)
            line = "," + ",".join(row)  # a comma before every cell, the first too
            # Exactly the separating commas (no cell holds one) and nothing to quote: four
            # substring tests, each a C-speed scan.
            if line.count(",") == commas and not (
                '"' in line or "\r" in line or "\n" in line or "\0" in line
            ):
                lines.append(_PREFIXED_CELL.sub(",'", line)[1:] + "\r\n")
            else:
                self._csv.writerow([neutralise(cell) for cell in row])
        self._flush()


def _json_line(record: ExportRecord) -> str:
    row: dict[str, Any] = record._asdict()
    row["extra"] = dict(record.extra)
    return json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


def _page_writer(fileobj: IO[str], format: str) -> Callable[[Sequence[ExportRecord]], object]:  # noqa: A002
    """A function writing a page of records to ``fileobj`` (CSV: after the header)."""
    if format == "csv":
        return _CsvWriter(fileobj).page
    return lambda page: fileobj.write("".join(map(_json_line, page)))


def _pages(records: Iterable[ExportRecord]) -> Iterator[list[ExportRecord]]:
    """``records`` in lists of ``_PROGRESS_EVERY``, so progress is reported once per page."""
    records = iter(records)
    while page := list(islice(records, _PROGRESS_EVERY)):
        yield page


def write_records(
    fileobj: IO[str],
    records: Iterable[ExportRecord],
    *,
    format: str,  # noqa: A002 - mirrors the public API's name
    total: int | None,
    progress: Progress | None = None,
) -> int:
    """Write records as CSV (with a header) or JSON Lines; return how many were written."""
    write_page = _page_writer(fileobj, format)
    written = 0
    for page in _pages(records):
        write_page(page)
        written += len(page)
        if progress is not None and written % _PROGRESS_EVERY == 0:
            progress(written, total)
    if progress is not None:
        progress(written, total)
    return written


def write_customers(
    fileobj: IO[str],
    rows: Iterable[tuple[Customer, Sequence[Contact]]],
    *,
    format: str,  # noqa: A002 - mirrors the public API's name
    total: int | None,
    progress: Progress | None = None,
) -> int:
    """`write_records()` of customers with their contacts; return how many were written."""
    records = (record_of(customer, contacts) for customer, contacts in rows)
    return write_records(fileobj, records, format=format, total=total, progress=progress)
