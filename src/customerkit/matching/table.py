"""Reading records to match into columns: mappings, attrs models or a pandas DataFrame.

Field names are the model's (``customerkit.model.Contact``,
``customerkit.model.Customer``, their ``New*`` drafts). ``None``, NaN, ``pandas.NA`` and
``NaT`` all mean missing; text is trimmed and a blank value is missing too.

A record's id is its ``id`` field (or column) as a string when present, else its position in the
input as a string (``"0"``, ``"1"``, ...), so every id in a report is a ``str``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

import attrs
import numpy as np
import numpy.typing as npt

from customerkit.errors import MatchingError
from customerkit.matching.column import Column
from customerkit.model import Contact, Customer, NewContact, NewCustomer

__all__ = [
    "ADDRESS_FIELDS",
    "CONTACT_FIELDS",
    "CUSTOMER_FIELDS",
    "DISTINCT_FIELDS",
    "TIME_FIELDS",
    "Kind",
    "RecordTable",
    "UnknownColumnsWarning",
    "field_value",
    "is_missing",
    "read_records",
    "text_value",
    "timestamp_value",
]

Kind = Literal["contact", "customer"]

#: Address fields: customers have them, and contacts may (a data set of people with addresses).
ADDRESS_FIELDS: Final = ("address_line1", "address_line2", "city", "state", "postal_code")
#: Contact fields the matcher reads (and reports side by side).
CONTACT_FIELDS: Final = ("first_name", "last_name", "email", "phone", "title", *ADDRESS_FIELDS)
#: Customer fields the matcher reads (and reports side by side).
CUSTOMER_FIELDS: Final = (
    "company_name",
    "customer_number",
    *ADDRESS_FIELDS,
    "country",
    "email",
    "phone",
)
#: Time fields the matcher reads (to propose a group's main record).
TIME_FIELDS: Final = ("last_communicated_at", "created_at")
#: Fields whose values are mostly distinct: numbering their raw text first would cost more than
#: it saves, so they stay plain lists and are normalised record by record.
DISTINCT_FIELDS: Final = frozenset({"email", "phone", "customer_number", "address_line1"})
_FEW: Final = 64
_MISSING_TYPES: Final = frozenset({"NAType", "NaTType"})


def fields_of(kind: str) -> tuple[str, ...]:
    """The fields read for ``kind`` (``"contact"`` or ``"customer"``, else ``MatchingError``)."""
    if kind == "contact":
        return CONTACT_FIELDS
    if kind == "customer":
        return CUSTOMER_FIELDS
    msg = f"kind must be 'contact' or 'customer', not {kind!r}"
    raise MatchingError(msg, field="kind")


def _model_fields() -> frozenset[str]:
    """Every field of the model's contacts and customers: known, even when not compared."""
    names: set[str] = set()
    for cls in (Contact, Customer, NewContact, NewCustomer):
        names.update(field.name for field in attrs.fields(cls))
    return frozenset(names)


_KNOWN: Final = _model_fields() | {"id", "customer_id", "location_id", "merged_into"}


def _warn_unknown(names: Iterable[str], wanted: Sequence[str]) -> None:
    """Warn about columns the matcher would otherwise drop without a word."""
    unknown = sorted({str(name) for name in names} - _KNOWN - set(wanted))
    if unknown:
        shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        warnings.warn(
            f"find_duplicates does not compare these columns: {shown}; rename them to the "
            "model's field names, or compare them with MatchConfig(comparisons=...)",
            UnknownColumnsWarning,
            stacklevel=4,
        )


class UnknownColumnsWarning(UserWarning):
    """Records given to the matcher carry columns it neither knows nor was asked to compare."""


