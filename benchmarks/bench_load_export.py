"""Bulk load (`load` or `create_many`) and CSV export, beside plain baselines in the same run.

    python benchmarks/bench_load_export.py --size 100000 [--backend memory|sqlite|postgresql|all]
        [--pg-url postgresql+psycopg://...] [--export-only | --load-only]
        [--method load|create_many|load-into-populated]

Load: `customers.load` (default; `--method create_many` for that) of N synthetic customers into
one empty location (every rule applied, history written) against a baseline, the floor, that
only stores the drafts (a dict insert for memory; `executemany` of the raw values into a plain
table for SQLite, `COPY` of them for PostgreSQL, in one transaction). The CPU of the load is
split by part (see `_load_profile.py`): validation and record building timed apart on the same
drafts, the statements' time read from the driver's cursor, the rest by difference.
``--method load-into-populated`` loads another location of N customers first (timed apart),
then times the load of the first location into that book: a group's book taking on a dealer,
where the indexes stay in place during the load.
Right after the load, 200 searches typed as users do (a name word, a word's start, a word and
the start of the city, a number fragment) are timed twice: the first pass shows whether the
load left the planner what it needs (fresh statistics), the second is the warm reference.
--load-only skips the export. Export: `export(format="csv")` of all N customers to a file
against a baseline `csv.writer` over the same rows. Peak Python memory of the export is
measured in a second, traced run (so the timed run is not slowed by tracing), beside the same
for a book of N/10 customers: a flat export has about the same peak at both sizes.

Each backend runs in a child process, so its peak resident memory (VmHWM) is its own; the load
and export peaks are separated by resetting the high-water mark in between (Linux). PostgreSQL
runs on a throwaway server started from the local binaries (durability off, as for tests)
unless --pg-url names one. CPU seconds are the process's own: the machine is shared, and wall
time alone would count other jobs' time too.

--export-only (memory and SQLite) skips the load: both books are loaded by `create_many` once
and kept as SQLite files in benchmarks/.cache (rebuilt when the SQL backend's storage code
changes); the memory backend gets a copy through its store. A million customers take minutes
to load and a few seconds to export, so this is the way to work on the export.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
from _common import append_section, figure, load_text, peak_rss_mib, percentile, rss_mib
from _load_profile import parts_per_row, profile_lines, statement_clock

import customerkit as ck
from customerkit import synth
from customerkit.text import words

ADMIN = ck.Actor(user_id="bench", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
#: Another location's admin: ``--method load-into-populated`` fills the book with it first.
OTHER = ck.Actor(user_id="bench", role=ck.Role.DEALER_ADMIN, location_id="loc-2")
BACKENDS = ("memory", "sqlite", "postgresql")
_RAW_FIELDS = 12  # the baseline stores the drafts' first twelve values
CACHE = Path(__file__).with_name(".cache")
#: What a cached book's rows depend on: a change to any of these builds it again.
_STORAGE_SOURCES = ("schema.py", "_rows.py", "_bulk.py")


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of ``action``."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def traced_peak(action: Callable[[], object]) -> float:
    """Peak Python memory of ``action`` in MiB (tracemalloc)."""
    tracemalloc.start()
    try:
        action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def reset_peak_rss() -> bool:
    """Restart the process's resident-memory high-water mark (Linux ``clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def database(backend: str, folder: Path, pg_url: str | None, name: str) -> Iterator[str | None]:
    """A new, empty database for ``backend`` (``None`` for memory)."""
    if backend == "memory":
        yield None
    elif backend == "sqlite":
        yield f"sqlite:///{folder / f'{name}.db'}"
    else:
        from customerkit.testing.postgres import new_database, postgres_server

        with contextlib.ExitStack() as stack:
            server = pg_url or stack.enter_context(postgres_server())
            yield stack.enter_context(new_database(server))  # dropped: a kept server keeps none


def open_book(url: str | None) -> ck.Book:
    return ck.open_book(url, hasher=ck.PasswordHasher.for_tests())


def raw_rows(drafts: list[ck.NewCustomer]) -> list[tuple[Any, ...]]:
    return [attrs.astuple(d, recurse=False)[:_RAW_FIELDS] for d in drafts]


