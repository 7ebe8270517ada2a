"""What the commands print: consoles, progress bars, lists (table, CSV, JSON), whole files."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import customerkit as ck
from customerkit.export import neutralise


class Format(enum.StrEnum):
    """How a command prints a list."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def _err() -> Console:
    return Console(stderr=True)


def _out() -> Console:
    # Off a terminal nothing is cut to 80 columns: ids and names print whole.
    return Console() if sys.stdout.isatty() else Console(width=1_000_000)


def _note(text: str) -> None:
    _err().print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def _progress(label: str) -> Iterator[ck.ports.Progress]:
    console = _err()
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield report


@contextmanager
def _stages() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar for work in named stages (the matcher's), on standard error."""
    console = _err()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("matching", total=None)

        def report(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total or None)

        yield report


def _emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: Format,
    title: str = "",
    to: IO[str] | None = None,
) -> None:
    """Print rows as a table, CSV (neutralised cells) or a JSON array (to stdout by default)."""
    out = sys.stdout if to is None else to
    if fmt is Format.JSON:
        out.write(json.dumps(list(map(dict, rows)), ensure_ascii=False, indent=2) + "\n")
        return
    if fmt is Format.CSV:
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([neutralise(_text(row[c])) for c in columns] for row in rows)
        return
    table = Table(title=title or None)
    for column in columns:
        is_id = column == "id" or column.endswith("_id")
        table.add_column(column, overflow="fold" if is_id else "ellipsis")
    for row in rows:
        table.add_row(*(_text(row[column]) for column in columns))
    _out().print(table)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


@contextmanager
def _writable(out: str) -> Iterator[IO[str]]:
    """A text file to write (``-``: standard output), UTF-8 with line ends kept as written.

    A file appears whole or not at all: it is written beside its final name and renamed at the
    end, so a failed export never leaves half a file over the last good one.
    """
    if out == "-":
        yield sys.stdout
        return
    target = Path(out)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as fileobj:
            yield fileobj
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _report_merge(result: ck.MergeResult[Any], dry_run: bool) -> None:
    merged = ", ".join(result.merged_ids)
    if dry_run:
        _note(f"Would merge {merged} into {result.main.id} (nothing written).")
        return
    _note(f"Merged {merged} into {result.main.id}; undo with: unmerge {result.merge_id}")
    typer.echo(result.merge_id)


def _file_label(path: str) -> str:
    return "standard input" if path == "-" else repr(path)