def is_missing(value: object) -> bool:
    """Whether ``value`` means "no value": None, NaN, ``pandas.NA`` or ``NaT``."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in _MISSING_TYPES


def text_value(value: object) -> str:
    """A field value as trimmed text, ``""`` when missing."""
    if type(value) is str:
        return value.strip()
    if is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a numeric column read as float: 1001.0 is "1001"
    return str(value).strip()


def timestamp_value(value: object) -> float:
    """A time as POSIX seconds (naive times taken as UTC), NaN when missing or unreadable."""
    if value is None or is_missing(value):
        return math.nan
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return math.nan
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return math.nan
        return float(value.astype("datetime64[us]").astype(np.int64)) / 1e6
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    return math.nan


def _texts(values: list[object]) -> list[str]:
    # Most values are already strings: strip them without a function call each.
    return [value.strip() if type(value) is str else text_value(value) for value in values]


def _read_column(name: str, values: list[object]) -> Sequence[str]:
    """A field's trimmed texts: a ``Column`` when values are likely to repeat."""
    # A few records (one new record matched against an index) are quicker read as a list.
    if name in DISTINCT_FIELDS or len(values) < _FEW:
        return _texts(values)
    return _text_column(values)


def _text_column(values: list[object]) -> Column:
    """A field's values as trimmed text, numbered in the same pass (see ``Column.of``)."""
    code_of = {"": -1}
    setdefault = code_of.setdefault
    # Most values are already strings: strip them without a function call each.
    codes = [
        setdefault(value.strip() if type(value) is str else text_value(value), len(code_of) - 1)
        for value in values
    ]
    return Column(list(code_of)[1:], np.array(codes, np.int64))


_TIME_TYPES: Final = (str, datetime, np.datetime64, type(None))


def _timestamps(values: list[object]) -> npt.NDArray[np.float64]:
    """POSIX seconds per value (see ``timestamp_value``), each distinct value read once.

    Most books leave many times blank, and a time read once per distinct value saves a parse per
    record; values of other types (numbers, where ``1 == True``) are read one by one.
    """
    try:
        distinct = dict.fromkeys(values)
    except TypeError:  # unhashable
        distinct = {}
    if not distinct or not all(
        type(value) in _TIME_TYPES or is_missing(value) for value in distinct
    ):
        return np.fromiter(map(timestamp_value, values), np.float64, len(values))
    seconds = {value: timestamp_value(value) for value in distinct}
    return np.fromiter(map(seconds.__getitem__, values), np.float64, len(values))


def _ids(values: list[object]) -> list[str]:
    """Each record's id: its ``id`` as trimmed text, else its position."""
    if all(type(value) is str for value in values):
        return [value.strip() for value in cast("list[str]", values)]
    return [
        str(position) if is_missing(value) else text_value(value)
        for position, value in enumerate(values)
    ]


def _originals(values: list[object], ids: list[str]) -> list[object]:
    """Each record's id as given, its position where it has none."""
    return [
        position if is_missing(value) else value
        for position, (value, _) in enumerate(zip(values, ids, strict=True))
    ]


def field_value(record: object, name: str) -> object:
    """The value of field ``name`` of a mapping or an object (``None`` when it has none)."""
    if isinstance(record, Mapping):
        return record.get(name)
    return getattr(record, name, None)


def _is_dataframe(records: object) -> bool:
    return type(records).__module__.startswith("pandas") and hasattr(records, "columns")


def _as_rows(records: Iterable[object]) -> Iterable[object]:
    """A polars DataFrame or an Arrow table as a list of dicts (iterating them gives columns)."""
    module = type(records).__module__.split(".", 1)[0]
    if module == "polars" and hasattr(records, "to_dicts"):
        return cast("list[object]", records.to_dicts())
    if module == "pyarrow" and hasattr(records, "to_pylist"):
        return cast("list[object]", records.to_pylist())
    if module in {"polars", "pyarrow"}:
        msg = f"a {module} {type(records).__name__} is not a table of records; pass a DataFrame"
        raise MatchingError(msg, field="records")
    return records


def _refuse_non_records(records: object) -> None:
    """Refuse inputs that iterate as something other than records (column names, characters)."""
    if isinstance(records, str | bytes | Mapping):
        msg = "records must be an iterable of records (mappings or models), not one value"
        raise MatchingError(msg, field="records")


def _frame_column(frame: Any, name: str, size: int) -> list[object]:
    if name in frame.columns:
        return list(frame[name].tolist())
    return [None] * size


