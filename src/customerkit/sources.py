"""External customer sources (rule D1): the shipped in-memory and CSV-export sources.

Any object with ``name``, ``search(query, field)`` and ``fetch(external_id)`` is a source (the
[`CustomerSource`][customerkit.ports.CustomerSource] protocol); these two cover tests, demos and
the most common DMS integration there is: a nightly CSV export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from customerkit.csvfile import open_csv, read_csv, refuse_repeated
from customerkit.errors import SourceError
from customerkit.model import SearchField, SourceHit, SourceRecord
from customerkit.search.query import SearchDocument, parse_query
from customerkit.search.rules import oracle_search

#: Source columns understood as customer fields, besides the field names themselves.
COLUMN_ALIASES: Mapping[str, str] = {
    "name": "company_name",
    "company": "company_name",
    "customer": "company_name",
    "customer_name": "company_name",
    "customer_#": "customer_number",
    "customer_no": "customer_number",
    "number": "customer_number",
    "address": "address_line1",
    "address1": "address_line1",
    "street": "address_line1",
    "address2": "address_line2",
    "zip": "postal_code",
    "zip_code": "postal_code",
    "postcode": "postal_code",
    "extension": "phone_extension",
    "ext": "phone_extension",
    "e-mail": "email",
    "email_address": "email",
}
_MAX_SOURCE_HITS = 500

__all__ = ["COLUMN_ALIASES", "CsvSource", "InMemorySource", "SourceHit", "SourceRecord"]


def _document(record: SourceRecord) -> SearchDocument:
    data = record.data
    return SearchDocument(
        id=record.external_id,
        location_id="",
        name=data.get("company_name", ""),
        city=data.get("city", ""),
        state=data.get("state", ""),
        number=data.get("customer_number", ""),
    )


class InMemorySource:  # rules S2-S5
    """A source holding its records in memory; search works like the book's search."""

    def __init__(self, name: str, records: Iterable[SourceRecord]) -> None:
        self._name = name
        self._records: dict[str, SourceRecord] = {}
        for record in records:
            if record.external_id in self._records:
                raise SourceError(
                    f"source {name!r} has two records with one id", field="external_id"
                )
            self._records[record.external_id] = record

    @property
    def name(self) -> str:
        """The source's name."""
        return self._name

    def search(self, query: str, field: SearchField = SearchField.ALL) -> list[SourceRecord]:
        """Records matching the query, ranked as the book ranks customers."""
        parsed = parse_query(query, field)
        documents = (_document(record) for record in self._records.values())
        matches = oracle_search(documents, "", parsed, limit=_MAX_SOURCE_HITS)
        return [self._records[match.customer_id] for match in matches]

    def fetch(self, external_id: str) -> SourceRecord | None:
        """The record's current data, or ``None`` when the source no longer has it."""
        return self._records.get(external_id)

    def records(self) -> list[SourceRecord]:
        """Every record, in the source's order."""
        return list(self._records.values())

    def put(self, record: SourceRecord) -> None:
        """Add or replace a record (as the DMS changes)."""
        self._records[record.external_id] = record

    def drop(self, external_id: str) -> None:
        """Forget a record (as the DMS deletes it)."""
        self._records.pop(external_id, None)


def field_name(header: str) -> str:
    """The customer field a CSV header names: ``"Company Name"`` gives ``"company_name"``.

    Headers are compared in lower case with runs of spaces as ``_``; `COLUMN_ALIASES` maps
    common DMS names (``Zip``, ``Customer #``, ...) to the field. Other headers come back
    normalised but otherwise unchanged.
    """
    key = "_".join(header.strip().lower().split())
    return COLUMN_ALIASES.get(key, key)


class CsvSource(InMemorySource):
    """A DMS's CSV export: UTF-8 with or without BOM, ``;`` or ``,`` delimited, with a header.

    Headers map to customer fields by name (``Company Name``, ``customer_number``, ``Zip``, ...;
    see `COLUMN_ALIASES`) or through ``columns``. The file is read when the source is made,
    within the limits of [`read_csv`][customerkit.csvfile.read_csv]; a bad row raises
    [`SourceError`][customerkit.SourceError] naming its line (a
    [`CsvError`][customerkit.CsvError] when the file itself is unreadable).
    """

    def __init__(
        self,
        name: str,
        path: str | Path,
        id_column: str = "customer_number",
        *,
        columns: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        super().__init__(name, self._read(name, id_column, columns or {}))

    def _read(self, name: str, id_column: str, columns: Mapping[str, str]) -> list[SourceRecord]:
        with open_csv(self.path) as fileobj:
            table = read_csv(fileobj, name=f"the export of source {name!r}")
            fields = [columns.get(column, field_name(column)) for column in table.header]
            refuse_repeated(fields, name=table.name, meaning=" (after mapping headers to fields)")
            id_field = columns.get(id_column, field_name(id_column))
            if id_field not in fields:
                raise SourceError(
                    f"the export has no {id_column!r} column to identify records by", field="path"
                )
            records, seen = [], set()
            for line, row in table.rows:
                data = {field: cell.strip() for field, cell in zip(fields, row, strict=True)}
                external_id = data[id_field]
                if not external_id:
                    raise SourceError(f"line {line} has no {id_column!r}", field="path")
                if external_id in seen:
                    raise SourceError(f"line {line} repeats an id of an earlier line", field="path")
                seen.add(external_id)
                records.append(SourceRecord(external_id=external_id, data=data))
        return records
