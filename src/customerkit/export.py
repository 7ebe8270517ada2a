"""Streaming customer export to CSV or JSON Lines (rule C8).

Rows are written as they are read, so memory stays flat at any size. In CSV, a cell starting
with ``= + - @``, a tab, CR or LF gets a leading apostrophe so no spreadsheet runs it as a
formula (OWASP CSV injection); the apostrophe is never a tab (CVE-2021-41270). A cell that
starts with an apostrophe gets one more, so removing one leading apostrophe always gives the
stored value back. JSON Lines keeps
values exactly, since JSON readers run nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import IO, Any

from customerkit.model import Contact, Customer
from customerkit.ports import Progress

#: Export columns in order; starts with lower-case ``id`` (a file starting "ID" reads as SYLK).
COLUMNS: tuple[str, ...] = (
    "id",
    "location_id",
    "kind",
    "company_name",
    "customer_number",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
    "email",
    "phone",
    "phone_extension",
    "fax",
    "alternate_emails",
    "alternate_phones",
    "company_type",
    "category",
    "username",
    "extra",
    "assigned_staff",
    "source",
    "source_external_id",
    "created_at",
    "updated_at",
    "version",
    "contact_names",
    "contact_emails",
    "contact_phones",
)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
#: Cells starting with these get the apostrophe: the triggers, and the apostrophe itself so that
#: "remove one leading apostrophe" always gives the stored value back.
_PREFIXED = (*FORMULA_TRIGGERS, "'")
_PROGRESS_EVERY = 1000


def neutralise(cell: str) -> str:
    """Prefix a cell a spreadsheet would treat as a formula with an apostrophe.

    >>> neutralise("=1+1")
    "'=1+1"
    """
    return "'" + cell if cell.startswith(_PREFIXED) else cell


def customer_row(customer: Customer, contacts: Sequence[Contact]) -> dict[str, Any]:
    """One export row: every field but the password hash, staff, and the live contacts."""
    live = [contact for contact in contacts if contact.is_live]
    return {
        "id": customer.id,
        "location_id": customer.location_id,
        "kind": customer.kind.value,
        "company_name": customer.company_name,
        "customer_number": customer.customer_number,
        "address_line1": customer.address_line1,
        "address_line2": customer.address_line2,
        "city": customer.city,
        "state": customer.state,
        "postal_code": customer.postal_code,
        "country": customer.country,
        "email": customer.email,
        "phone": customer.phone,
        "phone_extension": customer.phone_extension,
        "fax": customer.fax,
        "alternate_emails": list(customer.alternate_emails),
        "alternate_phones": list(customer.alternate_phones),
        "company_type": customer.company_type or "",
        "category": customer.category or "",
        "username": customer.username or "",
        "assigned_staff": list(customer.assigned_staff),
        "source": customer.source.source if customer.source else "",
        "source_external_id": customer.source.external_id if customer.source else "",
        "created_at": customer.created_at.isoformat(),
        "updated_at": customer.updated_at.isoformat(),
        "version": customer.version,
        "contact_names": [contact.full_name for contact in live],
        "contact_emails": [contact.email for contact in live],
        "contact_phones": [contact.phone for contact in live],
        "extra": dict(customer.extra),
    }


def _csv_cell(value: Any) -> str:
    if isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    elif isinstance(value, list):
        text = "; ".join(value)
    else:
        text = str(value)
    return neutralise(text)


def write_customers(
    fileobj: IO[str],
    rows: Iterable[tuple[Customer, Sequence[Contact]]],
    *,
    format: str,  # noqa: A002 - mirrors the public API's name
    total: int | None,
    progress: Progress | None = None,
) -> int:
    """Write rows as CSV (with a header) or JSON Lines; return how many were written."""
    writer = csv.writer(fileobj, lineterminator="\r\n") if format == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    written = 0
    for customer, contacts in rows:
        row = customer_row(customer, contacts)
        if writer is not None:
            writer.writerow([_csv_cell(row[column]) for column in COLUMNS])
        else:
            fileobj.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        written += 1
        if progress is not None and written % _PROGRESS_EVERY == 0:
            progress(written, total)
    if progress is not None:
        progress(written, total)
    return written
