"""Benchmark search on the SQL backend (SQLite, PostgreSQL) against raw index baselines.

Usage::

    python benchmarks/bench_sql_search.py --size 100000
    python benchmarks/bench_sql_search.py --size 100000 --backends sqlite
    python benchmarks/bench_sql_search.py --size 100000 --pg-url postgresql+psycopg://...

Uses ``bench_search``'s generator (same seed, same customers, same queries as the memory
benchmark): N customers in one location, ranked top-20 queries of 3-12 characters. For each
backend it loads a fresh database through the store's bulk path (one unit of work of
``customers.add``), runs ``ANALYZE``, checks every result against the memory index (itself
tested against the oracle), and times each search in its own unit of work, as the services
call it. Baselines run in the same process on the same data: SQLite FTS5 ``trigram`` (first
20 substring matches of the query's longest word), PostgreSQL ``pg_trgm`` (first 20 ILIKE
matches; ranked ``similarity`` top 20), and the memory backend. PostgreSQL is a throwaway
server from the local binaries unless ``--pg-url`` (or CUSTOMERKIT_TEST_POSTGRES_URL) names
one. Appends a section to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_search
from _common import append_section, percentile

from customerkit.backends.sqlalchemy import SqlStore
from customerkit.model import Customer, CustomerKind
from customerkit.search.index import MemorySearchIndex
from customerkit.search.query import SearchDocument, SearchQuery, parse_query
from customerkit.testing.postgres import create_database, postgres_server
from customerkit.text import query_words

LOCATION = bench_search.LOCATION
LIMIT = bench_search.LIMIT


def summary(values: Sequence[float]) -> str:
    return (
        f"p50 {statistics.median(values):.2f} ms, p95 {percentile(list(values), 95):.2f} ms, "
        f"max {max(values):.1f} ms"
    )


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def as_customer(document: SearchDocument, now: datetime) -> Customer:
    return Customer(
        id=document.id,
        location_id=LOCATION,
        kind=CustomerKind.LOCAL,
        company_name=document.name,
        city=document.city,
        state=document.state,
        customer_number=document.number,
        created_at=now,
        updated_at=now,
    )


def longest_word(query: str) -> str:
    return max(query_words(query), key=len)


@contextlib.contextmanager
def database(backend: str, args: argparse.Namespace) -> Iterator[str]:
    """A fresh, empty database URL for the backend."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    if args.pg_url:
        yield create_database(args.pg_url)
        return
    with postgres_server() as server:
        yield create_database(server)


def load(store: SqlStore, documents: Sequence[SearchDocument]) -> float:
    now = datetime.now(UTC)
    start = time.perf_counter()
    with store.unit_of_work() as uow:
        for document in documents:
            uow.customers.add(as_customer(document, now))
        uow.commit()
    seconds = time.perf_counter() - start
    with store.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    return seconds


def search_times(store: SqlStore, parsed: Sequence[SearchQuery]) -> list[float]:
    def one(query: SearchQuery) -> None:
        with store.unit_of_work() as uow:
            uow.customers.search(LOCATION, query, limit=LIMIT)

    return [timed(lambda q=query: one(q)) for query in parsed]


def check(store: SqlStore, index: MemorySearchIndex, parsed: Sequence[SearchQuery]) -> None:
    with store.unit_of_work() as uow:
        for query in parsed:
            if uow.customers.search(LOCATION, query, limit=LIMIT) != index.search(
                LOCATION, query, limit=LIMIT
            ):
                sys.exit(f"SQL and memory search disagree on {query!r}")


