"""Bounded CSV input (issue 14 item 8): nothing is read without limit, nothing silently wins."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

import customerkit as ck
from customerkit.csvfile import MAX_COLUMNS, MAX_LINE, open_csv, read_csv


def rows_of(text: str) -> tuple[tuple[str, ...], list[tuple[int, list[str]]]]:
    table = read_csv(io.StringIO(text, newline=""), name="t.csv")
    return table.header, list(table.rows)


def test_reads_header_and_rows_with_line_numbers_skipping_blank_lines() -> None:
    header, rows = rows_of('id,name\r\n1,"Miller, Bob"\r\n\r\n2,"two\nlines"\r\n')
    assert header == ("id", "name")
    assert rows == [(2, ["1", "Miller, Bob"]), (5, ["2", "two\nlines"])]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_sniffs_the_delimiter_from_the_header(delimiter: str) -> None:
    header, rows = rows_of(f"a{delimiter}b\n1{delimiter}2\n")
    assert header == ("a", "b")
    assert rows == [(2, ["1", "2"])]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_dev_zero_is_refused_after_one_bounded_line() -> None:
    with open_csv("/dev/zero") as fileobj, pytest.raises(ck.CsvError, match="longer than"):
        read_csv(fileobj, name="/dev/zero")


def test_random_bytes_are_refused_as_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "noise.csv"
    path.write_bytes(b"id,name\n" + bytes(range(128, 256)) * 64)
    with open_csv(path) as fileobj, pytest.raises(ck.CsvError, match="not UTF-8"):
        list(read_csv(fileobj, name="noise.csv").rows)


@pytest.mark.skipif(not Path("/dev/urandom").exists(), reason="needs /dev/urandom")
def test_dev_urandom_is_refused() -> None:
    with open_csv("/dev/urandom") as fileobj, pytest.raises(ck.CsvError):
        list(read_csv(fileobj, name="/dev/urandom").rows)


def test_a_line_over_the_limit_is_refused() -> None:
    with pytest.raises(ck.CsvError, match=f"line 2 of t\\.csv is longer than {MAX_LINE}"):
        rows_of("id,name\n1," + "x" * MAX_LINE + "\n")


def test_a_cell_over_the_field_limit_is_a_csv_error_not_a_raw_one() -> None:
    # Short lines, one quoted cell spanning them: only the field limit stops it.
    cell = ("y" * 1000 + "\n") * (csv.field_size_limit() // 1000 + 1)
    with pytest.raises(ck.CsvError, match="cell longer than"):
        rows_of(f'id,name\n1,"{cell}"\n')


def test_too_many_columns_are_refused() -> None:
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1))
    with pytest.raises(ck.CsvError, match=f"at most {MAX_COLUMNS}"):
        rows_of(header + "\n")


def test_duplicate_headers_are_refused_by_name() -> None:
    with pytest.raises(ck.CsvError, match="'id'"):
        rows_of("id,name,id\n1,a,2\n")


def test_a_file_cut_off_inside_quotes_is_refused() -> None:
    with pytest.raises(ck.CsvError, match="ends inside a quoted cell"):
        rows_of('id,name\n1,"Miller\n')


def test_nul_and_ragged_rows_are_refused() -> None:
    with pytest.raises(ck.CsvError, match="NUL"):
        rows_of("id,name\n1,a\0b\n")
    with pytest.raises(ck.CsvError, match=r"line 2 of t\.csv has 3 cells"):
        rows_of("id,name\n1,a,b\n")


def test_rows_stream_one_at_a_time() -> None:
    table = read_csv(io.StringIO('id\n1\n2\n"3\n', newline=""), name="t.csv")
    assert next(table.rows) == (2, ["1"])  # the cut-off end is not read yet
    assert next(table.rows) == (3, ["2"])
    with pytest.raises(ck.CsvError):
        next(table.rows)


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ck.CsvError, match="cannot open"), open_csv(tmp_path / "nope.csv"):
        pass


def test_csv_source_refuses_two_columns_of_one_field(tmp_path: Path) -> None:
    path = tmp_path / "dms.csv"
    path.write_text("Customer #,Zip,postal_code\nP-1,1,2\n", encoding="utf-8")
    with pytest.raises(ck.SourceError, match="'postal_code' more than once"):
        ck.CsvSource("dms", path)
    path.write_text("customer_number,Name,customer_number\nP-1,A,P-2\n", encoding="utf-8")
    with pytest.raises(ck.CsvError, match="'customer_number'"):
        ck.CsvSource("dms", path)


def test_csv_source_refuses_a_cut_off_export(tmp_path: Path) -> None:
    path = tmp_path / "dms.csv"
    path.write_text('customer_number,Name\nP-1,"Miller\n', encoding="utf-8")
    with pytest.raises(ck.CsvError, match="cut off"):
        ck.CsvSource("dms", path)


@pytest.mark.skipif(os.name != "posix", reason="needs /dev/zero")
def test_csv_source_refuses_dev_zero() -> None:
    with pytest.raises(ck.CsvError):
        ck.CsvSource("dms", "/dev/zero")