def _record_column(rows: Sequence[object], name: str, *, plain: bool) -> list[object]:
    if plain:  # every row is a dict: skip the per-row type check
        return [row.get(name) for row in rows]  # type: ignore[attr-defined]
    return [field_value(row, name) for row in rows]


@attrs.frozen(kw_only=True, eq=False)
class RecordTable:
    """Records read into columns.

    Attributes:
        kind: ``"contact"`` or ``"customer"``.
        ids: One id per record (see the module docs).
        columns: Field -> trimmed text per record, ``""`` for missing: a ``Column`` of
            distinct values, or a plain list for the fields in ``DISTINCT_FIELDS``.
        scopes: The scope value per record (``""`` for none), or None when not scoped.
        originals: Each record's id as given (an int, a DataFrame index label), or None when
            the ids are the texts themselves.
        last_contacted: POSIX seconds of ``last_communicated_at``, NaN for missing.
        created: POSIX seconds of ``created_at``, NaN for missing.
    """

    kind: Kind
    ids: list[str]
    columns: dict[str, Sequence[str]]
    originals: list[object] | None
    scopes: Column | None
    last_contacted: npt.NDArray[np.float64]
    created: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ids)

    def filled(self, field: str) -> npt.NDArray[np.bool_]:
        """Whether each record has a value for ``field``."""
        column = self.columns[field]
        if type(column) is Column:
            return column.codes >= 0
        return np.fromiter(map(bool, column), np.bool_, len(column))


def read_records(
    records: Iterable[object],
    *,
    kind: Kind,
    scope: str | None,
    extras: Sequence[str] = (),
    warn: bool = False,
    unique_ids: bool = True,
) -> RecordTable:
    """Read mappings, attrs records or a DataFrame into a ``RecordTable``.

    Args:
        records: The records.
        kind: ``"contact"`` or ``"customer"``.
        scope: A field whose value partitions the records (``"customer_id"``), or None.
        extras: Further columns to read (those of extra comparisons).
        warn: Warn (``UnknownColumnsWarning``) about columns that are not read.
        unique_ids: Refuse two records with one id. Off for a part of the records (a Spark
            batch), whose caller checks the ids of the whole.

    Returns:
        The columns of the records.

    Raises:
        MatchingError: Two records have the same id, or ``records`` is not records.
    """
    fields = (*fields_of(kind), *(name for name in extras if name not in fields_of(kind)))
    wanted = (*fields, *TIME_FIELDS, "id", *((scope,) if scope else ()))
    raw: dict[str, list[object]]
    if _is_dataframe(records):
        size = len(records)  # type: ignore[arg-type]
        if warn:
            _warn_unknown(records.columns, wanted)  # type: ignore[attr-defined]
        raw = {name: _frame_column(records, name, size) for name in wanted}
        if "id" not in records.columns:  # type: ignore[attr-defined]
            raw["id"] = list(records.index.tolist())  # type: ignore[attr-defined]
    else:
        records = _as_rows(records)
        _refuse_non_records(records)
        rows = records if isinstance(records, Sequence) else list(records)
        plain = all(type(row) is dict for row in rows)
        if warn and plain and rows:
            dicts = cast("list[dict[str, object]]", rows[:1000])
            _warn_unknown({key for row in dicts for key in row}, wanted)
        raw = {name: _record_column(rows, name, plain=plain) for name in wanted}
    ids = _ids(raw["id"])
    originals = None if all(type(v) is str for v in raw["id"]) else _originals(raw["id"], ids)
    if unique_ids and len(set(ids)) != len(ids):
        msg = "records have duplicate ids; give each record a unique id (or none at all)"
        raise MatchingError(msg, field="id")
    return RecordTable(
        kind=kind,
        ids=ids,
        originals=originals,
        columns={name: _read_column(name, raw[name]) for name in fields},
        scopes=_text_column(raw[scope]) if scope else None,
        last_contacted=_timestamps(raw["last_communicated_at"]),
        created=_timestamps(raw["created_at"]),
    )
