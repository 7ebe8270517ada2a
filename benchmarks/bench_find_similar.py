"""Search before create: ``book.customers.find_similar`` of one draft against a whole location.

    python benchmarks/bench_find_similar.py --size 100000 [--backend memory|sqlite|postgresql|all]

Loads N synthetic customers into one location (``create_many``), then times ``find_similar``
for drafts a user would type: exact copies of existing customers, the same company with a
suffix and its phone in another format, and new companies. The first call builds the kept
index (memory) or the stored blocking keys (SQL); the following calls read it. The baseline,
measured in the same run, is what the book did before: building a ``MatchIndex`` of the
location's live customers for every call (``MatchIndex.build(...).find_similar``). Both must
return the same matches; the script checks that they do.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
from _common import append_section, figure, percentile

import customerkit as ck
from customerkit import synth
from customerkit.matching import MatchIndex

ADMIN = ck.Actor(user_id="bench", role=ck.Role.DEALER_ADMIN, location_id="loc-1")
QUERIES = 200
BASELINE_CALLS = 3


def drafts(size: int, seed: int = 5) -> list[ck.NewCustomer]:
    return [d for _, d in synth.customers(size, seed=seed, locations=("loc-1",))]


def queries(existing: list[ck.NewCustomer], count: int) -> list[ck.NewCustomer]:
    """Copies, near copies (suffix, phone digits only) and new companies, in equal parts."""
    rng = random.Random(7)
    fresh = drafts(count, seed=99)
    out = []
    for i in range(count):
        base = rng.choice(existing)
        if i % 3 == 0:
            out.append(attrs.evolve(base, customer_number=""))
        elif i % 3 == 1:
            phone = "".join(ch for ch in base.phone if ch.isdigit())
            name = f"{base.company_name} Inc"
            out.append(attrs.evolve(base, company_name=name, phone=phone, customer_number=""))
        else:
            out.append(attrs.evolve(fresh[i], customer_number=""))
    return out


@contextmanager
def opened(backend: str, folder: Path) -> Iterator[ck.Book]:
    hasher = ck.PasswordHasher.for_tests()
    if backend == "memory":
        book = ck.open_book(hasher=hasher)
        yield book
        return
    if backend == "sqlite":
        book = ck.open_book(f"sqlite:///{folder / 'bench.db'}", hasher=hasher)
        yield book
        book.close()
        return
    from customerkit.testing import postgres

    with postgres.postgres_server() as server:
        database = postgres.create_database(server)
        book = ck.open_book(database, hasher=hasher)
        yield book
        book.close()
        postgres.drop_database(server, database)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    began = time.perf_counter()
    result = action()
    return (time.perf_counter() - began) * 1000, result


def ids(matches: object) -> list[tuple[str, float]]:
    return [(m.record.id, round(m.score, 9)) for m in matches]  # type: ignore[attr-defined]


def run(size: int, backend: str, folder: Path) -> tuple[list[str], list[object]]:
    existing = drafts(size)
    asked = queries(existing, QUERIES)
    with opened(backend, folder) as book:
        began = time.perf_counter()
        book.customers.create_many(existing, actor=ADMIN)
        load_s = time.perf_counter() - began
        first_ms, _ = timed(lambda: book.customers.find_similar(asked[0], actor=ADMIN))
        times, found = [], []
        for draft in asked:
            ms, matches = timed(lambda d=draft: book.customers.find_similar(d, actor=ADMIN))
            times.append(ms)
            found.append(ids(matches))
        with book.store.unit_of_work() as uow:
            live = list(uow.customers.iter_location("loc-1"))
        base_times = []
        for k, draft in enumerate(asked[:BASELINE_CALLS]):
            ms, matches = timed(
                lambda d=draft: MatchIndex.build(live, kind="customer").find_similar(d)
            )
            base_times.append(ms)
            if ids(matches) != found[k]:
                msg = f"find_similar and a fresh MatchIndex disagree on query {k}"
                raise AssertionError(msg)
    hits = sum(1 for f in found if f)
    p50, p95 = percentile(times, 50), percentile(times, 95)
    base = percentile(base_times, 50)
    lines = [
        f"| {backend} | {size:,} | {load_s:.1f} s | {first_ms:,.0f} ms | {p50:.2f} ms "
        f"| {p95:.2f} ms | {hits}/{len(asked)} | {base:,.0f} ms (x{base / p50:,.0f}) |"
    ]
    figures = [
        figure(
            "find_similar",
            "customers, p50",
            f"customerkit {backend}",
            size=size,
            value=p50,
            unit="ms",
            p95=p95,
            first_ms=first_ms,
        ),
        figure(
            "find_similar",
            "customers, p50",
            f"MatchIndex per call ({backend})",
            size=size,
            value=base,
            unit="ms",
        ),
    ]
    return lines, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument(
        "--backend", choices=["memory", "sqlite", "postgresql", "all"], default="all"
    )
    args = parser.parse_args()
    backends = ["memory", "sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    lines = [
        f"{QUERIES} drafts: a third exact copies, a third near copies, a third new companies. "
        "The first call builds the kept index (memory) or stored blocking keys (SQL).",
        "",
        "| backend | customers | load | first call | p50 | p95 | with a match "
        "| baseline: MatchIndex per call, p50 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    figures: list[object] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            try:
                more, found = run(args.size, backend, Path(tmp))
            except ImportError as error:  # no SQLAlchemy or psycopg in this environment
                more, found = [f"| {backend} | skipped: {error} | | | | | | |"], []
            lines += more
            figures += found
    append_section(
        f"find_similar (search before create), {args.size:,} customers",
        lines,
        figures=figures,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
