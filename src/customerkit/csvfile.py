"""Reading CSV files people hand over, with limits: nothing is read without bound.

A CSV file from a DMS export, a spreadsheet or a pipe may be anything: a binary file, a file cut
off mid-write, ``/dev/zero``. [`read_csv()`][customerkit.csvfile.read_csv] streams it row by row
and refuses, with a [`CsvError`][customerkit.CsvError] naming the line, whatever it cannot read
safely:

- text that is not UTF-8 (a byte order mark is allowed) or holds a NUL character;
- a physical line longer than `MAX_LINE` characters, a cell longer than the ``csv``
  module's field limit (``csv.field_size_limit()``), a header of more than `MAX_COLUMNS`
  columns;
- a header naming a column twice (otherwise the last one would silently win), or a row whose
  number of cells differs from the header's;
- a file ending inside a quoted cell (cut off, or a quote missing).

The delimiter is sniffed from the header line: ``,``, ``;``, tab or ``|``, whichever occurs
most (``,`` when none does).
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import attrs

from customerkit.errors import CsvError

#: Longest physical line read, in characters (a row may span lines inside quotes).
MAX_LINE = 1 << 20
#: Most columns a header may have.
MAX_COLUMNS = 1000
_DELIMITERS = (",", ";", "\t", "|")


@attrs.frozen
class CsvRows:
    """A CSV file being read: its header and an iterator over its rows.

    Attributes:
        name: What the file is called in errors (its path, or ``"standard input"``).
        header: The column names, stripped of surrounding spaces.
        delimiter: The delimiter sniffed from the header line.
        rows: ``(line number, cells)`` of every non-blank row; each has one cell per column.
    """

    name: str
    header: tuple[str, ...]
    delimiter: str
    rows: Iterator[tuple[int, list[str]]]


@contextmanager
def open_csv(path: str | Path) -> Iterator[IO[str]]:
    """Open a CSV file as UTF-8 text for [`read_csv()`][customerkit.csvfile.read_csv].

    ``"-"`` is standard input.

    Raises:
        CsvError: The file cannot be opened (missing, a folder, no permission).
    """
    if str(path) == "-":
        import io

        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        try:
            yield stdin
        finally:
            stdin.detach()  # leave sys.stdin usable
        return
    try:
        fileobj = Path(path).open(encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise CsvError(f"cannot open {str(path)!r}: {reason}") from error
    with fileobj:
        yield fileobj


def read_csv(fileobj: IO[str], *, name: str) -> CsvRows:
    """Start reading a CSV file: its header now, its rows as they are iterated.

    Args:
        fileobj: Text opened with ``newline=""`` (see [`open_csv()`][customerkit.csvfile.open_csv]).
        name: The file's name for error messages.

    Raises:
        CsvError: The file is not readable CSV within the limits (see the module's notes);
            raised here for the header, and while iterating ``rows`` for the rest.
    """
    lines = _bounded_lines(fileobj, name)
    first = next(lines, None)
    if first is None or not first.strip():
        raise CsvError(f"{name} is empty or starts with a blank line; it needs a header")
    delimiter = _sniff(first)
    reader = csv.reader(_chain(first, lines), delimiter=delimiter, strict=True)
    header = [cell.strip() for cell in _next_row(reader, name) or []]
    if len(header) > MAX_COLUMNS:
        raise CsvError(f"{name} has {len(header)} columns; at most {MAX_COLUMNS} are read")
    refuse_repeated(header, name=name)
    return CsvRows(name, tuple(header), delimiter, _rows(reader, name, len(header)))


def refuse_repeated(columns: Iterable[str], *, name: str, meaning: str = "") -> None:
    """Refuse a header naming one column twice, so no column silently replaces another.

    Args:
        columns: Column names, or the fields they map to.
        name: The file's name for the message.
        meaning: Appended to the message, such as ``" (after mapping headers to fields)"``.

    Raises:
        CsvError: Naming every repeated column.
    """
    counts = Counter(column for column in columns if column)
    repeated = sorted(column for column, count in counts.items() if count > 1)
    if repeated:
        listed = ", ".join(repr(column) for column in repeated)
        raise CsvError(
            f"{name} names the column {listed} more than once{meaning}; "
            "keep one column of each name"
        )


def _sniff(line: str) -> str:
    counts = {delimiter: line.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=counts.__getitem__)
    return best if counts[best] else ","


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _bounded_lines(fileobj: IO[str], name: str) -> Iterator[str]:
    """The file's physical lines, each at most ``MAX_LINE`` characters, UTF-8, without NUL."""
    number = 0
    while True:
        number += 1
        try:
            line = fileobj.readline(MAX_LINE + 1)
        except UnicodeDecodeError as error:
            raise CsvError(
                f"{name} is not UTF-8 text (at or after line {number}); save it as UTF-8 "
                "(in a spreadsheet: 'CSV UTF-8')"
            ) from error
        if not line:
            return
        if len(line) > MAX_LINE:
            raise CsvError(
                f"line {number} of {name} is longer than {MAX_LINE} characters; is this a CSV file?"
            )
        if "\0" in line:
            raise CsvError(f"line {number} of {name} holds a NUL character; is this a CSV file?")
        yield line


def _next_row(reader: Any, name: str) -> list[str] | None:
    """The reader's next row (``None`` at the end), with ``csv.Error`` made a ``CsvError``."""
    try:
        return next(reader, None)
    except csv.Error as error:
        text = str(error)
        if "field larger than field limit" in text:
            message = (
                f"line {reader.line_num} of {name} has a cell longer than "
                f"{csv.field_size_limit()} characters"
            )
        elif "unexpected end of data" in text:
            message = (
                f"{name} ends inside a quoted cell (line {reader.line_num}): "
                "the file was cut off or a closing quote is missing"
            )
        else:
            message = f"line {reader.line_num} of {name} is not valid CSV ({text})"
        raise CsvError(message) from error


def _rows(reader: Any, name: str, width: int) -> Iterator[tuple[int, list[str]]]:
    while (row := _next_row(reader, name)) is not None:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            raise CsvError(
                f"line {line} of {name} has {len(row)} cells where the header has {width}"
            )
        yield line, row
