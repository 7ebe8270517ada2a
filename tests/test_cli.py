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


def test_duplicates_command_writes_pairs_and_html(tmp_path: Path) -> None:
    source = tmp_path / "contacts.csv"
    rows = [
        {"id": "a", "first_name": "Robert", "last_name": "Miller", "email": "bob@miller.example", "phone": "303-555-0142"},
        {"id": "b", "first_name": "Bob", "last_name": "Miller", "email": "BOB@miller.example", "phone": "(303) 555 0142"},
        {"id": "c", "first_name": "=cmd", "last_name": "Other", "email": "c@x.example", "phone": ""},
    ]
    with source.open("w", newline="", encoding="utf-8") as fileobj:
        writer = csv.DictWriter(fileobj, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out, html = tmp_path / "pairs.csv", tmp_path / "report.html"
    result = runner.invoke(
        app, ["duplicates", str(source), "--kind", "contact", "--out", str(out), "--html", str(html)]
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
