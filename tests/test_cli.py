"""The command line: no data loss, no silent nothing, one-line errors, data on stdout.

Most tests go through typer's runner (stdout and stderr apart); the ``subprocess`` ones run
``python -m customerkit`` as a user would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import customerkit as ck
from customerkit.cli import app, book_url

runner = CliRunner()
ADMIN = ck.Actor(user_id="t", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
SRC = str(Path(ck.__file__).resolve().parents[1])


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def one_line_error(stderr: str) -> str:
    """The error line, checked to be the last line and the only error (notes may come first)."""
    lines = stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], stderr
    assert "Traceback" not in stderr
    return lines[-1]


def write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fileobj:
        writer = csv.DictWriter(fileobj, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


CONTACTS = [
    {"id": "a", "first_name": "Robert", "last_name": "Miller", "email": "bob@miller.example"},
    {"id": "b", "first_name": "Bob", "last_name": "Miller", "email": "BOB@miller.example"},
    {"id": "c", "first_name": "=cmd", "last_name": "Other", "email": "c@x.example"},
]


def customers_of(url: str) -> list[dict[str, object]]:
    """Every customer of loc-1 in the book, as the JSON Lines export has them."""
    out = io.StringIO()
    with ck.open_book(url) as book:
        book.customers.export(out, actor=ADMIN, format="jsonl")
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- demo: no data loss ------------------------------------------------------------------------


def test_demo_in_memory_loads_searches_and_summarises() -> None:
    code, out, err = run("demo", "--size", "300", "--db", "memory://")
    assert code == 0, err
    assert "Loaded 300 customers" in err
    assert "Likely duplicates" in out


def test_demo_uses_its_own_book_and_runs_twice(in_tmp: Path) -> None:
    assert run("demo", "--size", "150")[0] == 0
    code, _, err = run("demo", "--size", "150")
    assert code == 0, err
    assert (in_tmp / "customerkit-demo.db").exists()
    assert not (in_tmp / "customerkit.db").exists()
    code, out, err = run("search", "tires", "--db", "customerkit-demo.db", "--format", "csv")
    assert code == 0, err
    assert len(out.splitlines()) > 1


def test_demo_never_replaces_a_book_it_did_not_make(in_tmp: Path) -> None:
    mine = write_csv(in_tmp / "mine.csv", [{"company_name": "Mine Co", "customer_number": "M-1"}])
    assert run("import", str(mine), "--db", "book.db")[0] == 0
    before = (in_tmp / "book.db").read_bytes()
    code, _, err = run("demo", "--size", "100", "--db", "book.db")
    assert code == 1
    assert "did not make" in one_line_error(err)
    assert (in_tmp / "book.db").read_bytes() == before
    code, out, _ = run("search", "mine", "--db", "book.db", "--format", "csv")
    assert code == 0
    assert "Mine Co" in out


def test_demo_refuses_a_file_that_is_not_a_book(in_tmp: Path) -> None:
    (in_tmp / "notes.db").write_text("my notes", encoding="utf-8")
    code, _, err = run("demo", "--db", "notes.db")
    assert code == 1
    one_line_error(err)
    assert (in_tmp / "notes.db").read_text(encoding="utf-8") == "my notes"


# -- read-only commands never create a book ----------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["search", "farm"],
        ["export", "out.csv"],
        ["history", "c1"],
        ["contacts", "list", "c1"],
        ["contacts", "unused", "c1"],
    ],
)
def test_read_commands_on_a_missing_book_fail_naming_it(in_tmp: Path, command: list[str]) -> None:
    code, out, err = run(*command, "--db", "sqlite:///typo.db")
    assert code == 1
    assert "'typo.db'" in one_line_error(err)
    assert out == ""
    assert not (in_tmp / "typo.db").exists()
    assert not (in_tmp / "out.csv").exists()


def test_db_urls_a_user_types_are_understood() -> None:
    assert book_url("dealer.db") == "sqlite:///dealer.db"
    assert book_url("postgres://u@h/ck") == "postgresql+psycopg://u@h/ck"
    assert book_url("postgresql://u@h/ck") == "postgresql+psycopg://u@h/ck"
    assert book_url("memory://") == "memory://"
    assert book_url("sqlite:///x.db") == "sqlite:///x.db"


def test_an_unknown_database_kind_is_one_line(in_tmp: Path) -> None:
    code, _, err = run("search", "farm", "--db", "oracle://x/y")
    assert code == 1
    one_line_error(err)


def test_a_password_in_the_url_is_never_printed() -> None:
    code, _, err = run("search", "farm", "--db", "postgres://crm:s3cret@127.0.0.1:1/crm")
    assert code == 1
    line = one_line_error(err)
    assert "s3cret" not in line
    assert "crm:***@" in line


def test_a_wrong_location_says_so(in_tmp: Path) -> None:
    mine = write_csv(in_tmp / "mine.csv", [{"company_name": "Farm Co", "customer_number": "F-1"}])
    assert run("import", str(mine), "--db", "book.db")[0] == 0
    code, out, err = run("search", "farm", "--db", "book.db", "--location", "loc-9")
    assert code == 1
    assert "'loc-9'" in one_line_error(err)
    assert out == ""
    for command in (["export", "x.csv"], ["history", "c1"], ["contacts", "list", "c1"]):
        code, _, err = run(*command, "--db", "book.db", "--location", "loc-9")
        assert code == 1
        assert "--location" in one_line_error(err)


# -- duplicates: no silent nothing -------------------------------------------------------------


def test_duplicates_prints_pairs_on_stdout_and_writes_files(in_tmp: Path) -> None:
    source = write_csv(in_tmp / "contacts.csv", CONTACTS)
    code, out, err = run(
        "duplicates", str(source), "--out", "pairs.csv", "--html", "r.html", "--format", "csv"
    )
    assert code == 0, err
    assert [row[:2] for row in csv.reader(io.StringIO(out))] == [
        ["left_id", "right_id"],
        ["a", "b"],
    ]
    assert "1 duplicate pairs" in err
    with (in_tmp / "pairs.csv").open(encoding="utf-8", newline="") as fileobj:
        assert [(p["left_id"], p["right_id"]) for p in csv.DictReader(fileobj)] == [("a", "b")]
    assert "<table" in (in_tmp / "r.html").read_text(encoding="utf-8")


def test_duplicates_reads_a_semicolon_file_and_stdin(in_tmp: Path) -> None:
    source = write_csv(in_tmp / "contacts.csv", CONTACTS, delimiter=";")
    code, out, _ = run("duplicates", str(source), "--format", "json")
    assert code == 0
    assert [(p["left_id"], p["right_id"]) for p in json.loads(out)] == [("a", "b")]
    code, out, _ = run("duplicates", "-", "--format", "json", stdin=source.read_text("utf-8"))
    assert code == 0
    assert len(json.loads(out)) == 1


def test_unrecognised_columns_are_an_error_not_zero_pairs(in_tmp: Path) -> None:
    source = in_tmp / "x.csv"
    source.write_text("first,last,mail\nBob,Miller,b@x.example\nBob,Miller,b@x.example\n", "utf-8")
    code, out, err = run("duplicates", str(source))
    assert code == 1
    assert "first_name" in one_line_error(err)
    assert out == ""


def test_wrong_kind_gets_a_hint(in_tmp: Path) -> None:
    source = write_csv(in_tmp / "c.csv", CONTACTS)
    code, _, err = run("duplicates", str(source), "--kind", "customer")
    assert code == 0
    assert "--kind contact" in err
    code, _, err = run("duplicates", str(source), "--kind", "vehicle")
    assert code == 2
    assert "--kind" in err


def test_unknown_scope_is_a_usage_error(in_tmp: Path) -> None:
    source = write_csv(in_tmp / "c.csv", CONTACTS)
    code, _, err = run("duplicates", str(source), "--scope", "customer")
    assert code == 2
    assert "'customer'" in one_line_error(err)


def test_scope_and_threshold_reach_the_matcher(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{**row, "customer_id": cid} for row, cid in zip(CONTACTS, "xyx", strict=True)]
    source = write_csv(in_tmp / "c.csv", rows)
    code, out, _ = run("duplicates", str(source), "--scope", "customer_id", "--format", "json")
    assert (code, json.loads(out)) == (0, [])  # a and b belong to different customers
    seen: list[object] = []
    real = ck.find_duplicates

    def spy(records: object, **kwargs: object) -> ck.DuplicateReport:
        seen.append(kwargs["config"])
        return real(records, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ck, "find_duplicates", spy)
    assert run("duplicates", str(source), "--threshold", "0.8")[0] == 0
    assert seen == [ck.MatchConfig(threshold=0.8)]
    assert run("duplicates", str(source), "--threshold", "2")[0] == 2


def test_duplicate_id_columns_are_refused(in_tmp: Path) -> None:
    source = in_tmp / "c.csv"
    source.write_text("id,first_name,last_name,id\n1,a,b,2\n", encoding="utf-8")
    code, _, err = run("duplicates", str(source))
    assert code == 1
    assert "'id'" in one_line_error(err)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("first_name,last_name\n\xe9t\xe9,x\n".encode("cp1252"), "not UTF-8"),
        (b'company_name,first_name\n"cut', "cut off"),
        (b"\0" * 4096, "NUL"),
    ],
)
def test_unreadable_files_are_one_line_errors(in_tmp: Path, content: bytes, expected: str) -> None:
    (in_tmp / "bad.csv").write_bytes(content)
    for command in (["duplicates", "bad.csv"], ["import", "bad.csv", "--db", "b.db"]):
        code, _, err = run(*command)
        assert code == 1
        assert expected in one_line_error(err)
    assert not (in_tmp / "b.db").exists()


def test_missing_file_is_one_line(in_tmp: Path) -> None:
    code, _, err = run("duplicates", "nope.csv")
    assert code == 1
    assert "nope.csv" in one_line_error(err)


# -- import / export ---------------------------------------------------------------------------


def test_export_to_stdout_and_import_from_stdin(in_tmp: Path) -> None:
    mine = write_csv(
        in_tmp / "mine.csv",
        [
            {
                "company_name": "=Risky Co",
                "customer_number": "R-1",
                "kind": "",
                "phone": "+13035550142",
            },
            {"company_name": "Fleet Co", "customer_number": "", "kind": "FLEET", "phone": ""},
        ],
    )
    assert run("import", str(mine), "--db", "a.db")[0] == 0
    code, out, err = run("export", "-", "--db", "a.db")
    assert code == 0, err
    assert "Exported 2" in err
    assert out.startswith("id,location_id")
    assert not (in_tmp / "-").exists()
    code, _, err = run("import", "-", "--db", "b.db", stdin=out)
    assert code == 0, err
    copied = customers_of("sqlite:///b.db")
    assert sorted((c["company_name"], c["customer_number"], c["phone"]) for c in copied) == [
        ("=Risky Co", "R-1", "+13035550142"),
        ("Fleet Co", "", ""),
    ]


def test_import_errors_name_lines_and_import_nothing(in_tmp: Path) -> None:
    rows = [{"company_name": "A", "customer_number": ""}] * 30
    source = write_csv(in_tmp / "x.csv", rows)
    code, _, err = run("import", str(source), "--db", "b.db")
    assert code == 1
    line = one_line_error(err)
    assert "line 2: customer_number" in line
    assert "and 25 more" in line
    assert len(line) < 1000
    assert customers_of("sqlite:///b.db") == []


def test_import_failing_after_a_chunk_was_stored_imports_nothing(in_tmp: Path) -> None:
    """The file is stored as it is read: a bad row after the first chunk of 5,000 undoes
    them all, and a book file made for the import goes with them."""
    rows = [
        {"company_name": f"Co {i}", "customer_number": f"N{i}", "kind": ""} for i in range(5100)
    ]
    rows.append({"company_name": "Bad", "customer_number": "B-1", "kind": "PARTNER"})
    source = write_csv(in_tmp / "x.csv", rows)
    code, _, err = run("import", str(source), "--db", "new.db")
    assert code == 1
    assert "line 5102: kind must be LOCAL or FLEET" in one_line_error(err)
    assert not (in_tmp / "new.db").exists()
    kept = write_csv(in_tmp / "k.csv", [{"company_name": "Kept", "customer_number": "K-1"}])
    assert run("import", str(kept), "--db", "old.db")[0] == 0
    assert run("import", str(source), "--db", "old.db")[0] == 1
    assert [c["company_name"] for c in customers_of("sqlite:///old.db")] == ["Kept"]


def test_import_without_a_name_column_says_so(in_tmp: Path) -> None:
    source = in_tmp / "x.csv"
    source.write_text("first,last\na,b\n", encoding="utf-8")
    code, _, err = run("import", str(source), "--db", "b.db")
    assert code == 1
    assert "company_name" in one_line_error(err)


# -- other commands ----------------------------------------------------------------------------


def _seed_book(path: Path) -> tuple[str, str, str]:
    with ck.open_book(f"sqlite:///{path}") as book:
        a = book.customers.create(
            ck.NewCustomer(company_name="Miller Trucking", customer_number="M-1"), actor=ADMIN
        )
        b = book.customers.create(
            ck.NewCustomer(company_name="Miller Trucking Inc", customer_number="M-2"), actor=ADMIN
        )
        k = book.contacts.add(a.id, ck.NewContact(first_name="Ann", last_name="Lee"), actor=ADMIN)
    return a.id, b.id, k.id


def test_merge_unmerge_history_and_contacts(in_tmp: Path) -> None:
    a, b, k = _seed_book(in_tmp / "book.db")
    code, out, err = run("merge", a, b, "--db", "book.db")
    assert code == 0, err
    merge_id = out.strip()
    assert merge_id
    assert f"unmerge {merge_id}" in err
    code, out, _ = run("history", a, "--db", "book.db", "--format", "json")
    assert code == 0
    assert "merge" in [entry["action"] for entry in json.loads(out)]
    code, out, _ = run("contacts", "list", a, "--db", "book.db", "--format", "csv")
    assert code == 0
    assert k in out  # the full id, not cut at 80 columns
    code, _, err = run("unmerge", merge_id, "--db", "book.db")
    assert code == 0, err
    code, out, _ = run("search", "miller", "--db", "book.db", "--format", "json")
    assert sorted(hit["id"] for hit in json.loads(out)) == sorted([a, b])


def test_tables_off_a_terminal_show_full_ids(in_tmp: Path) -> None:
    a, _, _ = _seed_book(in_tmp / "book.db")
    code, out, _ = run("search", "miller", "--db", "book.db")
    assert code == 0
    assert a in out


def test_library_errors_exit_1_with_one_line() -> None:
    code, out, err = run("search", "jo", "--db", "memory://")
    assert code == 1
    assert "3 characters" in one_line_error(err)
    assert out == ""


def test_source_import_then_unused_contacts(in_tmp: Path) -> None:
    export = in_tmp / "dms.csv"
    export.write_text("Customer #;Company Name;City\nP-1;Miller Trucking;Salina\n", "utf-8")
    code, _, err = run("source", "import", str(export), "--db", "book.db")
    assert code == 0, err
    assert "Imported 1 customers" in err
    code, _, err = run("source", "import", str(export), "--db", "book.db")
    assert "1 were imported before" in err
    code, _, err = run("contacts", "unused", "nope", "--db", "book.db")
    assert code == 1
    assert "no customer" in one_line_error(err)


def test_help_has_no_boolean_noise() -> None:
    code, out, _ = run("demo", "--help")
    assert code == 0
    assert "--no-" not in out
    assert "<bool>" not in out
    code, out, _ = run("search", "--help")
    assert "--fuzzy" in out
    assert "--no-fuzzy" not in out


def test_debug_shows_the_traceback() -> None:
    result = runner.invoke(app, ["--debug", "search", "jo", "--db", "memory://"])
    assert isinstance(result.exception, ck.QueryTooShort)


# -- as a user runs it -------------------------------------------------------------------------


def python_m(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "customerkit", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_subprocess_version_errors_and_pipes(tmp_path: Path) -> None:
    version = python_m("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"customerkit {ck.__version__}")
    missing = python_m("search", "farm", cwd=tmp_path)
    assert missing.returncode == 1
    assert "customerkit.db" in one_line_error(missing.stderr)
    assert missing.stdout == ""
    assert not (tmp_path / "customerkit.db").exists()
    usage = python_m("duplicates", "x.csv", "--kind", "vehicle", cwd=tmp_path)
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr
    source = write_csv(tmp_path / "c.csv", CONTACTS)
    piped = python_m("duplicates", "-", "--format", "csv", cwd=tmp_path, stdin=source.read_text())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[1].startswith("a,b,")
    assert "duplicate pairs" in piped.stderr


def test_subprocess_without_the_cli_extra_names_it(tmp_path: Path) -> None:
    code = "import sys; sys.modules['typer'] = None; import runpy; runpy.run_module('customerkit', run_name='__main__')"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "customerkit[cli]" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_subprocess_output_closed_early_stops_quietly(tmp_path: Path) -> None:
    """``customerkit export - | head -1``: no traceback, no "Exception ignored".

    loc-1 gets over 1,000 customers, so the export writes a second page after the reader left.
    """
    assert python_m("demo", "--size", "2600", "--db", "book.db", cwd=tmp_path).returncode == 0
    with subprocess.Popen(
        [sys.executable, "-m", "customerkit", "export", "-", "--db", "book.db"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline().startswith("id,")
        process.stdout.close()
        stderr = process.stderr.read()
        assert process.wait(timeout=120) in (0, 1)
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    assert "error" not in stderr


def test_demo_keeps_a_demo_book_someone_else_changed(in_tmp: Path) -> None:
    assert run("demo", "--size", "100", "--db", "mixed.db")[0] == 0
    mine = write_csv(in_tmp / "mine.csv", [{"company_name": "Mine Co", "customer_number": "M-1"}])
    assert run("import", str(mine), "--db", "mixed.db")[0] == 0
    code, _, err = run("demo", "--size", "100", "--db", "mixed.db")
    assert code == 1
    assert "did not make" in one_line_error(err)
    code, out, _ = run("search", "mine", "--db", "mixed.db", "--format", "csv")
    assert "Mine Co" in out


def test_contacts_export_feeds_duplicates(in_tmp: Path) -> None:
    a, _, k = _seed_book(in_tmp / "book.db")
    with ck.open_book("sqlite:///book.db") as book:
        book.contacts.add(a, ck.NewContact(first_name="Ann", last_name="Lee"), actor=ADMIN)
    code, out, err = run("contacts", "export", "-", "--db", "book.db")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["customer_id"] for row in rows] == [a, a]
    assert k in [row["id"] for row in rows]
    assert "Exported 2 contacts of 2 customers" in err
    code, out, err = run("duplicates", "-", "--scope", "customer_id", "--format", "json", stdin=out)
    assert code == 0, err
    assert "ignoring" not in err  # every exported column means something to the matcher
    assert len(json.loads(out)) == 1


def test_a_failed_export_keeps_the_previous_file(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from customerkit.services.customers import CustomerService

    _seed_book(in_tmp / "book.db")
    (in_tmp / "out.csv").write_text("last good export\n", encoding="utf-8")

    def broken(self: object, fileobj: io.StringIO, **kwargs: object) -> int:
        fileobj.write("id,half a file\n")
        raise ck.BookBusy

    monkeypatch.setattr(CustomerService, "export", broken)
    code, _, err = run("export", "out.csv", "--db", "book.db")
    assert code == 1
    assert "busy" in one_line_error(err)
    assert (in_tmp / "out.csv").read_text(encoding="utf-8") == "last good export\n"
    assert sorted(p.name for p in in_tmp.iterdir()) == ["book.db", "out.csv"]


def test_import_names_the_line_of_a_number_taken(in_tmp: Path) -> None:
    rows = [
        {"company_name": "A Co", "customer_number": "A-1"},
        {"company_name": "B Co", "customer_number": "B-1"},
    ]
    source = write_csv(in_tmp / "x.csv", rows)
    assert run("import", str(source), "--db", "b.db")[0] == 0
    rows[0]["customer_number"] = "Z-9"
    write_csv(source, rows)
    code, _, err = run("import", str(source), "--db", "b.db")
    assert code == 1
    assert one_line_error(err).startswith("error: line 3: customer_number:")
    rows[1]["customer_number"] = "z 9"
    write_csv(source, rows)
    code, _, err = run("import", str(source), "--db", "c.db")
    assert code == 1
    assert "line 3: customer_number: line 2 has this number" in one_line_error(err)
    assert not (in_tmp / "c.db").exists()
    assert len(customers_of("sqlite:///b.db")) == 2


def test_import_names_the_line_of_a_username_taken(in_tmp: Path) -> None:
    rows = [
        {"company_name": "A Co", "customer_number": "A-1", "username": "alice"},
        {"company_name": "B Co", "customer_number": "B-1", "username": "bob"},
    ]
    source = write_csv(in_tmp / "x.csv", rows)
    assert run("import", str(source), "--db", "b.db")[0] == 0
    # Held by a customer of the book: the row that brings it is named, whatever its case.
    rows = [
        {"company_name": "C Co", "customer_number": "C-1", "username": "carol"},
        {"company_name": "D Co", "customer_number": "D-1", "username": "BOB"},
    ]
    write_csv(source, rows)
    code, _, err = run("import", str(source), "--db", "b.db")
    assert code == 1
    assert one_line_error(err).startswith("error: line 3: username: a customer of the book")
    # Twice in the file: both lines are named, before anything is written.
    rows[0]["username"] = "Bob"
    write_csv(source, rows)
    code, _, err = run("import", str(source), "--db", "c.db")
    assert code == 1
    assert "line 3: username: line 2 has this username already" in one_line_error(err)
    assert not (in_tmp / "c.db").exists()
    assert len(customers_of("sqlite:///b.db")) == 2
