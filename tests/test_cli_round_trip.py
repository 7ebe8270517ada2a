"""``customerkit export`` then ``customerkit import`` reproduces the customers (memory → SQLite
and back), blanks, usernames, phones and formula-looking cells included."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import customerkit as ck
from customerkit.cli import IMPORT_FIELDS, app
from customerkit.export import neutralise, restore

ADMIN = ck.Actor(user_id="t", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
runner = CliRunner()
#: Cells a spreadsheet would run, apostrophes, separators, quotes and accents.
TRICKY = st.text(alphabet="=+-@' ,;\"aZé9", max_size=12)
PHONES = st.sampled_from(["", "+13035550142", "303-555-0142", "(808) 569 9568", "+1 808 569 9568"])


@st.composite
def drafts(draw: st.DrawFn) -> list[ck.NewCustomer]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        fleet = draw(st.booleans())
        number = draw(st.sampled_from(["", "=", "-", "'", "+", "C-"])) + str(i)
        if fleet and draw(st.booleans()):
            number = ""  # a fleet customer may have no number
        username = draw(st.sampled_from([None, f"user{i}", f"User.{i}"]))
        out.append(
            ck.NewCustomer(
                company_name=draw(TRICKY.filter(str.strip)),
                customer_number=number,
                kind=ck.CustomerKind.FLEET if fleet else ck.CustomerKind.LOCAL,
                city=draw(TRICKY),
                address_line1=draw(TRICKY),
                phone=draw(PHONES),
                email=draw(st.sampled_from(["", f"=x{i}@example.com", f"a{i}@example.com"])),
                username=username,
                extra=draw(st.dictionaries(st.sampled_from(["note", "=f"]), TRICKY, max_size=2)),
            )
        )
    return out


def stored_of(book: ck.Book) -> list[dict[str, Any]]:
    """The import fields of every customer of loc-1, in a stable order."""
    out = io.StringIO()
    book.customers.export(out, actor=ADMIN, format="jsonl")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    kept = [{k: v for k, v in row.items() if k in IMPORT_FIELDS} for row in rows]
    return sorted(kept, key=lambda row: json.dumps(row, sort_keys=True))


def stored(url: str) -> list[dict[str, Any]]:
    with ck.open_book(url) as book:
        return stored_of(book)


def cli(*args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stderr


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drafts())
def test_export_then_import_reproduces_the_customers(book_drafts: list[ck.NewCustomer]) -> None:
    memory = ck.open_book()
    try:
        memory.customers.create_many(book_drafts, actor=ADMIN)
    except ck.ValidationError:
        reject()
    expected = stored_of(memory)
    with tempfile.TemporaryDirectory() as folder:
        first, second = Path(folder, "first.db"), Path(folder, "second.db")
        exported = Path(folder, "memory.csv")
        with exported.open("w", encoding="utf-8", newline="") as fileobj:
            memory.customers.export(fileobj, actor=ADMIN)
        cli("import", str(exported), "--db", str(first))
        assert stored(f"sqlite:///{first}") == expected
        again = Path(folder, "sqlite.csv")
        cli("export", str(again), "--db", str(first))
        cli("import", str(again), "--db", str(second))
        assert stored(f"sqlite:///{second}") == expected


@given(st.text())
def test_restore_undoes_neutralise(cell: str) -> None:
    assert restore(neutralise(cell)) == cell


def test_restore_keeps_an_apostrophe_the_export_did_not_add() -> None:
    assert restore("'tis") == "'tis"
    assert restore("''tis") == "'tis"
    assert restore("'=1+1") == "=1+1"
