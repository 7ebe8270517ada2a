"""Benchmark search on the SQL backend (SQLite, PostgreSQL) against raw index baselines.

Usage::

    python benchmarks/bench_sql_search.py --size 100000
    python benchmarks/bench_sql_search.py --size 1000000 --backends sqlite
    python benchmarks/bench_sql_search.py --size 100000 --pg-url postgresql+psycopg://...
    python benchmarks/bench_sql_search.py --size 1000000 --backends sqlite --profile

Uses ``bench_search``'s generator (same seed, same customers, same queries as the memory
benchmark): N customers in one location, ranked top-20 queries of 3-12 characters, reported per
class (whole word, prefix, infix, two words with a second word of 3+ or of 1-2 characters,
customer-number fragment). For each backend it loads the customers through the store's bulk
path (one unit of work of ``customers.add``, which ends with ``ANALYZE`` itself), then times
each search in its own unit of work, as the services call it: a first pass right after the
load (each result checked against the memory index, itself tested against the oracle), then
two more. Baselines run in the same process on the same data: SQLite FTS5
``trigram`` (first 20 substring matches of the query's longest word), PostgreSQL ``pg_trgm``
(first 20 ILIKE matches; ranked ``similarity`` top 20), and the memory backend.
``--other-locations K`` loads K more locations of N customers each into the same book (other
seeds) before the searches, which still search the first location: the layout of a dealer
group's book, where a search reads its own location's rows of a larger book.

The SQLite database is built once per size, seed and index format and kept in
``benchmarks/.cache`` (its load time is stored beside it and reported), and read through once
before the searches, so that its first pass starts from the operating system's cache as it
would right after a load; ``--no-cache`` builds a fresh one. PostgreSQL is a throwaway server
from the local binaries unless ``--pg-url`` (or CUSTOMERKIT_TEST_POSTGRES_URL) names one, loaded
fresh each run into a new database, dropped afterwards. ``--profile`` prints the query plans
and a cProfile of the slowest queries of each backend. Appends a section to
``benchmarks/RESULTS.md`` and figures to ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import hashlib
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import bench_search
from _common import Figure, append_section, figure, load_text, percentile

import customerkit
from customerkit.backends.sqlalchemy import SqlStore
from customerkit.model import Customer, CustomerKind
from customerkit.search.index import MemorySearchIndex
from customerkit.search.query import SearchDocument, SearchQuery, parse_query
from customerkit.testing.postgres import PostgresUnavailable, new_database, postgres_server
from customerkit.text import query_words, words

LOCATION = bench_search.LOCATION
LIMIT = bench_search.LIMIT
CACHE = Path(__file__).with_name(".cache")
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
CLASSES = (
    "whole word",
    "prefix",
    "infix",
    "two words, 2nd 3+ chars",
    "two words, 2nd 1-2 chars",
    "number fragment",
)
# The stored rows depend on these sources: a change to any of them rebuilds the cached database.
_FORMAT_SOURCES = ("schema.py", "_words.py", "_word_starts.py", "_rows.py", "_bulk.py")


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
        location_id=document.location_id,
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


def classify(texts: Sequence[str], documents: Sequence[SearchDocument]) -> list[str]:
    """The class of each query (see CLASSES), from the words of the documents."""
    vocabulary = {w for d in documents for text in (d.name, d.city) for w in words(text)}
    by_start = defaultdict(set)
    for word in vocabulary:
        by_start[word[:3]].add(word)
    out = []
    for text in texts:
        found = query_words(text)
        if any(ch.isdigit() for ch in text):
            out.append("number fragment")
        elif len(found) > 1:
            out.append("two words, 2nd 1-2 chars" if len(found[-1]) <= 2 else CLASSES[3])
        elif found[0] in vocabulary:
            out.append("whole word")
        elif any(w.startswith(found[0]) for w in by_start[found[0][:3]]):
            out.append("prefix")
        else:
            out.append("infix")
    return out


def format_key() -> str:
    """Hash of the version and the sources that decide what the SQL backend stores."""
    folder = Path(customerkit.__file__).parent / "backends" / "sqlalchemy"
    digest = hashlib.sha256()
    for name in _FORMAT_SOURCES:
        digest.update((folder / name).read_bytes())
    digest.update((Path(customerkit.__file__).parent / "text.py").read_bytes())
    return digest.hexdigest()[:12]


def load(
    store: SqlStore, documents: Sequence[SearchDocument], *, other_locations: int = 0, seed: int = 0
) -> float:
    now = datetime.now(UTC)
    start = time.perf_counter()
    with store.unit_of_work() as uow:  # a bulk load: it ends with ANALYZE itself
        for document in documents:
            uow.customers.add(as_customer(document, now))
        for other in range(other_locations):  # generated one location at a time
            location = f"loc-{other + 2}"
            for document in bench_search.customers(len(documents), seed + 1000 + other):
                uow.customers.add(as_customer(attrs.evolve(document, location_id=location), now))
        uow.commit()
    return time.perf_counter() - start


def read_through(path: Path) -> None:
    """Read a cached book's file once, as a load leaves it: in the operating system's cache.

    The first pass is meant as right after a load, whose writes are still cached. A cached
    file left idle may have been evicted (this machine reclaims idle files' pages), and its
    first pass would then time the disk instead (p50 10-32 ms against 3 ms warm).
    """
    with path.open("rb") as book:
        while book.read(1 << 24):
            pass


@contextlib.contextmanager
def loaded(
    backend: str, args: argparse.Namespace, documents: Sequence[SearchDocument]
) -> Iterator[tuple[SqlStore, float, str]]:
    """A store holding the documents: (store, load seconds, how it was loaded)."""
    if backend == "sqlite" and not args.no_cache and not args.other_locations:
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n", encoding="ascii")  # never commit the cache
        path = CACHE / f"sqlite-{args.size}-{args.seed}-{format_key()}.db"
        facts = path.with_suffix(".json")
        how = f"cached in `benchmarks/.cache/{path.name}`"
        if not facts.exists():
            partial = path.with_suffix(".partial")
            for leftover in CACHE.glob(partial.name + "*"):
                leftover.unlink()
            store = SqlStore(f"sqlite:///{partial}", batch_size=5000)
            seconds = load(store, documents)
            store.close()  # the last connection to close folds the WAL into the file
            partial.replace(path)
            stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            facts.write_text(json.dumps({"load_s": seconds, "at": stamp}), encoding="utf-8")
            how = f"built now, then {how}"
        built = json.loads(facts.read_text(encoding="utf-8"))
        read_through(path)
        store = SqlStore(f"sqlite:///{path}", batch_size=5000)
        try:
            yield store, built["load_s"], f"{how} (loaded {built['at']}; read through first)"
        finally:
            store.close()
        return
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
        else:  # a new database, dropped after the run (3 GB at 10^6 on a kept server)
            server = args.pg_url or stack.enter_context(postgres_server())
            url = stack.enter_context(new_database(server))
        store = SqlStore(url, batch_size=5000)
        stack.callback(store.close)
        seconds = load(store, documents, other_locations=args.other_locations, seed=args.seed)
        yield store, seconds, "loaded in this run"


def search_once(store: SqlStore, query: SearchQuery) -> None:
    with store.unit_of_work() as uow:
        uow.customers.search(LOCATION, query, limit=LIMIT)


def search_times(store: SqlStore, parsed: Sequence[SearchQuery]) -> list[float]:
    return [timed(functools.partial(search_once, store, query)) for query in parsed]


def service_overhead(store: SqlStore, texts: Sequence[str]) -> tuple[list[float], list[float]]:
    """Per query, best of 2: the repository's search, and ``book.customers.search``.

    The service parses, authorizes and reads the hits' customers; run alternately with the
    repository so both see the same cache.
    """
    book = customerkit.Book(store, hasher=customerkit.PasswordHasher.for_tests())
    actor = customerkit.Actor(
        user_id="bench", role=customerkit.Role.DEALER_ADMIN, location_id=LOCATION
    )
    parsed = [parse_query(t) for t in texts]
    repository: list[list[float]] = []
    service: list[list[float]] = []
    for _ in range(2):
        repository.append(search_times(store, parsed))
        service.append(
            [
                timed(functools.partial(book.customers.search, t, actor=actor, limit=LIMIT))
                for t in texts
            ]
        )
    return [min(r) for r in zip(*repository, strict=True)], [
        min(r) for r in zip(*service, strict=True)
    ]


def first_pass(
    store: SqlStore, index: MemorySearchIndex, parsed: Sequence[SearchQuery]
) -> list[float]:
    """The first searches after the load, timed, each checked against the memory index."""
    times = []
    for query in parsed:
        start = time.perf_counter()
        with store.unit_of_work() as uow:
            found = uow.customers.search(LOCATION, query, limit=LIMIT)
        times.append((time.perf_counter() - start) * 1000)
        if found != index.search(LOCATION, query, limit=LIMIT):
            sys.exit(f"SQL and memory search disagree on {query!r}")
    return times


def fetch(run: Callable[..., Any], sql: str, parameters: tuple[str, ...]) -> None:
    run(sql, parameters).all()


def baselines(
    store: SqlStore, documents: Sequence[SearchDocument], texts: Sequence[str]
) -> list[tuple[str, list[float]]]:
    """Raw trigram-index queries on the same names: (label, timings) pairs."""
    out = []
    with store.engine.connect() as connection:
        run = connection.exec_driver_sql
        if store.dialect == "sqlite":
            exists = run("SELECT 1 FROM sqlite_master WHERE name = 'bench_names'").first()
            if not exists:  # kept in the cached database with the customers
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
                    [timed(functools.partial(fetch, run, sql, (p,))) for p in phrases],
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
                    [
                        timed(functools.partial(fetch, run, like, (f"%{longest_word(t)}%",)))
                        for t in texts
                    ],
                )
            )
            out.append(
                (
                    "pg_trgm, ranked similarity top 20 (`name % query`)",
                    [timed(functools.partial(fetch, run, ranked, (t, t))) for t in texts],
                )
            )
            connection.rollback()
    return out


def profile(store: SqlStore, texts: Sequence[str], times: Sequence[float]) -> None:
    """Query plans and a cProfile of the five slowest queries."""
    slowest = [text for _, text in sorted(zip(times, texts, strict=True), reverse=True)[:5]]
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    from sqlalchemy import event

    for text in slowest:
        statements.clear()
        event.listen(store.engine, "before_cursor_execute", capture)
        try:
            search_once(store, parse_query(text))
        finally:
            event.remove(store.engine, "before_cursor_execute", capture)
        print(f"\n=== {text!r}: {len(statements)} statements", flush=True)
        explain = (
            "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
        )
        with store.engine.connect() as connection:
            for statement, parameters in statements:
                if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue
                start = time.perf_counter()
                connection.exec_driver_sql(statement, parameters).all()
                ms = (time.perf_counter() - start) * 1000
                plan = connection.exec_driver_sql(explain + statement, parameters).all()
                print(f"--- {ms:.1f} ms, parameters {parameters}")
                for row in plan:
                    print("   ", row[-1])
        profiler = cProfile.Profile()
        profiler.runcall(search_once, store, parse_query(text))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(12)


def bench(
    backend: str,
    args: argparse.Namespace,
    *,
    documents: Sequence[SearchDocument],
    index: MemorySearchIndex,
    texts: Sequence[str],
    typo_texts: Sequence[str],
) -> dict[str, Any]:
    parsed = [parse_query(t) for t in texts]
    fuzzy = [parse_query(t, fuzzy=True) for t in typo_texts]
    with loaded(backend, args, documents) as (store, build, how):
        print(f"{backend}: load {build:.1f} s ({how})", flush=True)
        passes = [first_pass(store, index, parsed)]  # right after the load, no warm-up
        passes += [search_times(store, parsed) for _ in range(2)]
        fuzzy_times = first_pass(store, index, fuzzy)
        repository, service = service_overhead(store, texts)
        raw = baselines(store, documents, texts)
        if args.profile:
            profile(store, texts, passes[0])
    best = [min(runs) for runs in zip(*passes, strict=True)]
    print(f"{backend}: {summary(passes[0])}; best of 3 {summary(best)}", flush=True)
    slowest = sorted(zip(passes[0], texts, strict=True), reverse=True)[:5]
    print("  slowest:", ", ".join(f"{t!r} {ms:.1f} ms" for ms, t in slowest), flush=True)
    for label, times in raw:
        print(f"  baseline {label}: {summary(times)}", flush=True)
    return {
        "first": passes[0],
        "best": best,
        "fuzzy": fuzzy_times,
        "repository": repository,
        "service": service,
        "build": build,
        "how": how,
        "raw": raw,
    }


def book_size(args: argparse.Namespace) -> int:
    """Customers in the book: the searched location's and the other locations'."""
    return args.size * (args.other_locations + 1)


def per_class(times: Sequence[float], classes: Sequence[str], name: str) -> str:
    picked = [t for t, c in zip(times, classes, strict=True) if c == name]
    if not picked:
        return "-"
    return f"{statistics.median(picked):.2f} / {percentile(picked, 95):.2f}"


def report(
    args: argparse.Namespace,
    *,
    texts: Sequence[str],
    classes: Sequence[str],
    memory: Sequence[float],
    runs: dict[str, dict[str, Any]],
    load_avg: str,
) -> tuple[list[str], list[Figure]]:
    backends = list(runs)
    others = f" --other-locations {args.other_locations}" if args.other_locations else ""
    book = book_size(args)
    series = f", one location of {args.size:,}" if args.other_locations else ""
    lines = [
        f"Command: `python benchmarks/bench_sql_search.py --size {args.size}{others}` (seed"
        f" {args.seed},"
        f" {len(texts)} queries of 3-12 characters, ranked top {LIMIT}, each search in its own"
        f" unit of work; results checked equal to the memory index); {load_avg} at the start.",
        "",
        "p50 / p95 in ms per query class, first pass (best of 3 passes per query in brackets"
        " for the overall row):",
        "",
        "| query class | queries | memory index | "
        + " | ".join(f"{NAMES[b]}" for b in backends)
        + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in backends) + " |",
    ]
    for name in CLASSES:
        count = classes.count(name)
        cells = [per_class(runs[b]["first"], classes, name) for b in backends]
        lines.append(
            f"| {name} | {count} | {per_class(memory, classes, name)} | " + " | ".join(cells) + " |"
        )
    overall = [
        f"{statistics.median(runs[b]['first']):.2f} / {percentile(runs[b]['first'], 95):.2f} "
        f"({statistics.median(runs[b]['best']):.2f} / {percentile(runs[b]['best'], 95):.2f})"
        for b in backends
    ]
    memory_all = f"{statistics.median(memory):.2f} / {percentile(list(memory), 95):.2f}"
    lines.append(f"| **all** | {len(texts)} | {memory_all} | " + " | ".join(overall) + " |")
    lines += ["", "| measure | value |", "| --- | --- |"]
    figures: list[Figure] = []
    for backend in backends:
        run = runs[backend]
        name = NAMES[backend]
        p50 = statistics.median(run["first"])
        lines += [
            f"| {name}: load (bulk `customers.add`, one unit of work) + ANALYZE "
            f"| {run['build']:.1f} s, {run['how']} |",
            f"| {name}: search, all queries | {summary(run['first'])} |",
            f"| {name}: search, `fuzzy=True`, typo queries | {summary(run['fuzzy'])} |",
            f"| {name}: `book.customers.search` (hits read, best of 2) | {summary(run['service'])}"
            f"; repository search alongside: {summary(run['repository'])}; p50 "
            f"x{statistics.median(run['service']) / statistics.median(run['repository']):.2f} |",
        ]
        figures += [
            figure(
                "search",
                "ranked top 20, p50",
                f"customerkit {name}{series}",
                size=book,
                value=p50,
                unit="ms",
                p95_ms=percentile(run["first"], 95),
                best_p50_ms=statistics.median(run["best"]),
                per_class={c: per_class(run["first"], classes, c) for c in CLASSES},
            ),
            figure(
                "search",
                "index build",
                f"customerkit {name} load{series}",
                size=book,
                value=run["build"],
                unit="s",
                how=run["how"],
            ),
        ]
        for label, times in run["raw"]:
            ratio = p50 / statistics.median(times)
            lines.append(f"| baseline: {label} | {summary(times)}; our p50 is {ratio:.1f}x this |")
            figures.append(
                figure(
                    "search",
                    "ranked top 20, p50",
                    label.split(",")[0] + (", ranked" if "ranked" in label else ""),
                    size=args.size,
                    value=statistics.median(times),
                    unit="ms",
                    p95_ms=percentile(times, 95),
                )
            )
    return lines, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("CUSTOMERKIT_TEST_POSTGRES_URL"))
    parser.add_argument("--no-cache", action="store_true", help="load SQLite afresh")
    parser.add_argument("--profile", action="store_true", help="plans + cProfile, slowest")
    parser.add_argument("--no-results", action="store_true", help="do not append RESULTS.md")
    parser.add_argument(
        "--other-locations", type=int, default=0, help="more locations of --size in the book"
    )
    args = parser.parse_args()

    load_avg = load_text()
    print(f"generating {args.size:,} customers ({load_avg}) ...", flush=True)
    documents = bench_search.customers(args.size, args.seed)
    texts = bench_search.queries(documents, args.queries, args.seed + 1)
    typo_texts = bench_search.typos(texts, 20, args.seed + 2)
    classes = classify(texts, documents)
    index = MemorySearchIndex()
    index.bulk_load(documents)
    parsed = [parse_query(t) for t in texts]
    memory = [timed(functools.partial(index.search, LOCATION, q, limit=LIMIT)) for q in parsed]
    print(f"memory index: {summary(memory)}", flush=True)

    runs = {}
    skipped = []
    for backend in (b.strip() for b in args.backends.split(",")):
        try:
            runs[backend] = bench(
                backend,
                args,
                documents=documents,
                index=index,
                texts=texts,
                typo_texts=typo_texts,
            )
        except PostgresUnavailable as error:  # a fresh checkout may have no server binaries
            print(f"{backend}: skipped, {error}", flush=True)
            skipped.append(f"{NAMES[backend]} skipped: {error}.")
    lines, figures = report(
        args, texts=texts, classes=classes, memory=memory, runs=runs, load_avg=load_avg
    )
    lines += ["", *skipped] if skipped else []
    if args.no_results:
        print("\n".join(lines))
        return
    where = f"{args.size:,} customers in one location"
    if args.other_locations:
        where += f" of a book of {book_size(args):,} in {args.other_locations + 1} locations"
    append_section(f"Search, SQL backend, {where}", lines, figures=figures)


if __name__ == "__main__":
    main()
