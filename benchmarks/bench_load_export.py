"""Bulk load (`create_many`) and CSV export, beside plain-Python baselines in the same run.

    python benchmarks/bench_load_export.py --size 100000 [--backend memory|sqlite|all]

Load: `create_many` of N synthetic customers into one location (every rule applied, history
written) against a baseline that only stores the drafts (a dict insert, or sqlite3 executemany
of the raw rows for SQLite). Export: `export(format="csv")` of all N customers to a file
against a baseline `csv.writer` over the same rows; peak Python memory of the export is
measured in a second, traced run, so the timed run is not slowed by tracing.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import attrs
from _common import append_section

import customerkit as ck
from customerkit import synth

ADMIN = ck.Actor(user_id="bench", role=ck.Role.DEALER_ADMIN, location_id="loc-1")


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def traced_peak(action: Callable[[], object]) -> float:
    tracemalloc.start()
    action()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def open_book(backend: str, folder: Path) -> ck.Book:
    hasher = ck.PasswordHasher.for_tests()
    if backend == "memory":
        return ck.open_book(hasher=hasher)
    return ck.open_book(f"sqlite:///{folder / 'bench.db'}", hasher=hasher)


def baseline_load(backend: str, drafts: list[ck.NewCustomer], folder: Path) -> float:
    if backend == "memory":
        store: dict[int, ck.NewCustomer] = {}
        return timed(lambda: store.update(enumerate(drafts)))
    rows = [attrs.astuple(d, recurse=False)[:12] for d in drafts]
    connection = sqlite3.connect(folder / "baseline.db")
    connection.execute(f"CREATE TABLE c ({', '.join(f'f{i}' for i in range(12))})")

    def load() -> None:
        with connection:
            connection.executemany(f"INSERT INTO c VALUES ({', '.join('?' * 12)})", rows)

    seconds = timed(load)
    connection.close()
    return seconds


def baseline_export(drafts: list[ck.NewCustomer], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        for draft in drafts:
            writer.writerow(attrs.astuple(draft, recurse=False))


def export(book: ck.Book, path: Path) -> int:
    with path.open("w", encoding="utf-8", newline="") as out:
        return book.customers.export(out, actor=ADMIN)


def run(size: int, backend: str) -> list[str]:
    drafts = [draft for _, draft in synth.customers(size, seed=11, locations=("loc-1",))]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        book = open_book(backend, folder)
        load_s = timed(lambda: book.customers.create_many(drafts, actor=ADMIN))
        base_load_s = baseline_load(backend, drafts, folder)
        export_s = timed(lambda: export(book, folder / "export.csv"))
        base_export_s = timed(lambda: baseline_export(drafts, folder / "baseline.csv"))
        small = max(1, size // 10)
        peak_full = traced_peak(lambda: export(book, folder / "traced.csv"))
        book.close()
        small_book = open_book(backend, folder / "small") if backend == "memory" else None
        if small_book is None:
            (folder / "small").mkdir()
            small_book = ck.open_book(
                f"sqlite:///{folder / 'small' / 'b.db'}", hasher=ck.PasswordHasher.for_tests()
            )
        small_book.customers.create_many(drafts[:small], actor=ADMIN)
        peak_small = traced_peak(lambda: export(small_book, folder / "small.csv"))
        small_book.close()
    return [
        f"| {backend} | {size:,} | load | {load_s:.2f} s | {size / load_s:,.0f} rows/s "
        f"| baseline {base_load_s:.2f} s (x{load_s / base_load_s:.1f}) |",
        f"| {backend} | {size:,} | export CSV | {export_s:.2f} s | {size / export_s:,.0f} rows/s "
        f"| baseline {base_export_s:.2f} s (x{export_s / base_export_s:.1f}) |",
        f"| {backend} | {size:,} | export peak memory | {peak_full:.1f} MiB | "
        f"at {small:,} rows: {peak_small:.1f} MiB | ratio x{peak_full / peak_small:.2f} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--backend", choices=["memory", "sqlite", "all"], default="all")
    args = parser.parse_args()
    backends = ["memory", "sqlite"] if args.backend == "all" else [args.backend]
    lines = [
        "| backend | customers | what | time | throughput | baseline (same run) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for backend in backends:
        try:
            lines += run(args.size, backend)
        except ImportError as error:
            lines.append(f"| {backend} | {args.size:,} | skipped: {error} | | | |")
    append_section(f"Bulk load and export, {args.size:,} customers", lines)


if __name__ == "__main__":
    main()