def baseline_load(url: str | None, drafts: list[ck.NewCustomer], folder: Path) -> float:
    """Wall seconds to store the drafts plainly: a dict, executemany (SQLite) or COPY
    (PostgreSQL) into a plain table."""
    if url is None:
        store: dict[int, ck.NewCustomer] = {}
        return timed(lambda: store.update(enumerate(drafts)))[0]
    rows = [tuple(str(value) for value in row) for row in raw_rows(drafts)]
    columns = ", ".join(f"f{i} TEXT" for i in range(_RAW_FIELDS))
    if url.startswith("sqlite"):
        connection = sqlite3.connect(folder / "baseline.db")
        marks = ", ".join("?" * _RAW_FIELDS)
    else:
        from sqlalchemy import create_engine

        engine = create_engine(url)
        connection = engine.raw_connection()  # type: ignore[assignment]
        marks = ", ".join(["%s"] * _RAW_FIELDS)
    cursor = connection.cursor()
    cursor.execute(f"CREATE TABLE baseline ({columns})")
    connection.commit()

    def load() -> None:
        if url.startswith("sqlite"):
            cursor.executemany(f"INSERT INTO baseline VALUES ({marks})", rows)
        else:
            with cursor.copy("COPY baseline FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        connection.commit()

    seconds = timed(load)[0]
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


def storage_key() -> str:
    """Hash of the sources deciding what the SQL backend stores, for naming cached books."""
    folder = Path(ck.__file__).parent / "backends" / "sqlalchemy"
    digest = hashlib.sha256()
    for name in _STORAGE_SOURCES:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:12]


def cached_sqlite(size: int) -> str:
    """URL of an SQLite book of ``size`` drafts (by ``create_many``), built on first use."""
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n", encoding="ascii")  # never commit the cache
    path = CACHE / f"load_export-{size}-{storage_key()}.db"
    if not path.exists():
        partial = path.with_suffix(".partial")
        for leftover in CACHE.glob(partial.name + "*"):
            leftover.unlink()
        book = open_book(f"sqlite:///{partial}")
        book.customers.create_many(make_drafts(size), actor=ADMIN)
        book.close()  # the last connection to close folds the WAL into the file
        partial.replace(path)
    return f"sqlite:///{path}"


def copied_to_memory(url: str) -> ck.Book:
    """A memory book holding the customers of the book at ``url``, added through its store."""
    stored, book = open_book(url), open_book(None)
    with stored.store.unit_of_work() as reading, book.store.unit_of_work() as writing:
        for customer in reading.customers.iter_location(ADMIN.location_id):
            writing.customers.add(customer)
        writing.commit()
    stored.close()
    return book


def cached_book(backend: str, size: int) -> ck.Book:
    if backend == "postgresql":
        raise SystemExit("--export-only runs on memory and sqlite")
    url = cached_sqlite(size)
    return copied_to_memory(url) if backend == "memory" else open_book(url)


def search_texts(drafts: list[ck.NewCustomer], count: int = 200) -> list[str]:
    """Queries a user types: name words, their first letters, a word and a second word's
    start, number fragments (same every run: a fixed sample of the drafts)."""
    picked = random.Random(5).sample(drafts, min(count, len(drafts)))
    texts = []
    for i, draft in enumerate(picked):
        found = [w for w in words(draft.company_name) if len(w) >= 3] or ["auto"]
        kind = i % 4
        if kind == 0:
            texts.append(found[0])
        elif kind == 1:
            texts.append(found[-1][:4])
        elif kind == 2:
            second = words(draft.city) or ["co"]
            texts.append(f"{found[0]} {second[0][:3]}")
        else:
            digits_only = "".join(ch for ch in draft.customer_number if ch.isdigit())
            texts.append(digits_only[-4:] or found[0])
    return texts


def search_passes(book: ck.Book, texts: list[str]) -> tuple[list[float], list[float]]:
    """Milliseconds of each search, first pass right after the load, then a second pass."""
    passes = []
    for _ in range(2):
        times = []
        for text in texts:
            start = time.perf_counter()
            book.customers.search(text, actor=ADMIN)
            times.append((time.perf_counter() - start) * 1000)
        passes.append(times)
    return passes[0], passes[1]


def measure_load(
    out: dict[str, Any],
    book: ck.Book,
    url: str | None,
    drafts: list[ck.NewCustomer],
    folder: Path,
    *,
    method: str = "load",
) -> None:
    reset_peak_rss()
    before = rss_mib()

    def load() -> None:
        if method.startswith("load"):
            book.customers.load(iter(drafts), actor=ADMIN)
        else:
            book.customers.create_many(drafts, actor=ADMIN)

    with statement_clock(book) as statements:
        out["load_s"], out["load_cpu_s"] = timed(load)
    out["method"], out["statements_s"] = method, statements.seconds
    out["load_peak_rss_mib"], out["rss_before_load_mib"] = peak_rss_mib(), before
    out["parts_us"] = parts_per_row(drafts, method, out["backend"])
    out["first_search_ms"], out["second_search_ms"] = search_passes(book, search_texts(drafts))
    out["base_load_s"] = baseline_load(url, drafts, folder)


