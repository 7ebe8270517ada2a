"""The command line: demo, duplicates, and clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from customerkit.cli import app

runner = CliRunner()


def test_demo_loads_searches_and_summarises() -> None:
    result = runner.invoke(app, ["demo", "--size", "300", "--db", "memory://"])
    assert result.exit_code == 0, result.output
    assert "Loaded 300 customers" in result.output
    assert "Likely duplicates" in result.output


def test_cli_works_on_a_book_file(tmp_path: Path) -> None:
    """The embedded default is an SQLite file: demo, then search and export it."""
    db = f"sqlite:///{tmp_path / 'book.db'}"
    assert runner.invoke(app, ["demo", "--size", "200", "--db", db]).exit_code == 0
    again = runner.invoke(app, ["demo", "--size", "200", "--db", db])  # --fresh by default
    assert again.exit_code == 0, again.output
    found = runner.invoke(app, ["search", "farm", "--db", db])
    assert found.exit_code == 0, found.output
    out = tmp_path / "export.csv"
    exported = runner.invoke(app, ["export", str(out), "--db", db])
    assert exported.exit_code == 0, exported.output
    with out.open(encoding="utf-8", newline="") as fileobj:
        rows = list(csv.DictReader(fileobj))
    assert len(rows) > 20
    assert all(not row["company_name"].startswith(("=", "+", "-", "@")) for row in rows)


def test_source_import_then_unused_contacts(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'book.db'}"
    export = tmp_path / "dms.csv"
    export.write_text(
        "Customer #;Company Name;City\nP-1;Miller Trucking;Salina\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["source", "import", str(export), "--db", db])
    assert result.exit_code == 0, result.output
    assert "Imported 1 customers" in result.output
    result = runner.invoke(app, ["source", "import", str(export), "--db", db])
    assert "1 were imported before" in result.output
    listed = runner.invoke(app, ["contacts", "unused", "nope", "--db", db])
    assert listed.exit_code == 1
    assert "no customer" in listed.output


def test_duplicates_command_writes_pairs_and_html(tmp_path: Path) -> None:
    source = tmp_path / "contacts.csv"
    rows = [
        {
            "id": "a",
            "first_name": "Robert",
            "last_name": "Miller",
            "email": "bob@miller.example",
            "phone": "303-555-0142",
        },
        {
            "id": "b",
            "first_name": "Bob",
            "last_name": "Miller",
            "email": "BOB@miller.example",
            "phone": "(303) 555 0142",
        },
        {
            "id": "c",
            "first_name": "=cmd",
            "last_name": "Other",
            "email": "c@x.example",
            "phone": "",
        },
    ]
    with source.open("w", newline="", encoding="utf-8") as fileobj:
        writer = csv.DictWriter(fileobj, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out, html = tmp_path / "pairs.csv", tmp_path / "report.html"
    result = runner.invoke(
        app,
        ["duplicates", str(source), "--kind", "contact", "--out", str(out), "--html", str(html)],
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as fileobj:
        pairs = list(csv.DictReader(fileobj))
    assert [(p["left_id"], p["right_id"]) for p in pairs] == [("a", "b")]
    assert "<table" in html.read_text(encoding="utf-8")


def test_unknown_kind_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    source.write_text("id\n1\n", encoding="utf-8")
    result = runner.invoke(app, ["duplicates", str(source), "--kind", "vehicle"])
    assert result.exit_code == 2
    assert "--kind" in result.output


def test_library_errors_exit_1_with_message() -> None:
    result = runner.invoke(app, ["search", "jo", "--db", "memory://"])
    assert result.exit_code == 1
    assert "3 characters" in result.output