def baselines(store: SqlStore, documents: Sequence[SearchDocument], texts: Sequence[str]) -> Any:
    """Raw trigram-index queries on the same names: (label, timings) pairs."""
    out = []
    with store.engine.connect() as connection:
        run = connection.exec_driver_sql
        if store.dialect == "sqlite":
            run("CREATE VIRTUAL TABLE bench_names USING fts5(name, tokenize='trigram')")
            run(
                "INSERT INTO bench_names(rowid, name) VALUES (?, ?)",
                list(enumerate(n.name for n in documents)),
            )
            connection.commit()
            sql = "SELECT rowid FROM bench_names WHERE bench_names MATCH ? LIMIT 20"
            phrases = ['"' + longest_word(t).replace('"', '""') + '"' for t in texts]
            out.append(
                (
                    "SQLite FTS5 trigram, first 20 substring matches of the longest word",
                    [timed(lambda p=p: run(sql, (p,)).all()) for p in phrases],
                )
            )
        else:
            run("CREATE TABLE bench_names (id text PRIMARY KEY, name text NOT NULL)")
            run("INSERT INTO bench_names VALUES (%s, %s)", [(d.id, d.name) for d in documents])
            run("CREATE INDEX ON bench_names USING gin (name gin_trgm_ops)")
            run("ANALYZE bench_names")
            connection.commit()
            like = "SELECT id FROM bench_names WHERE name ILIKE %s LIMIT 20"
            ranked = (
                "SELECT id FROM bench_names WHERE name %% %s "
                "ORDER BY similarity(name, %s) DESC LIMIT 20"
            )
            out.append(
                (
                    "pg_trgm, first 20 ILIKE '%word%' matches of the longest word",
                    [timed(lambda t=t: run(like, (f"%{longest_word(t)}%",)).all()) for t in texts],
                )
            )
            out.append(
                (
                    "pg_trgm, ranked similarity top 20 (`name % query`)",
                    [timed(lambda t=t: run(ranked, (t, t)).all()) for t in texts],
                )
            )
            connection.rollback()
    return out


def bench(
    backend: str,
    args: argparse.Namespace,
    *,
    documents: Sequence[SearchDocument],
    index: MemorySearchIndex,
    texts: Sequence[str],
    typo_texts: Sequence[str],
) -> list[str]:
    parsed = [parse_query(t) for t in texts]
    fuzzy = [parse_query(t, fuzzy=True) for t in typo_texts]
    with database(backend, args) as url:
        store = SqlStore(url, batch_size=5000)
        try:
            build = load(store, documents)
            print(f"{backend}: build {build:.1f} s", flush=True)
            check(store, index, [*parsed, *fuzzy])
            search_times(store, parsed[:20])  # warm up
            passes = [search_times(store, parsed) for _ in range(3)]
            best = [min(runs) for runs in zip(*passes, strict=True)]
            fuzzy_times = search_times(store, fuzzy)
            raw = baselines(store, documents, texts)
        finally:
            store.close()
    print(f"{backend}: {summary(passes[0])}; best of 3 {summary(best)}", flush=True)
    slowest = sorted(zip(passes[0], texts, strict=True), reverse=True)[:5]
    print("  slowest:", ", ".join(f"{t!r} {ms:.1f} ms" for ms, t in slowest), flush=True)
    p50 = statistics.median(passes[0])
    lines = [
        f"| {backend}: build (bulk `customers.add`, one unit of work) + ANALYZE | {build:.1f} s |",
        f"| {backend}: search, first pass | {summary(passes[0])} |",
        f"| {backend}: search, best of 3 passes per query | {summary(best)} |",
        f"| {backend}: search, `fuzzy=True`, typo queries | {summary(fuzzy_times)} |",
    ]
    for label, times in raw:
        ratio = p50 / statistics.median(times)
        lines.append(f"| baseline: {label} | {summary(times)}; our p50 is {ratio:.1f}x this |")
        print(f"  baseline {label}: {summary(times)}", flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("CUSTOMERKIT_TEST_POSTGRES_URL"))
    parser.add_argument("--no-results", action="store_true", help="do not append RESULTS.md")
    args = parser.parse_args()

    load_avg = os.getloadavg()[0]
    print(f"generating {args.size:,} customers (load average {load_avg:.1f}) ...", flush=True)
    documents = bench_search.customers(args.size, args.seed)
    texts = bench_search.queries(documents, args.queries, args.seed + 1)
    typo_texts = bench_search.typos(texts, 20, args.seed + 2)
    index = MemorySearchIndex()
    index.bulk_load(documents)
    parsed = [parse_query(t) for t in texts]
    memory = [timed(lambda q=q: index.search(LOCATION, q, limit=LIMIT)) for q in parsed]
    print(f"memory index: {summary(memory)}", flush=True)

    lines = [
        f"Command: `python benchmarks/bench_sql_search.py --size {args.size}` (seed {args.seed},"
        f" {len(texts)} queries of 3-12 characters, ranked top {LIMIT}, each search in its own"
        f" unit of work; results checked equal to the memory index); load average"
        f" {load_avg:.1f} at the start (other jobs shared the machine).",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| memory backend index, same queries | {summary(memory)} |",
    ]
    for backend in args.backends.split(","):
        lines += bench(
            backend.strip(),
            args,
            documents=documents,
            index=index,
            texts=texts,
            typo_texts=typo_texts,
        )
    if not args.no_results:
        append_section(f"Search, SQL backend, {args.size:,} customers in one location", lines)


if __name__ == "__main__":
    main()