def measure_export(out: dict[str, Any], book: ck.Book, folder: Path) -> None:
    out["rss_before_export_mib"] = rss_mib()
    out["rss_reset"] = reset_peak_rss()
    out["export_s"], out["export_cpu_s"] = timed(lambda: export(book, folder / "e.csv"))
    out["export_peak_rss_mib"] = peak_rss_mib()
    out["export_peak_mib"] = traced_peak(lambda: export(book, folder / "traced.csv"))


def make_drafts(size: int) -> list[ck.NewCustomer]:
    return [draft for _, draft in synth.customers(size, seed=11, locations=("loc-1",))]


def measure(
    backend: str,
    size: int,
    pg_url: str | None,
    export_only: bool,
    load_only: bool = False,
    *,
    method: str = "load",
) -> dict[str, Any]:
    """Every figure of one backend at one size (run in a child process)."""
    small = max(1, size // 10)
    out: dict[str, Any] = {"backend": backend, "size": size, "small": small}
    out["load_at_start"] = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        if export_only:
            # No drafts before the export: a million of them on the heap (or their freed
            # arenas) made the garbage collector's passes cost as much as the export itself
            # (SQLite, CPU: 14 s in a fresh process, 29 s beside the drafts, 20 s after
            # deleting them). An application exporting holds no such list.
            book = cached_book(backend, size)
        else:
            url = stack.enter_context(database(backend, folder, pg_url, "bench"))
            book = open_book(url)
            if method == "load-into-populated":
                # A group's book gets a new location: another location's customers come first.
                others = synth.customers(size, seed=12, locations=(OTHER.location_id,))
                drafts = (draft for _, draft in others)
                out["populate_s"] = timed(lambda: book.customers.load(drafts, actor=OTHER))[0]
            measure_load(out, book, url, make_drafts(size), folder, method=method)
        stack.callback(book.close)
        if load_only:
            out["load_at_end"] = os.getloadavg()[0]
            return out
        measure_export(out, book, folder)
        drafts = make_drafts(size)
        out["base_export_s"] = timed(lambda: baseline_export(drafts, folder / "b.csv"))[0]
        if export_only:
            small_book = cached_book(backend, small)
        else:
            small_book = open_book(stack.enter_context(database(backend, folder, pg_url, "small")))
            small_book.customers.create_many(drafts[:small], actor=ADMIN)
        stack.callback(small_book.close)
        out["export_peak_small_mib"] = traced_peak(lambda: export(small_book, folder / "small.csv"))
    out["load_at_end"] = os.getloadavg()[0]
    return out


def run_child(
    backend: str, size: int, pg_url: str | None, export_only: bool, load_only: bool, *, method: str
) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter, so peak memory is this backend's alone."""
    command = [sys.executable, __file__, "--child", backend, "--size", str(size)]
    command += ["--method", method]
    if pg_url:
        command += ["--pg-url", pg_url]
    if export_only:
        command.append("--export-only")
    if load_only:
        command.append("--load-only")
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        return {"backend": backend, "size": size, "error": done.stderr.strip().splitlines()[-1]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _latency(times: list[float]) -> str:
    return f"p50 {statistics.median(times):.2f} ms, p95 {percentile(times, 95):.2f} ms"


def rows_of(result: dict[str, Any]) -> list[str]:
    backend, size = result["backend"], result["size"]
    if "error" in result:
        return [f"| {backend} | {size:,} | skipped: {result['error']} | | | | | |"]
    loads = f"load avg {result['load_at_start']:.1f} → {result['load_at_end']:.1f}"
    lines = []
    if "load_s" in result:
        load = result["load_s"]
        method = result.get("method", "create_many")
        if "populate_s" in result:
            method = (
                f"load into a book holding another location of {size:,} "
                f"(loaded first in {result['populate_s']:.2f} s, its drafts generated as read)"
            )
        lines.append(
            f"| {backend} | {size:,} | {method} | {load:.2f} s | {size / load:,.0f} rows/s "
            f"| baseline {result['base_load_s']:.2f} s (x{load / result['base_load_s']:.1f}) "
            f"| {result['load_cpu_s']:.2f} s ({result['load_cpu_s'] / size * 1e6:.0f} µs/row) "
            f"| {result['load_peak_rss_mib']:,.0f} MiB | {loads} |"
        )
        first, second = result["first_search_ms"], result["second_search_ms"]
        lines.append(
            f"| {backend} | {size:,} | {len(first)} searches right after the load "
            f"| {_latency(first)} | second pass {_latency(second)} | | | | |"
        )
        loads = ""
    if "export_s" not in result:
        return lines
    export_s = result["export_s"]
    ratio = result["export_peak_mib"] / max(result["export_peak_small_mib"], 1e-9)
    return [
        *lines,
        f"| {backend} | {size:,} | export CSV | {export_s:.2f} s | {size / export_s:,.0f} rows/s "
        f"| baseline {result['base_export_s']:.2f} s (x{export_s / result['base_export_s']:.1f}) "
        f"| {result['export_cpu_s']:.2f} s | {result['export_peak_rss_mib']:,.0f} MiB | {loads} |",
        f"| {backend} | {size:,} | export peak memory | {result['export_peak_mib']:.1f} MiB | "
        f"at {result['small']:,} rows: {result['export_peak_small_mib']:.1f} MiB "
        f"| ratio x{ratio:.2f} | | | |",
    ]


def figures_of(result: dict[str, Any]) -> list[Any]:
    if "error" in result:
        return []
    backend, size = result["backend"], result["size"]
    loads = []
    if "load_s" in result:
        loads = [
            figure(
                "load_export",
                "load",
                f"customerkit {result.get('method', 'create_many')}, {backend}",
                size=size,
                value=result["load_s"],
                unit="s",
                cpu_s=result["load_cpu_s"],
                peak_rss_mib=result["load_peak_rss_mib"],
                first_search_p50_ms=statistics.median(result["first_search_ms"]),
                first_search_p95_ms=percentile(result["first_search_ms"], 95),
            ),
            figure(
                "load_export",
                "load",
                f"baseline plain store, {backend}",
                size=size,
                value=result["base_load_s"],
                unit="s",
            ),
        ]
    if "export_s" not in result:
        return loads
    return [
        *loads,
        figure(
            "load_export",
            "export CSV",
            f"customerkit export, {backend}",
            size=size,
            value=result["export_s"],
            unit="s",
            cpu_s=result["export_cpu_s"],
            peak_traced_mib=result["export_peak_mib"],
            peak_traced_small_mib=result["export_peak_small_mib"],
            peak_rss_mib=result["export_peak_rss_mib"],
        ),
        figure(
            "load_export",
            "export CSV",
            f"baseline csv.writer, {backend}",
            size=size,
            value=result["base_export_s"],
            unit="s",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--pg-url", help="a PostgreSQL server URL (default: a throwaway one)")
    parser.add_argument(
        "--export-only",
        action="store_true",
        help="time the export only, on books cached in benchmarks/.cache (memory, sqlite)",
    )
    parser.add_argument(
        "--load-only", action="store_true", help="time the load (and searches after it) only"
    )
    parser.add_argument(
        "--method",
        choices=["load", "create_many", "load-into-populated"],
        default="load",
        help="load-into-populated: load into a book already holding another location of --size",
    )
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        found = measure(
            args.child, args.size, args.pg_url, args.export_only, args.load_only, method=args.method
        )
        print(json.dumps(found))
        return
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    start = load_text()
    results = []
    for backend in backends:
        result = run_child(
            backend, args.size, args.pg_url, args.export_only, args.load_only, method=args.method
        )
        results.append(result)
        print(json.dumps(result), flush=True)
    flags = " --export-only" if args.export_only else ""
    flags += " --load-only" if args.load_only else ""
    flags += f" --method {args.method}"
    lines = [
        f"Command: `python benchmarks/bench_load_export.py --size {args.size} "
        f"--backend {args.backend}{flags}`; each backend in its own process; {start} at the "
        "start.",
        "",
        "| backend | customers | what | wall time | throughput | baseline (same run) "
        "| CPU | peak RSS | machine load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    figures = []
    for result in results:
        lines += rows_of(result)
        figures += figures_of(result)
    for result in results:
        lines += profile_lines(result)
    append_section(f"Bulk load and export, {args.size:,} customers", lines, figures=figures)


if __name__ == "__main__":
    main()
